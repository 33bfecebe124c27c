import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { generateRecoveryCode, normalizeRecoveryCode, RECOVERY_CODE_COUNT } from '../../src/services/recovery-codes.ts';
import { createTestUser } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';

describe('recovery codes', function () {
  let deps: Deps;
  before(async function () {
    deps = await createDeps(loadConfig(testConfigEnv({ storage: 'postgres' })));
  });
  after(async function () {
    await deps.close();
  });

  it('are three groups of four unambiguous symbols and normalize case, spaces and dashes', function () {
    const codes = new Set(Array.from({ length: 200 }, generateRecoveryCode));
    expect(codes.size).to.equal(200);
    for (const code of codes) expect(code).to.match(/^[ACDEFGHJKMNPQRTUVWXY34679]{4}(-[ACDEFGHJKMNPQRTUVWXY34679]{4}){2}$/);
    expect(normalizeRecoveryCode(' k7qd-wx3a pmtc ')).to.equal('K7QDWX3APMTC');
    expect(normalizeRecoveryCode('K7QD-WX3A-PMT0')).to.equal(undefined);
    expect(normalizeRecoveryCode('short')).to.equal(undefined);
  });

  it('are stored only as keyed hashes, ten per set', async function () {
    const user = await createTestUser(deps);
    const codes = await deps.mfa.recovery.regenerate(user.id);
    expect(codes).to.have.length(RECOVERY_CODE_COUNT);
    const rows = await deps
      .knex('mfa_recovery_codes')
      .where({ user_id: user.id })
      .select<{ code_hash: Buffer; hash_version: number }[]>('code_hash', 'hash_version');
    expect(rows).to.have.length(10);
    // Keyed under the server's pepper (S6: test/security/recovery-code-hashes.test.ts).
    expect(rows.every((r) => r.hash_version === 2 && r.code_hash.length === 32)).to.equal(true);
    const first = codes[0] as string;
    expect(JSON.stringify(rows)).to.not.contain(first.replaceAll('-', ''));
  });

  it('work once, also under concurrent use', async function () {
    const user = await createTestUser(deps);
    const [a, b] = await deps.mfa.recovery.regenerate(user.id);
    expect(await deps.mfa.recovery.use(user.id, a as string)).to.equal(true);
    expect(await deps.mfa.recovery.use(user.id, a as string)).to.equal(false);
    const results = await Promise.all(Array.from({ length: 8 }, () => deps.mfa.recovery.use(user.id, b as string)));
    expect(results.filter(Boolean)).to.have.length(1);
    expect(await deps.mfa.recovery.remaining(user.id)).to.equal(8);
  });

  it('do not work for another user and stop working when regenerated', async function () {
    const user = await createTestUser(deps);
    const other = await createTestUser(deps);
    const [code] = await deps.mfa.recovery.regenerate(user.id);
    await deps.mfa.recovery.regenerate(other.id);
    expect(await deps.mfa.recovery.use(other.id, code as string)).to.equal(false);
    await deps.mfa.recovery.regenerate(user.id);
    expect(await deps.mfa.recovery.use(user.id, code as string)).to.equal(false);
  });

  it('using one is audited without the code', async function () {
    const user = await createTestUser(deps);
    const [code] = await deps.mfa.recovery.regenerate(user.id);
    const outcome = await deps.mfa.useRecoveryCode(user.id, code as string, { ip: '203.0.113.9' });
    expect(outcome).to.include({ ok: true, remaining: 9 });
    const events = await deps
      .knex('audit_events')
      .where({ actor_id: user.id, type: 'mfa.recovery_code.used' })
      .select<{ data: unknown }[]>('data');
    expect(events).to.have.length(1);
    expect(JSON.stringify(events)).to.not.contain((code as string).slice(0, 4));
  });
});
