import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory from 'knex';
import { generate } from 'otplib';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLockouts } from '../../src/services/lockout.ts';
import { createMfaLockout } from '../../src/services/mfa-attempts.ts';
import { keyedDigest } from '../../src/shared/derive-key.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createLockoutCounters } from '../../src/store/lockout-counters.ts';
import type { Redis } from '../../src/store/redis.ts';
import { createTestUser } from '../helpers/factories.ts';
import { testConfigEnv, testSettingsEnv, type StorageMode } from '../helpers/servers.ts';

/** LOCKOUT_SECOND_FACTOR_MAX_FAILURES as configured (default 5). */
const MFA_MAX_FAILURES = loadConfig({ ...testSettingsEnv }).lockout.secondFactorMaxFailures;

for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`second-factor lockout (${storage === 'redis' ? 'Redis' : 'Postgres'} counters)`, function () {
    let deps: Deps;
    before(async function () {
      deps = await createDeps(loadConfig(testConfigEnv({ storage })));
    });
    after(async function () {
      await deps.close();
    });

    it(`locks after ${MFA_MAX_FAILURES} wrong codes, then refuses even the right one (T35)`, async function () {
      const user = await createTestUser(deps);
      const enrollment = await deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      await deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test');
      const right = await generate({ secret: enrollment.secret, epoch: Math.floor(Date.now() / 1000) + 30 });
      const wrong = right === '000000' ? '111111' : '000000';
      const outcomes = [];
      for (let i = 0; i < MFA_MAX_FAILURES; i++) outcomes.push(await deps.mfa.verifyTotp(user.id, wrong, {}));
      expect(outcomes.at(-1)).to.deep.equal({ ok: false, locked: true });
      expect(await deps.mfa.verifyTotp(user.id, right, {})).to.deep.equal({ ok: false, locked: true });
      const audit = await deps
        .knex('audit_events')
        .where({ actor_id: user.id, type: 'mfa.totp.used', outcome: 'failure' })
        .count<{ count: string }[]>({ count: '*' });
      expect(Number(audit[0]?.count)).to.equal(MFA_MAX_FAILURES + 1);
    });

    it('counts separately from passwords and per account', async function () {
      const a = await createTestUser(deps);
      const b = await createTestUser(deps);
      for (let i = 0; i < MFA_MAX_FAILURES; i++) await deps.mfa.lockout.fail(a.id);
      expect(await deps.mfa.lockout.isLocked(a.id)).to.equal(true);
      expect(await deps.mfa.lockout.isLocked(b.id)).to.equal(false);
      // The password still works (its budget is another one); only the second factor is locked.
      expect(await deps.accounts.authenticate(a.email, a.password)).to.not.equal(undefined);
    });
  });
}

describe('second-factor lockout when its store fails', function () {
  it('fails closed: a broken counter store means locked', async function () {
    const broken = new Proxy({}, { get: () => () => Promise.reject(new Error('redis down')) }) as unknown as Redis;
    const config = loadConfig(testConfigEnv());
    const knex = knexFactory({ client: 'pg', connection: config.databaseUrl ?? '' });
    const lockout = createMfaLockout(
      createLockouts({
        config,
        counters: createLockoutCounters({ redis: broken, knex }),
        logger: createLogger(config),
        counterKey: keyedDigest(randomBytes(32), 'test counters'),
      }).secondFactor,
    );
    expect(await lockout.isLocked('00000000-0000-4000-8000-000000000000')).to.equal(true);
    expect(await lockout.fail('00000000-0000-4000-8000-000000000000')).to.equal(true);
    await knex.destroy();
  });
});
