import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import * as client from 'openid-client';
import { requireRecentAuthentication } from '../../src/api/routes/gdpr.ts';
import { createCryptoBox } from '../../src/shared/crypto-box.ts';
import { Problem } from '../../src/shared/problem.ts';
import { type AuditEventRow } from '../../src/store/audit-events.ts';
import { verifyAuditChain } from '../../src/store/audit-chain.ts';
import { DataKeyMissingError, recordAad } from '../../src/services/vault.ts';
import { call, createRp, openApiChecker, signedInUser, userTokens } from '../helpers/api.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { oauthErrorOf, rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

type Export = {
  subject: string;
  profile: { id: string; email: string };
  roles: string[];
  permissions: string[];
  records: { id: string; label: string; data: Record<string, unknown> }[];
  shares: {
    granted: { record_id: string; user_id: string }[];
    received: { record_id: string; owner_id: string }[];
    offered: { record_id: string; user_id: string }[];
    offers_received: { record_id: string; owner_id: string; state: string }[];
  };
  consents: { grant_id: string; client_id: string; scopes: string[]; resources: string[] }[];
  sessions: { created_at: string }[];
  audit_trail: Record<string, unknown>[];
};

/** The test client holds the account scopes (an operator granted them); tokens get them only when asked. */
const ACCOUNT_CLIENT_SCOPE = 'openid offline_access profile email records:read records:write account:export account:erase';

