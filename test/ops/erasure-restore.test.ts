import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import * as client from 'openid-client';
import { verifyAuditChain } from '../../src/store/audit-chain.ts';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { runNode } from '../helpers/process.ts';
import { oauthErrorOf } from '../helpers/rejections.ts';
import { startTestServers, testConfigEnv, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { createTestDatabase } from '../setup.ts';

/**
 * S5: an erasure survives a restore of a backup taken before it. The erasure journal is kept out
 * of what a restore replaces (merged instead) and re-applied by `backup restore`; the erased
 * user's addresses and user agents in the audit log are pseudonymised, and the keyed chain
 * still verifies.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S5 erasure survives a restore (${storage} storage)`, function () {
    this.timeout(180_000);
    const backupKey = randomBytes(32).toString('base64');
    const env = { DATABASE_URL: '' /* its own database, made in before() */, TRUST_PROXY: 'true' };
    const cli = (...args: string[]) => runNode(['src/cli.ts', ...args], { ...testConfigEnv({ storage }), ...env, BACKUP_KEY: backupKey });
    let knex: Knex;
    let dir: string;
    let servers: TestServers | undefined;

    before(async function () {
      dir = await mkdtemp(join(tmpdir(), 'portcullis-erasure-'));
      env.DATABASE_URL = (await createTestDatabase(`erasure_${storage}`)).url;
      knex = knexFactory({ client: 'pg', connection: env.DATABASE_URL, pool: { min: 0, max: 2 } });
    });
    after(async function () {
      await servers?.stop();
      await knex.destroy();
      await rm(dir, { recursive: true, force: true });
    });

    it('S5 backup → erase → restore: the user stays erased (no sign-in, records and data key gone, API 401/404), addresses pseudonymised, audit verify passes', async function () {
      servers = await startTestServers({ storage, env });
      // The client may hold the erasure scope (an operator granted it); Frank's token asks for it.
      const rp = await createRp(servers, { scope: 'openid offline_access profile email records:read records:write account:erase' });
      const { issuer, apiUrl } = servers;
      const sameAddresses = { ISSUER: issuer, AUTH_PORT: new URL(issuer).port, API_URL: apiUrl, API_PORT: new URL(apiUrl).port };
      const frank = await signedInUser(servers, rp, { scopes: 'records:read records:write account:erase' });
      const gina = await signedInUser(servers, rp);
      const phone = { 'X-Forwarded-For': '203.0.113.77', 'User-Agent': 'frank-phone/1.0' };
      const created = await call(
        servers,
        'POST',
        '/v1/records',
        frank.token,
        { type: 'medical', label: 'Diagnosis', data: { x: 1 } },
        phone,
      );
      expect(created.status).to.equal(201);
      const recordId = (created.body as { id: string }).id;
      expect((await call(servers, 'POST', `/v1/records/${recordId}/shares`, frank.token, { userId: gina.id }, phone)).status).to.equal(201);
      expect((await call(servers, 'POST', `/v1/shares/incoming/${recordId}/accept`, gina.token)).status).to.equal(204);
      // A sign-in from Frank's phone, as the interaction records it.
      await servers.deps.audit.record({ type: 'login.password', actorId: frank.id, ip: '203.0.113.77', userAgent: 'frank-phone/1.0' });

      const file = join(dir, 'before-erasure.backup');
      const backup = await cli('backup', 'create', '--out', file);
      expect(backup.code, backup.stderr).to.equal(0);

      expect((await call(servers, 'DELETE', '/v1/me', frank.token, undefined, phone)).status).to.equal(204);
      // Pseudonymised: the clear address and user agent are gone, the keyed chain still verifies.
      const afterErasure = await knex<AuditEventRow>('audit_events').where('actor_id', frank.id);
      expect(afterErasure.length).to.be.greaterThan(3);
      expect(
        afterErasure.filter((r) => r.ip !== null || r.user_agent !== null),
        'clear ip or user agent left',
      ).to.deep.equal([]);
      expect(
        afterErasure.filter((r) => r.personal_nonce !== null),
        'digest nonces left (they would let a key holder find the address)',
      ).to.deep.equal([]);
      expect(
        afterErasure.some((r) => r.ip_digest !== null && r.user_agent_digest !== null),
        'digests stay',
      ).to.equal(true);
      expect(await knex('audit_events').where('ip', '203.0.113.77').orWhere('user_agent', 'frank-phone/1.0').first()).to.equal(undefined);
      const chain = await verifyAuditChain(knex, servers.deps.auditKey);
      expect(chain.ok, JSON.stringify(chain)).to.equal(true);
      const verified = await cli('audit', 'verify');
      expect(verified.code, verified.stderr).to.equal(0);
      await servers.stop();
      servers = undefined;

      // The backup predates the erasure: it holds Frank, his wrapped data key and his record.
      const restored = await cli('backup', 'restore', file, '--force');
      expect(restored.code, restored.stderr).to.equal(0);

      expect(await knex('users').where({ id: frank.id }).first(), 'the account is back').to.equal(undefined);
      expect(await knex('user_data_keys').where({ user_id: frank.id }).first()).to.equal(undefined);
      expect(await knex('records').where({ id: recordId }).first()).to.equal(undefined);
      expect(await knex('record_shares').where({ record_id: recordId }).first()).to.equal(undefined);
      const restoredRows = await knex<AuditEventRow>('audit_events').where('actor_id', frank.id);
      expect(restoredRows.length).to.be.greaterThan(3);
      expect(
        restoredRows.filter((r) => r.ip !== null || r.user_agent !== null || r.personal_nonce !== null),
        'clear ip, user agent or nonce back from the backup',
      ).to.deep.equal([]);
      expect((await cli('audit', 'verify')).code, 'the restored chain verifies').to.equal(0);
      expect(JSON.parse(restored.stdout)).to.deep.include({ erasures_reapplied: 1 });

      // The same addresses as before, so the tokens issued then name this issuer and audience.
      servers = await startTestServers({ storage, env: { ...env, ...sameAddresses } });
      expect(await servers.deps.accounts.authenticate(frank.email, frank.password, {})).to.equal(undefined);
      expect((await call(servers, 'GET', '/v1/me', frank.token)).status).to.equal(401);
      const ginaRead = await call(servers, 'GET', `/v1/records/${recordId}`, gina.token);
      expect(ginaRead.status, ginaRead.text).to.equal(404);
      expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, frank.refreshToken!))).to.equal('invalid_grant');
      // Gina, who was not erased, came back with the restore.
      expect((await call(servers, 'GET', '/v1/me', gina.token)).status).to.equal(200);
    });
  });
}
