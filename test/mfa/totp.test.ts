import { expect } from 'chai';
import { generate } from 'otplib';
import { createDeps, type Deps } from '../../src/deps.ts';
import { loadConfig } from '../../src/config/load.ts';
import { matchTotp, normalizeTotpCode } from '../../src/services/mfa-totp.ts';
import { createTestUser } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';

// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890".
const RFC_SEED = new TextEncoder().encode('12345678901234567890');
const RFC_VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

describe('TOTP (RFC 6238)', function () {
  describe('codes', function () {
    for (const [time, expected] of RFC_VECTORS) {
      it(`matches the RFC 6238 test vector at T=${time}`, async function () {
        expect(await generate({ secret: RFC_SEED, epoch: time, digits: 8 })).to.equal(expected);
        expect(await matchTotp(RFC_SEED, expected, { epoch: time, digits: 8 })).to.equal(Math.floor(time / 30));
      });
    }

    it('accepts ±1 step and refuses ±2 steps (T35)', async function () {
      const now = 1_700_000_000;
      const at = (offset: number) => generate({ secret: RFC_SEED, epoch: now + offset * 30 });
      expect(await matchTotp(RFC_SEED, await at(-1), { epoch: now })).to.equal(Math.floor(now / 30) - 1);
      expect(await matchTotp(RFC_SEED, await at(1), { epoch: now })).to.equal(Math.floor(now / 30) + 1);
      expect(await matchTotp(RFC_SEED, await at(-2), { epoch: now })).to.equal(undefined);
      expect(await matchTotp(RFC_SEED, await at(2), { epoch: now })).to.equal(undefined);
    });

    it('refuses a code whose step is not after the last accepted one (replay guard)', async function () {
      const now = 1_700_000_000;
      const step = Math.floor(now / 30);
      const code = await generate({ secret: RFC_SEED, epoch: now });
      expect(await matchTotp(RFC_SEED, code, { epoch: now, afterStep: step - 1 })).to.equal(step);
      expect(await matchTotp(RFC_SEED, code, { epoch: now, afterStep: step })).to.equal(undefined);
    });

    it('normalizes spaces and refuses anything but six digits', function () {
      expect(normalizeTotpCode('123 456')).to.equal('123456');
      expect(normalizeTotpCode('12345')).to.equal(undefined);
      expect(normalizeTotpCode('12345a')).to.equal(undefined);
      expect(normalizeTotpCode('1234567')).to.equal(undefined);
    });
  });

  describe('service with Postgres', function () {
    let deps: Deps;
    before(async function () {
      deps = await createDeps(loadConfig(testConfigEnv({ storage: 'postgres' })));
    });
    after(async function () {
      await deps.close();
    });

    it('seals a 160-bit secret and confirms enrollment only with a valid code', async function () {
      const user = await createTestUser(deps);
      const enrollment = await deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(enrollment.secret).to.match(/^[A-Z2-7]{32}$/);
      expect(enrollment.uri).to.match(/^otpauth:\/\/totp\//);
      expect(enrollment.qrSvg).to.contain('<svg');
      const row = await deps.knex('mfa_totp').where({ user_id: user.id }).first<{ secret_sealed: string }>();
      expect(row.secret_sealed).to.not.contain(enrollment.secret);
      expect(await deps.mfa.totp.enabled(user.id)).to.equal(false);
      expect(await deps.mfa.totp.confirm(user.id, '000000', 'test')).to.equal((await generate({ secret: enrollment.secret })) === '000000');
      expect(await deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test')).to.equal(true);
      expect(await deps.mfa.totp.enabled(user.id)).to.equal(true);
      // An enabled app is not replaced by starting again.
      expect(await deps.mfa.totp.begin(user.id, user.email, 'test')).to.equal(undefined);
    });

    it('accepts a code once even when it arrives ten times at once (T35)', async function () {
      const user = await createTestUser(deps);
      const enrollment = await deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      await deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test');
      const next = await generate({ secret: enrollment.secret, epoch: Math.floor(Date.now() / 1000) + 30 });
      const results = await Promise.all(Array.from({ length: 10 }, () => deps.mfa.totp.verify(user.id, next)));
      expect(results.filter(Boolean)).to.have.length(1);
      expect(await deps.mfa.totp.verify(user.id, next)).to.equal(false);
    });

    it('a sealed secret cannot be moved to another user (AAD binds it)', async function () {
      const a = await createTestUser(deps);
      const b = await createTestUser(deps);
      await deps.mfa.totp.begin(a.id, a.email, 'test');
      await deps.mfa.totp.begin(b.id, b.email, 'test');
      const sealed = (await deps.knex('mfa_totp').where({ user_id: a.id }).first<{ secret_sealed: string }>()).secret_sealed;
      await deps.knex('mfa_totp').where({ user_id: b.id }).update({ secret_sealed: sealed });
      let failed = false;
      await deps.mfa.totp.verify(b.id, '123456').catch(() => {
        failed = true;
      });
      await deps.mfa.totp.pending(b.id, b.email, 'test').catch(() => {
        failed = true;
      });
      expect(failed).to.equal(true);
    });
  });
});
