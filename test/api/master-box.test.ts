import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createCryptoBox } from '../../src/shared/crypto-box.ts';
import { createMasterBox, envelopeKeyId, masterKeyId } from '../../src/shared/master-key.ts';

/** The master-key box: envelopes name the key by fingerprint; the legacy `m1` id still opens. */
describe('master key box', function () {
  const key = randomBytes(32);

  it('names the key by a fingerprint that reveals nothing of it', function () {
    const box = createMasterBox(key);
    expect(box.keyId)
      .to.equal(masterKeyId(key))
      .and.match(/^m-[0-9a-f]{12}$/);
    expect(masterKeyId(randomBytes(32))).to.not.equal(box.keyId);
    expect(key.toString('hex')).to.not.include(box.keyId.slice(2));
    expect(envelopeKeyId(box.seal('x', 'aad'))).to.equal(box.keyId);
  });

  it('opens envelopes sealed before key ids were fingerprints (legacy m1), with the same key only', function () {
    const legacy = createCryptoBox(key, 'm1').seal('secret', 'cookie-key');
    expect(createMasterBox(key).open(legacy, 'cookie-key').toString()).to.equal('secret');
    expect(() => createMasterBox(randomBytes(32)).open(legacy, 'cookie-key')).to.throw(/authentication failed/);
  });

  it('says which key an envelope needs when MASTER_KEY is another one', function () {
    const sealed = createMasterBox(key).seal('secret', 'a');
    const other = createMasterBox(randomBytes(32));
    expect(() => other.open(sealed, 'a')).to.throw(new RegExp(`sealed under key ${masterKeyId(key)}, not the configured MASTER_KEY`));
    expect(() => createMasterBox(key).open(sealed, 'b')).to.throw(/authentication failed/);
  });
});

/** MASTER_KEY with MASTER_KEY_PREVIOUS (S2): seal under the current key, open under either. */
describe('master key ring', function () {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);

  it('seals under MASTER_KEY only, and opens what MASTER_KEY_PREVIOUS sealed (also under the legacy id)', function () {
    const ring = createMasterBox(newKey, [oldKey]);
    expect(ring.keyId).to.equal(masterKeyId(newKey));
    expect(ring.previousKeyIds).to.deep.equal([masterKeyId(oldKey)]);
    const sealed = ring.seal('new', 'a');
    expect(envelopeKeyId(sealed)).to.equal(masterKeyId(newKey));
    expect(ring.isCurrent(sealed)).to.equal(true);
    const old = createMasterBox(oldKey).seal('old', 'a');
    expect(ring.isCurrent(old)).to.equal(false);
    expect(ring.open(old, 'a').toString()).to.equal('old');
    // The legacy id names no key: whichever key of the ring authenticates opens it.
    expect(ring.open(createCryptoBox(oldKey, 'm1').seal('legacy old', 'a'), 'a').toString()).to.equal('legacy old');
    expect(ring.open(createCryptoBox(newKey, 'm1').seal('legacy new', 'a'), 'a').toString()).to.equal('legacy new');
    expect(() => ring.open(old, 'b')).to.throw(/authentication failed/);
  });

  it('names both configured keys when a value is sealed under neither', function () {
    const other = randomBytes(32);
    const sealed = createMasterBox(other).seal('x', 'a');
    expect(() => createMasterBox(newKey, [oldKey]).open(sealed, 'a')).to.throw(
      `cannot decrypt: sealed under key ${masterKeyId(other)}, not the configured MASTER_KEY (${masterKeyId(newKey)}) nor MASTER_KEY_PREVIOUS (${masterKeyId(oldKey)})`,
    );
  });

  it('refuses MASTER_KEY_PREVIOUS equal to MASTER_KEY', function () {
    expect(() => createMasterBox(newKey, [Buffer.from(newKey)])).to.throw('MASTER_KEY_PREVIOUS is the same key as MASTER_KEY');
  });
});