for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`resource API: GDPR export and erasure (${storage} storage)`, function () {
    this.timeout(90_000);
    let servers: TestServers;
    let rp: client.Configuration;
    let conforms: Awaited<ReturnType<typeof openApiChecker>>;

    before(async function () {
      // Behind a trusted proxy, so each person below can come from an address of their own.
      servers = await startTestServers({ storage, env: { TRUST_PROXY: 'true' } });
      rp = await createRp(servers, { scope: ACCOUNT_CLIENT_SCOPE });
      conforms = await openApiChecker(servers);
    });
    after(async function () {
      await servers.stop();
    });

    const create = async (token: string, label: string, data: Record<string, unknown>) => {
      const res = await call(servers, 'POST', '/v1/records', token, { type: 'note', label, data });
      expect(res.status).to.equal(201);
      return (res.body as { id: string }).id;
    };

    it('exports everything held about the caller as one document', async function () {
      const dana = await signedInUser(servers, rp, { scopes: 'records:read records:write account:export' });
      const erin = await signedInUser(servers, rp);
      const r1 = await create(dana.token, 'Tax ID', { id: 'TX-99' });
      const r2 = await create(dana.token, 'Diary', { text: 'dear diary' });
      expect((await call(servers, 'POST', `/v1/records/${r1}/shares`, dana.token, { userId: erin.id })).status).to.equal(201);
      expect((await call(servers, 'POST', `/v1/shares/incoming/${r1}/accept`, erin.token)).status).to.equal(204);
      const fromErin = await create(erin.token, 'Shared with Dana', { x: 1 });
      expect((await call(servers, 'POST', `/v1/records/${fromErin}/shares`, erin.token, { userId: dana.id })).status).to.equal(201);
      expect((await call(servers, 'POST', `/v1/shares/incoming/${fromErin}/accept`, dana.token)).status).to.equal(204);
      // Offers not accepted are exported too (R13): Dana's to an id that is no account, Erin's waiting for Dana.
      const nobody = randomUUID();
      expect((await call(servers, 'POST', `/v1/records/${r2}/shares`, dana.token, { userId: nobody })).status).to.equal(201);
      const waiting = await create(erin.token, 'Waiting for Dana', { x: 2 });
      expect((await call(servers, 'POST', `/v1/records/${waiting}/shares`, erin.token, { userId: dana.id })).status).to.equal(201);

      const res = await call(servers, 'GET', '/v1/me/export', dana.token);
      expect(res.status, res.text).to.equal(200);
      conforms('GET', '/v1/me/export', res);
      expect(res.headers.get('Content-Disposition')).to.include('attachment');
      const doc = res.body as Export;
      expect(doc.subject).to.equal(dana.id);
      expect(doc.profile).to.deep.include({ id: dana.id, email: dana.email });
      expect(doc.roles).to.deep.equal(['user']);
      expect(doc.permissions).to.include('records:read');
      expect(doc.records.map((r) => [r.id, r.label, r.data])).to.have.deep.members([
        [r1, 'Tax ID', { id: 'TX-99' }],
        [r2, 'Diary', { text: 'dear diary' }],
      ]);
      expect(doc.shares.granted.map((s) => [s.record_id, s.user_id])).to.deep.equal([[r1, erin.id]]);
      expect(doc.shares.received.map((s) => [s.record_id, s.owner_id])).to.deep.equal([[fromErin, erin.id]]);
      expect(doc.shares.offered.map((s) => [s.record_id, s.user_id])).to.deep.equal([[r2, nobody]]);
      expect(doc.shares.offers_received.map((s) => [s.record_id, s.owner_id, s.state])).to.deep.equal([[waiting, erin.id, 'offered']]);
      // Consents: the grant Dana gave the test client when signing in, with its API scopes.
      const rpClientId = rp.clientMetadata().client_id;
      const consent = doc.consents.find((c) => c.client_id === rpClientId);
      expect(consent?.scopes).to.include.members(['openid', 'offline_access', 'records:read', 'records:write']);
      expect(consent?.resources).to.deep.equal([servers.apiUrl]);
      expect(doc.sessions.length).to.be.at.least(1);
      expect(JSON.stringify(doc.sessions)).to.not.match(/"(id|jti|session_id)"/);
      const types = doc.audit_trail.map((e) => e.type);
      expect(types).to.include.members(['user.created', 'login.password', 'record.created', 'record.shared']);
      // Erin's share with Dana names Dana, so it is part of Dana's trail too (as type, time and record).
      expect(doc.audit_trail.some((e) => e.type === 'record.shared' && e.object_id === fromErin)).to.equal(true);

      // R4: the data scopes are not enough; the export has its own scope.
      const noScope = await signedInUser(servers, rp, { scopes: 'records:read records:write' });
      const denied = await call(servers, 'GET', '/v1/me/export', noScope.token);
      expect(denied.status).to.equal(403);
      expect(denied.headers.get('WWW-Authenticate')).to.include('scope="account:export"');
    });

    it('R9 the export shows events of other people about the caller as type, time and object id only: never their id, address, user agent or app', async function () {
      const from = (ip: string, agent: string) => ({ 'X-Forwarded-For': ip, 'User-Agent': agent });
      const dana = await signedInUser(servers, rp, { scopes: 'records:read records:write account:export' });
      const erin = await signedInUser(servers, rp);
      const adminRp = await createRp(servers, { scope: 'openid offline_access records:read records:write admin' });
      const admin = await signedInUser(servers, adminRp, { roles: ['admin'], scopes: 'records:read records:write admin' });
      // Erin shares a record with Dana; an admin changes Dana's roles. Each from an address of their own.
      const created = await call(
        servers,
        'POST',
        '/v1/records',
        erin.token,
        { type: 'note', label: 'For Dana', data: {} },
        from('198.51.100.23', 'erin-agent/1.0'),
      );
      const erinRecord = (created.body as { id: string }).id;
      expect(
        (
          await call(
            servers,
            'POST',
            `/v1/records/${erinRecord}/shares`,
            erin.token,
            { userId: dana.id },
            from('198.51.100.23', 'erin-agent/1.0'),
          )
        ).status,
      ).to.equal(201);
      const patched = await call(
        servers,
        'PATCH',
        `/v1/admin/users/${dana.id}`,
        admin.token,
        { roles: ['user', 'auditor'] },
        from('198.51.100.99', 'admin-agent/2.0'),
      );
      expect(patched.status, patched.text).to.equal(200);
      // Dana's own action, from her own address.
      await call(
        servers,
        'POST',
        '/v1/records',
        dana.token,
        { type: 'note', label: 'Mine', data: {} },
        from('203.0.113.5', 'dana-agent/3.0'),
      );
      // Someone guessing Dana's password: the failure is Dana's event, the address is not hers.
      expect(
        await servers.deps.accounts.authenticate(dana.email, 'not-her-password', { ip: '198.51.100.66', userAgent: 'guesser/1.0' }),
      ).to.equal(undefined);

      const res = await call(servers, 'GET', '/v1/me/export', dana.token, undefined, from('203.0.113.5', 'dana-agent/3.0'));
      expect(res.status, res.text).to.equal(200);
      conforms('GET', '/v1/me/export', res);
      const trail = (res.body as Export).audit_trail;
      const shared = trail.find((e) => e.type === 'record.shared');
      const updated = trail.find((e) => e.type === 'user.updated');
      expect(shared).to.deep.equal({ type: 'record.shared', occurred_at: shared?.occurred_at, object_id: erinRecord });
      expect(updated).to.deep.equal({ type: 'user.updated', occurred_at: updated?.occurred_at, object_id: dana.id });
      expect(Number.isNaN(Date.parse(String(shared?.occurred_at)))).to.equal(false);
      const text = JSON.stringify(trail);
      for (const other of [erin.id, admin.id, '198.51.100.23', '198.51.100.99', 'erin-agent', 'admin-agent', '198.51.100.66', 'guesser'])
        expect(text, other).to.not.include(other);
      // The failed sign-in itself is there, without where it came from.
      expect(trail.some((e) => e.type === 'login.password' && e.outcome === 'failure' && e.ip === null && e.user_agent === null)).to.equal(
        true,
      );
      // Her own events stay whole: her address is hers.
      expect(trail.some((e) => e.type === 'record.created' && e.actor_id === dana.id && e.ip === '203.0.113.5')).to.equal(true);
    });

    it('erases the account: data key shredded, records and shares gone, tokens dead, audit chain intact', async function () {
      const frank = await signedInUser(servers, rp, { scopes: 'records:read records:write account:erase' });
      const gina = await signedInUser(servers, rp);
      const recordId = await create(frank.token, 'Medical file', { diagnosis: 'secret' });
      const ginaRecord = await create(gina.token, 'For Frank', { y: 2 });
      expect((await call(servers, 'POST', `/v1/records/${ginaRecord}/shares`, gina.token, { userId: frank.id })).status).to.equal(201);
      expect((await call(servers, 'POST', `/v1/shares/incoming/${ginaRecord}/accept`, frank.token)).status).to.equal(204);
      expect(await servers.deps.knex('record_shares').where({ user_id: frank.id }).first()).to.not.equal(undefined);
      const { knex } = servers.deps;
      const ciphertext = (await knex('records').where({ id: recordId }).first<{ payload_sealed: string }>()).payload_sealed;
      const auditBefore = await knex('audit_events').count<{ count: string }[]>({ count: '*' });

      // Real tokens carry auth_time (RFC 9068), and this sign-in just happened.
      const claims = JSON.parse(Buffer.from(frank.token.split('.')[1]!, 'base64url').toString()) as { auth_time?: number };
      expect(claims.auth_time).to.be.a('number');

      const grants = await servers.deps.accountIndex.list(frank.id, 'Grant');
      const sessions = await servers.deps.accountIndex.list(frank.id, 'Session');
      expect(grants.length).to.be.at.least(1);
      expect(sessions.length).to.be.at.least(1);
      const live = async () =>
        (await Promise.all(sessions.map((row) => servers.deps.storedOidcAdapter('Session').find(row.id)))).filter(Boolean).length;
      expect(await live()).to.be.at.least(1);

      const erased = await call(servers, 'DELETE', '/v1/me', frank.token);
      expect(erased.status, erased.text).to.equal(204);
      conforms('DELETE', '/v1/me', erased);

      expect(await knex('users').where({ id: frank.id }).first()).to.equal(undefined);
      expect(await knex('user_data_keys').where({ user_id: frank.id }).first()).to.equal(undefined);
      expect(await knex('records').where({ owner_id: frank.id }).first()).to.equal(undefined);
      expect(await knex('record_shares').where({ user_id: frank.id }).first()).to.equal(undefined);
      expect(await knex('user_roles').where({ user_id: frank.id }).first()).to.equal(undefined);

      // A copy of the ciphertext (a backup, a replica) is now undecryptable: the key is gone.
      expect(await rejectionOf(() => servers.deps.api.vault.keyOf(frank.id))).to.be.instanceOf(DataKeyMissingError);
      const guess = createCryptoBox(Buffer.alloc(32), 'd1');
      expect(() => guess.open(ciphertext, recordAad(recordId, frank.id))).to.throw(/authentication failed/);

      // Sessions and grants are gone from the authorization server's state store: the API queued
      // them and the auth server's sweep ended them within seconds (S3: the API holds no key to them).
      await eventually(
        async () => {
          const found = await Promise.all(grants.map((row) => servers.deps.oidcAdapter('Grant').find(row.id)));
          expect(found.filter(Boolean), 'grants still stored').to.have.length(0);
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      // The index names sessions by storage key (S10): look them up where they were stored.
      await eventually(async () => expect(await live(), 'sessions still stored').to.equal(0), { timeoutMs: 10_000, intervalMs: 100 });

      // The token and the refresh token no longer work.
      const after = await call(servers, 'GET', '/v1/me', frank.token);
      expect(after.status).to.equal(401);
      expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, frank.refreshToken!))).to.equal('invalid_grant');

      // Audit: nothing rewritten or removed, erasure recorded, the chain still verifies.
      const rows = await knex<AuditEventRow>('audit_events').orderBy('id');
      expect(rows.length).to.be.greaterThan(Number(auditBefore[0]?.count));
      const event = rows.find((r) => r.type === 'account.erased' && r.actor_id === frank.id);
      expect(event?.data).to.deep.include({
        records: 1,
        data_key_shredded: true,
        grants_to_revoke: grants.length,
        sessions_to_end: sessions.length,
      });
      expect(JSON.stringify(event)).to.not.include(frank.email);
      const chain = await verifyAuditChain(knex, servers.deps.auditKey);
      expect(chain.ok, JSON.stringify(chain)).to.equal(true);

      // Gina's data is untouched.
      expect((await call(servers, 'GET', `/v1/records/${ginaRecord}`, gina.token)).status).to.equal(200);
      expect((await call(servers, 'DELETE', '/v1/me', frank.token)).status).to.equal(401);
    });
  });
}

