import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createCryptoBox, DecryptionError } from '../../src/shared/crypto-box.ts';

function expectDecryptionError(open: () => unknown): DecryptionError {
  let thrown: unknown;
  try {
    open();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).to.be.instanceOf(DecryptionError);
  return thrown as DecryptionError;
}

/** Flips one bit of the base64url part at `index` of a v1 envelope. */
function flipBit(envelope: string, index: number, byte = 0): string {
  const parts = envelope.split('.');
  const bytes = Buffer.from(parts[index]!, 'base64url');
  bytes[byte] = bytes[byte]! ^ 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('crypto box (AES-256-GCM envelope)', function () {
  const key = randomBytes(32);
  const box = createCryptoBox(key);

  it('seals and opens strings, binary data and empty input', function () {
    const secret = 'JBSWY3DPEHPK3PXP totp seed — ünïcode';
    const envelope = box.seal(secret, 'user:42');
    expect(envelope).to.match(/^v1\.m1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(envelope).not.to.include(Buffer.from(secret).toString('base64url'));
    expect(box.open(envelope, 'user:42').toString('utf8')).to.equal(secret);

    const binary = randomBytes(100);
    expect(box.open(box.seal(binary)).equals(binary)).to.equal(true);
    expect(box.open(box.seal('')).length).to.equal(0);
  });

  it('opens with a new box over the same key and key id', function () {
    const envelope = box.seal('persisted', 'row-1');
    expect(createCryptoBox(Buffer.from(key), 'm1').open(envelope, 'row-1').toString()).to.equal('persisted');
  });

  it('uses a fresh IV for every seal', function () {
    const envelopes = Array.from({ length: 50 }, () => box.seal('same plaintext', 'same-ad'));
    const ivs = new Set(envelopes.map((e) => e.split('.')[2]));
    expect(ivs.size).to.equal(50);
    expect(new Set(envelopes).size).to.equal(50);
    expect(Buffer.from(envelopes[0]!.split('.')[2]!, 'base64url')).to.have.length(12);
  });

  it('refuses a tampered ciphertext, tag or IV', function () {
    const envelope = box.seal('attack at dawn', 'ad');
    const bodyLength = Buffer.from(envelope.split('.')[3]!, 'base64url').length;
    expectDecryptionError(() => box.open(flipBit(envelope, 3, 0), 'ad'));
    expectDecryptionError(() => box.open(flipBit(envelope, 3, bodyLength - 1), 'ad'));
    expectDecryptionError(() => box.open(flipBit(envelope, 2, 5), 'ad'));
    // Dropping the last byte shifts the tag: still refused.
    const parts = envelope.split('.');
    parts[3] = Buffer.from(parts[3]!, 'base64url')
      .subarray(0, bodyLength - 1)
      .toString('base64url');
    expectDecryptionError(() => box.open(parts.join('.'), 'ad'));
  });

  it('refuses other associated data (a ciphertext cannot move to another row)', function () {
    const envelope = box.seal('seed', 'user:1');
    expect(expectDecryptionError(() => box.open(envelope, 'user:2')).message).to.include('authentication failed');
    expectDecryptionError(() => box.open(envelope));
    expectDecryptionError(() => box.open(box.seal('seed'), 'user:1'));
  });

  it('refuses an envelope sealed under another key', function () {
    const other = createCryptoBox(randomBytes(32), 'm1');
    expectDecryptionError(() => other.open(box.seal('secret', 'ad'), 'ad'));
    expectDecryptionError(() => box.open(other.seal('secret', 'ad'), 'ad'));
  });

  it('refuses an envelope of another key id, even when the key bytes are the same', function () {
    const rotated = createCryptoBox(key, 'm2');
    const envelope = box.seal('secret', 'ad');
    expect(expectDecryptionError(() => rotated.open(envelope, 'ad')).message).to.include('m1');
    // Relabelling the envelope does not help: the key id is bound into the associated data.
    expect(expectDecryptionError(() => rotated.open(envelope.replace(/^v1\.m1\./, 'v1.m2.'), 'ad')).message).to.include(
      'authentication failed',
    );
  });

  it('refuses malformed envelopes', function () {
    const envelope = box.seal('secret');
    const [, , iv, body] = envelope.split('.') as [string, string, string, string];
    const malformed = [
      '',
      'garbage',
      'v1.m1',
      `v1.m1.${iv}`,
      `v1.m1.${iv}.`,
      `v1.m1..${body}`,
      `v2.m1.${iv}.${body}`,
      `${envelope}.extra`,
      `v1.m1.${Buffer.alloc(8).toString('base64url')}.${body}`,
      `v1.m1.${iv}.${Buffer.alloc(15).toString('base64url')}`,
      `v1.m1.!!!!.${body}`,
    ];
    for (const value of malformed) expectDecryptionError(() => box.open(value));
  });

  it('rejects keys that are not 32 bytes and unsafe key ids', function () {
    expect(() => createCryptoBox(randomBytes(16))).to.throw(/32 bytes/);
    expect(() => createCryptoBox(randomBytes(33))).to.throw(/32 bytes/);
    expect(() => createCryptoBox(key, 'has.dot')).to.throw(/key id/);
    expect(() => createCryptoBox(key, '')).to.throw(/key id/);
  });
});
