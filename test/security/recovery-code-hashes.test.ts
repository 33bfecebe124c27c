import { createHash, createHmac, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { generateRecoveryCode, normalizeRecoveryCode } from '../../src/services/recovery-codes.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, testConfigEnv } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/**
 * Issue 20 S6: recovery codes were stored as SHA-256 of the code with a fixed prefix and no
 * secret, so whoever holds a database dump could test guesses offline against every account at
 * once. They are now stored under HMAC-SHA-256 keyed by a server secret (server_secrets, sealed
 * under MASTER_KEY); hashes written by an earlier release keep working once and are rekeyed.
 */
describe('S6 recovery codes under a keyed hash', function () {
  this.timeout(60_000);
  let deps: Deps;
  before(async function () {
    deps = await createDeps(loadConfig(testConfigEnv({ storage: 'postgres' })));
  });
  after(async function () {
    await deps.close();
  });

  /** What an earlier release stored: SHA-256 of the normalised code with a fixed prefix. */
  const unkeyed = (code: string): Buffer =>
    createHash('sha256')
      .update(`portcullis-recovery:${normalizeRecoveryCode(code) ?? ''}`)
      .digest();
  const dumpOf = async (userId: string): Promise<string[]> =>
    (await deps.knex('mfa_recovery_codes').where({ user_id: userId }).select<{ code_hash: Buffer }[]>('code_hash')).map((r) =>
      r.code_hash.toString('hex'),
    );

  it("S6 a database dump's recovery-code hashes match no candidate code hashed without the server's secret", async function () {
    const user = await createTestUser(deps);
    const codes = await deps.mfa.recovery.regenerate(user.id);
    const dump = await dumpOf(user.id);
    expect(dump).to.have.length(10);
    // The attacker's best case: a candidate list that holds the real codes, hashed every way that needs no secret.
    const candidates = [...codes, ...Array.from({ length: 1000 }, generateRecoveryCode)];
    for (const code of candidates) {
      const normalized = normalizeRecoveryCode(code) ?? '';
      for (const guess of [
        unkeyed(code),
        createHash('sha256').update(normalized).digest(),
        createHash('sha256').update(code).digest(),
        createHmac('sha256', randomBytes(32)).update(normalized).digest(),
      ]) {
        expect(dump, `a hash of ${code} computed without the server's secret`).to.not.include(guess.toString('hex'));
      }
    }
    // With the server's secret (opened with MASTER_KEY, as the server does) every code is found: the hash is keyed by that secret.
    const row = await deps.knex('server_secrets').where({ name: 'recovery-codes' }).first<{ secret_sealed: string }>();
    const pepper = createMasterBox(Buffer.from(testEnv.masterKey, 'base64')).open(row.secret_sealed, 'server-secret:recovery-codes');
    expect(codes.map((code) => createHmac('sha256', pepper).update(unkeyed(code)).digest('hex'))).to.have.members(dump);
    // Each code verifies once.
    expect(await deps.mfa.recovery.use(user.id, codes[0]!)).to.equal(true);
    expect(await deps.mfa.recovery.use(user.id, codes[0]!)).to.equal(false);
    const concurrent = await Promise.all(Array.from({ length: 8 }, () => deps.mfa.recovery.use(user.id, codes[1]!)));
    expect(concurrent.filter(Boolean)).to.have.length(1);
  });

  it('S6 codes stored by an earlier release (unkeyed SHA-256) still work, each once, and the next start rekeys the rest', async function () {
    const user = await createTestUser(deps);
    const codes = Array.from({ length: 3 }, generateRecoveryCode);
    // Rows as the earlier release wrote them (no hash_version: the column's default says "unkeyed").
    await deps.knex('mfa_recovery_codes').insert(codes.map((code) => ({ user_id: user.id, code_hash: unkeyed(code) })));
    expect(await deps.mfa.recovery.use(user.id, codes[0]!)).to.equal(true);
    expect(await deps.mfa.recovery.use(user.id, codes[0]!)).to.equal(false);

    // The next start of the auth server rekeys every unkeyed hash: a dump no longer matches them.
    const servers = await startTestServers({ storage: 'postgres' });
    try {
      const dump = await dumpOf(user.id);
      expect(dump).to.have.length(3);
      for (const code of codes) expect(dump, code).to.not.include(unkeyed(code).toString('hex'));
      // The rest still work, once, also when presented concurrently.
      const concurrent = await Promise.all(Array.from({ length: 8 }, () => servers.deps.mfa.recovery.use(user.id, codes[1]!)));
      expect(concurrent.filter(Boolean)).to.have.length(1);
      expect(await servers.deps.mfa.recovery.use(user.id, codes[2]!)).to.equal(true);
      expect(await servers.deps.mfa.recovery.use(user.id, codes[2]!)).to.equal(false);
      expect(await servers.deps.mfa.recovery.remaining(user.id)).to.equal(0);
    } finally {
      await servers.stop();
    }
  });
});
