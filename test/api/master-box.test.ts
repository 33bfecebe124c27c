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