describe('resource API: erasure step-up', function () {
  this.timeout(60_000);

  it('refuses erasure with a token from an old sign-in (RFC 9470, max_age = RECENT_AUTH_SECONDS), accepts it after re-authentication', async function () {
    const servers = await startTestServers({ env: { RECENT_AUTH_SECONDS: '120' } });
    try {
      const rp = await createRp(servers, { scope: ACCOUNT_CLIENT_SCOPE });
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      await userTokens(servers, rp, user, 'account:erase', undefined, { browser });
      // Age the sign-in: the session's login time is what the provider reports as auth_time.
      const sessionId = browser.sessionId;
      const adapter = servers.deps.oidcAdapter('Session');
      const payload = await adapter.find(sessionId);
      expect(payload).to.have.property('loginTs');
      await adapter.upsert(sessionId, { ...payload, loginTs: Math.floor(Date.now() / 1000) - 600 }, 3600);

      // Same browser, same session: no password asked, but the token says the sign-in is old.
      const stale = await userTokens(servers, rp, user, 'account:erase', undefined, { browser });
      const claims = JSON.parse(Buffer.from(stale.access_token.split('.')[1]!, 'base64url').toString()) as { auth_time: number };
      expect(Date.now() / 1000 - claims.auth_time).to.be.greaterThan(590);
      const refused = await call(servers, 'DELETE', '/v1/me', stale.access_token);
      expect(refused.status).to.equal(401);
      expect(refused.headers.get('WWW-Authenticate')).to.match(/^Bearer .*error="insufficient_user_authentication".*max_age="120"/);
      expect(refused.body).to.deep.include({ type: 'urn:portcullis:problem:reauthentication-required', max_age: 120 });
      expect(await servers.deps.knex('users').where({ id: user.id }).first()).to.not.equal(undefined);

      // The client asks again with max_age=120: the provider makes the user sign in again.
      const fresh = await userTokens(servers, rp, user, 'account:erase', undefined, { browser, params: { max_age: '120' } });
      expect((await call(servers, 'DELETE', '/v1/me', fresh.access_token)).status).to.equal(204);
    } finally {
      await servers.stop();
    }
  });

  it('checks auth_time against the limit, and a missing auth_time counts as stale', function () {
    const auth = { token: { sub: 's', client_id: 'c', auth_time: 1_000 }, scopes: new Set<string>(), subject: undefined };
    expect(() => requireRecentAuthentication(auth, 300, 1_000 + 300)).to.not.throw();
    let problem: unknown;
    try {
      requireRecentAuthentication(auth, 300, 1_000 + 301);
    } catch (error) {
      problem = error;
    }
    expect(problem).to.be.instanceOf(Problem);
    expect((problem as Problem).status).to.equal(401);
    expect(() => requireRecentAuthentication({ ...auth, token: { sub: 's', client_id: 'c' } }, 300)).to.throw(Problem);
  });
});
