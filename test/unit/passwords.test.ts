import { expect } from 'chai';
import { createPasswordHasher, PASSWORD_MAX_BYTES } from '../../src/services/passwords.ts';
import { rejectionOf } from '../helpers/rejections.ts';

// Cheaper than production (19 MiB, t=2) to keep the suite fast; the code path is the same.
const params = { memoryKiB: 8192, timeCost: 1, parallelism: 1 };

async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - start };
}

describe('password hashing (argon2id)', function () {
  const hasher = createPasswordHasher(params);
  const password = 'correct horse battery staple';
  let hash: string;

  before(async function () {
    hash = await hasher.hash(password);
  });

  it('hashes with argon2id and the configured parameters, salted', async function () {
    const [, algorithm, version, parameters] = hash.split('$');
    expect(algorithm).to.equal('argon2id');
    expect(version).to.equal('v=19');
    expect(parameters?.split(',').sort()).to.deep.equal(['m=8192', 'p=1', 't=1']);
    expect(hash).not.to.include(password);
    expect(await hasher.hash(password)).not.to.equal(hash);
  });

  it('verifies the right password, without asking for a rehash', async function () {
    expect(await hasher.verify(hash, password)).to.deep.equal({ ok: true, rehash: false });
  });

  it('refuses a wrong password', async function () {
    expect(await hasher.verify(hash, 'correct horse battery stapler')).to.deep.equal({ ok: false, rehash: false });
    expect(await hasher.verify(hash, 'Correct horse battery staple')).to.deep.equal({ ok: false, rehash: false });
    expect(await hasher.verify(hash, '')).to.deep.equal({ ok: false, rehash: false });
  });

  it('asks for a rehash when the stored hash has other parameters, only on success', async function () {
    const legacy = await createPasswordHasher({ memoryKiB: 4096, timeCost: 2, parallelism: 1 }).hash(password);
    expect(await hasher.verify(legacy, password)).to.deep.equal({ ok: true, rehash: true });
    expect(await hasher.verify(legacy, 'wrong password!')).to.deep.equal({ ok: false, rehash: false });
  });

  it('treats a corrupt stored hash as a failed verification', async function () {
    expect(await hasher.verify('not-a-hash', password)).to.deep.equal({ ok: false, rehash: false });
    expect(await hasher.verify(hash.slice(0, -10), password)).to.deep.equal({ ok: false, rehash: false });
  });

  it('verifies exactly as received: no truncation, trimming or normalisation (ASVS 6.2.8, T39)', async function () {
    const long = 'p'.repeat(79) + 'A' + 'q'.repeat(20);
    const longHash = await hasher.hash(long);
    expect((await hasher.verify(longHash, long)).ok).to.equal(true);
    expect((await hasher.verify(longHash, 'p'.repeat(79) + 'B' + 'q'.repeat(20))).ok, '80th character changed').to.equal(false);
    expect((await hasher.verify(longHash, long.slice(0, 72))).ok, 'truncated at 72').to.equal(false);
    expect((await hasher.verify(longHash, long + 'r')).ok, 'one more character').to.equal(false);

    const spaced = await hasher.hash(' pass phrase ');
    expect((await hasher.verify(spaced, ' pass phrase ')).ok).to.equal(true);
    expect((await hasher.verify(spaced, ' pass phrase')).ok, 'trailing space').to.equal(false);
    expect((await hasher.verify(spaced, 'pass phrase ')).ok, 'leading space').to.equal(false);

    const composed = 'caf\u00e9-password';
    const decomposed = 'cafe\u0301-password';
    expect((await hasher.verify(await hasher.hash(composed), decomposed)).ok, 'NFC vs NFD').to.equal(false);
  });

  it('check() enforces 8 code points minimum and 1024 UTF-8 bytes maximum', function () {
    expect(hasher.check('1234567')).to.equal('too_short');
    expect(hasher.check('k3j9-xq2')).to.equal(undefined);
    expect(hasher.check('')).to.equal('too_short');
    // Seven emoji are fourteen UTF-16 units but seven characters.
    expect(hasher.check('\u{1F600}'.repeat(7))).to.equal('too_short');
    expect(hasher.check('\u{1F600}'.repeat(8))).to.equal(undefined);
    expect(hasher.check('a'.repeat(PASSWORD_MAX_BYTES))).to.equal(undefined);
    expect(hasher.check('a'.repeat(PASSWORD_MAX_BYTES + 1))).to.equal('too_long');
    // Bytes, not characters: 512 two-byte characters fit, 513 do not.
    expect(hasher.check('\u00e9'.repeat(512))).to.equal(undefined);
    expect(hasher.check('\u00e9'.repeat(513))).to.equal('too_long');
    // 64+ characters are allowed (ASVS 6.2.9).
    expect(hasher.check('x'.repeat(128))).to.equal(undefined);
    expect(createPasswordHasher(params, 15).check('x'.repeat(14))).to.equal('too_short');
  });

  describe('timing, at the production cost (OWASP: 19 MiB, t=2)', function () {
    const costly = createPasswordHasher({ memoryKiB: 19456, timeCost: 2, parallelism: 1 });
    let costlyHash: string;

    before(async function () {
      costlyHash = await costly.hash(password);
      await costly.verify(null, 'warm up the dummy hash');
    });

    it('refuses a 1 MB password quickly, without hashing it (T39)', async function () {
      const huge = 'a'.repeat(1024 * 1024);
      expect(costly.check(huge)).to.equal('too_long');
      expect(await rejectionOf(() => costly.hash(huge)), 'hash() of 1 MB').to.be.instanceOf(Error);

      // Even the right password is refused when it is over the limit: verify never reaches argon2.
      const { default: argon2 } = await import('argon2');
      const hugeHash = await argon2.hash(huge, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 });
      expect(await argon2.verify(hugeHash, huge)).to.equal(true);
      const real = await timed(() => costly.verify(costlyHash, password));
      const oversized = await timed(() => costly.verify(hugeHash, huge));
      expect(oversized.result).to.deep.equal({ ok: false, rehash: false });
      expect(oversized.ms, `oversized ${oversized.ms.toFixed(2)} ms vs real ${real.ms.toFixed(2)} ms`).to.be.below(real.ms / 3);
    });

    it('spends argon2 time on unknown users (hash null), comparable to a real verify (T33)', async function () {
      let realMs = 0;
      let unknownMs = 0;
      for (let i = 0; i < 5; i++) {
        const real = await timed(() => costly.verify(costlyHash, `wrong password ${i}`));
        const unknown = await timed(() => costly.verify(null, `wrong password ${i}`));
        expect(unknown.result).to.deep.equal({ ok: false, rehash: false });
        realMs += real.ms;
        unknownMs += unknown.ms;
      }
      expect(unknownMs / 5, 'mean unknown-user verify, ms').to.be.at.least(3);
      expect(unknownMs, `unknown ${unknownMs.toFixed(1)} ms vs real ${realMs.toFixed(1)} ms`).to.be.at.least(realMs * 0.3);
    });
  });

  it('never accepts any password for an unknown user, not even the dummy one', async function () {
    expect(await hasher.verify(null, 'portcullis-dummy-password')).to.deep.equal({ ok: false, rehash: false });
  });
});
