import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import * as client from 'openid-client';
import { loadConfig } from '../../src/config/load.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';
import { apiStores, createDeps, type Deps } from '../../src/deps.ts';
import { createCryptoBox } from '../../src/shared/crypto-box.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { dataKeyAad, recordAad } from '../../src/services/vault.ts';
import { API_REPLAY_NAMESPACE, createReplayStore } from '../../src/store/dpop-replay.ts';
import { createApiServices } from '../../src/services/api-services.ts';
import { createAuditService } from '../../src/services/audit.ts';
import { createVaultBox } from '../../src/shared/vault-key.ts';
import { createAccountIndexReader } from '../../src/store/account-index.ts';
import { createAuditEventStore } from '../../src/store/audit-events.ts';
import { createOidcRevocations } from '../../src/store/oidc-revocations.ts';
import { createRoleStore } from '../../src/store/roles.ts';
import { createUserStore } from '../../src/store/users.ts';
import { call, type ApiResponse } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { startPrivateRedis, stopInstance, type Instance } from '../helpers/cluster.ts';
import { eventually } from '../helpers/wait.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { runNode, spawnNode, waitForReady } from '../helpers/process.ts';
import { oauthErrorOf, rejectionOf } from '../helpers/rejections.ts';
import { freePort, testConfigEnv, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/**
 * S3: the resource API runs as its own process with its own database role and without
 * MASTER_KEY, so whoever takes it over can neither read nor unseal what the identity server
 * signs with. Roles are cluster-wide in Postgres: each run makes its own pair and drops them.
 */
const suffix = randomBytes(4).toString('hex');
const roles = { auth: `pc_auth_${suffix}`, api: `pc_api_${suffix}` };
const urlAs = (role: string): string => {
  const url = new URL(testEnv.databaseUrl);
  url.username = role;
  url.password = '';
  return url.toString();
};
/** The environment of one process of a split deployment: its own role and keys, nothing else. */
function processEnv(role: 'auth' | 'api', storage: StorageMode, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    ...testConfigEnv({ storage }),
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    DATABASE_URL: urlAs(roles[role]),
    ...extra,
  };
  if (role === 'api') {
    Reflect.deleteProperty(env, 'MASTER_KEY');
    env.VAULT_KEY = testEnv.vaultKey;
  }
  return env;
}

async function startRole(role: 'auth' | 'api', port: number, env: Record<string, string>): Promise<Instance> {
  const full = { ...env, ...(role === 'auth' ? { AUTH_PORT: String(port) } : { API_PORT: String(port) }) };
  const spawned = spawnNode(['src/main.ts', '--only', role], full);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForReady(`${url}/readyz`);
  } catch (error) {
    spawned.child.kill('SIGKILL');
    throw new Error(`${role} did not become ready:\n${spawned.output()}`, { cause: error });
  }
  return { ...spawned, port, url, env: full };
}

const pgCode = async (query: Promise<unknown>): Promise<string | undefined> => {
  try {
    await query;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
};

describe("S3 the API process cannot unseal the identity server's keys", function () {
  this.timeout(180_000);
  let owner: Knex;

  before(async function () {
    owner = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    const made = await runNode(['src/cli.ts', 'db', 'roles', '--auth-role', roles.auth, '--api-role', roles.api], testConfigEnv());
    expect(made.code, made.stderr + made.stdout).to.equal(0);
  });
  after(async function () {
    for (const role of [roles.auth, roles.api]) {
      await owner.raw('DROP OWNED BY ??', [role]).catch(() => undefined);
      await owner.raw('DROP ROLE IF EXISTS ??', [role]).catch(() => undefined);
    }
    await owner.destroy();
  });

  it("S3 as the API's database role, signing keys, MFA secrets, cookie keys, client secrets, server secrets and oidc state are refused (permission denied)", async function () {
    const api = knexFactory({ client: 'pg', connection: urlAs(roles.api), pool: { min: 0, max: 1 } });
    try {
      const refused: [string, string][] = [
        ['signing_keys', 'private_jwk_sealed'],
        ['cookie_keys', 'key_sealed'],
        ['server_secrets', 'secret_sealed'],
        ['mfa_totp', 'secret_sealed'],
        ['mfa_recovery_codes', 'code_hash'],
        ['webauthn_credentials', 'public_key'],
        ['webauthn_challenges', 'challenge'],
        ['oauth_clients', 'secret_sealed'],
        ['oauth_clients', 'metadata'],
        ['initial_access_tokens', 'token_hash'],
        ['oidc_payloads', 'payload'],
        ['lockouts', 'key'],
        ['users', 'password_hash'],
        ['users', 'webauthn_user_handle'],
      ];
      for (const [table, column] of refused)
        expect(await pgCode(api.raw('SELECT ?? FROM ?? LIMIT 1', [column, table])), `${table}.${column}`).to.equal('42501');
      expect(await pgCode(api.raw("UPDATE signing_keys SET state = 'retired'")), 'UPDATE signing_keys').to.equal('42501');
      expect(await pgCode(api.raw("INSERT INTO cookie_keys (key_sealed) VALUES ('x')")), 'INSERT cookie_keys').to.equal('42501');
      expect(await pgCode(api.raw('DELETE FROM oidc_payloads')), 'DELETE oidc_payloads').to.equal('42501');
      expect(await pgCode(api.raw('UPDATE users SET password_hash = NULL')), 'UPDATE users.password_hash').to.equal('42501');
      // What the API works with answers.
      for (const sql of [
        'SELECT id, owner_id, payload_sealed FROM records LIMIT 1',
        'SELECT user_id, key_wrapped FROM user_data_keys LIMIT 1',
        'SELECT id, email, disabled FROM users LIMIT 1',
        'SELECT kind, account_id, client_id FROM account_oidc_index LIMIT 1',
      ])
        expect(await pgCode(api.raw(sql)), sql).to.equal(undefined);
    } finally {
      await api.destroy();
    }
  });

  it("S3 the API's services run as its database role: admin listing, a role change that raises MFA, disable, RBAC, records, offers, shared reads, audit search, export and erasure", async function () {
    const owner$ = await createDeps(loadConfig(testConfigEnv({ storage: 'postgres' })), { logger: createLogger({ logLevel: 'silent' }) });
    const apiKnex = knexFactory({ client: 'pg', connection: urlAs(roles.api), pool: { min: 0, max: 2 } });
    try {
      const [admin, bob, carol] = [
        await createTestUser(owner$, { roles: ['admin'] }),
        await createTestUser(owner$),
        await createTestUser(owner$),
      ];
      const auditEvents = createAuditEventStore(apiKnex, Buffer.from(testEnv.auditKey, 'base64'));
      const audit = createAuditService({ store: auditEvents, logger: createLogger({ logLevel: 'silent' }) });
      const api = createApiServices({
        knex: apiKnex,
        stores: apiStores(apiKnex),
        vault: createVaultBox(Buffer.from(testEnv.vaultKey, 'base64')),
        users: createUserStore(apiKnex),
        roles: createRoleStore(apiKnex),
        audit,
        auditEvents,
        accountIndex: createAccountIndexReader(apiKnex),
        revocations: createOidcRevocations(apiKnex),
        shareLimits: { pendingPerSharer: 10, pendingPerRecipient: 10, declineCooldownDays: 30 },
      });
      const actor = (userId: string) => ({ userId, clientId: 'process-split', ip: '192.0.2.7' });
      // Administration: list, read, a role that requires a second factor (ends bob's sign-ins), disable.
      expect((await api.userAdmin.list({ limit: 100, emailPrefix: bob.email })).items.map((u) => u.id)).to.include(bob.id);
      expect(await api.userAdmin.get(bob.id)).to.deep.include({ id: bob.id, disabled: false });
      expect((await api.userAdmin.update(actor(admin.id), bob.id, { roles: ['user', 'admin'] })).roles).to.deep.equal(['admin', 'user']);
      expect((await api.userAdmin.update(actor(admin.id), carol.id, { disabled: true })).disabled).to.equal(true);
      expect((await api.userAdmin.update(actor(admin.id), carol.id, { disabled: false })).disabled).to.equal(false);
      expect((await api.rbac.subject(bob.id)).roles).to.deep.equal(['admin', 'user']);
      // Records: create, change, offer, accept, a shared read (audited), leave, the owner's export.
      const record = await api.records.create(actor(carol.id), { type: 'note', label: 'as the API role', data: { n: 1 } });
      await api.records.update(actor(carol.id), record.id, { label: 'changed' });
      await api.records.share(actor(carol.id), record.id, bob.id);
      expect((await api.records.incomingOffers(actor(bob.id))).map((o) => o.record_id)).to.deep.equal([record.id]);
      await api.records.acceptOffer(actor(bob.id), record.id);
      expect((await api.records.get(actor(bob.id), record.id)).label).to.equal('changed');
      expect((await api.records.list(actor(bob.id), { limit: 10 })).items).to.have.length(1);
      await api.records.leaveShare(actor(bob.id), record.id);
      expect(await api.stores.auditSearch.search({ limit: 5, type: 'record.accessed' })).to.have.length.at.least(1);
      expect((await api.gdpr.exportFor(actor(carol.id)))?.records).to.have.length(1);
      // Erasure: everything the API does to an account, as its role.
      expect(await api.gdpr.erase(actor(carol.id))).to.equal(true);
      expect(await owner$.knex('users').where({ id: carol.id }).first()).to.equal(undefined);
      expect(await owner$.knex('oidc_state_revocations').where({ kind: 'Account', id: carol.id }).first()).to.not.equal(undefined);
    } finally {
      await apiKnex.destroy();
      await owner$.close();
    }
  });

  it('S3 production: an API process refuses MASTER_KEY and needs VAULT_KEY; the auth server needs MASTER_KEY and not VAULT_KEY', async function () {
    const production = {
      NODE_ENV: 'production',
      ISSUER: 'https://id.example.com',
      API_URL: 'https://api.example.com',
      AUDIT_KEY: `${'B'.repeat(43)}=`,
      DATABASE_URL: 'postgres://db/x',
    };
    const master = { MASTER_KEY: `${'A'.repeat(43)}=` };
    const vault = { VAULT_KEY: `${'C'.repeat(43)}=` };
    const problems = (env: Record<string, string>, processRoles: ('auth' | 'api')[]) =>
      productionSettingProblems(loadConfig({ ...production, ...env }), {}, processRoles).join('; ');
    expect(problems({ ...vault }, ['api'])).to.equal('');
    expect(problems({ ...master, ...vault }, ['api'])).to.include('MASTER_KEY must not be given to the API');
    expect(problems({}, ['api'])).to.include('VAULT_KEY');
    expect(problems({ ...master }, ['auth'])).to.equal('');
    expect(problems({ ...vault }, ['auth'])).to.include('MASTER_KEY');
    expect(problems({ ...master, ...vault }, ['auth', 'api'])).to.equal('');
    // And the process itself: one line naming MASTER_KEY, before anything is opened.
    const started = await runNode(['src/main.ts', '--only', 'api'], { ...production, ...master, ...vault, API_PORT: '0' });
    expect(started.code).to.equal(1);
    expect(started.stderr.trim()).to.match(
      /^cannot start: refusing to start in production: .*MASTER_KEY must not be given to the API process/,
    );
  });

  it("S3 the API's Redis user reaches its own DPoP proof keys and nothing else (portcullis redis acl)", async function () {
    const redis = await startPrivateRedis();
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-acl-'));
    const prefix = `acl-${suffix}:`;
    const password = randomBytes(24).toString('base64url');
    const passwordFile = join(dir, 'api-redis-password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    const env = { ...testConfigEnv(), REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix };
    const clients: Redis[] = [];
    const connect = (url: string) => {
      const client = new Redis(url, { keyPrefix: prefix, maxRetriesPerRequest: 0, lazyConnect: true });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    };
    let api: Instance | undefined;
    try {
      const printed = await runNode(['src/cli.ts', 'redis', 'acl', '--password-file', passwordFile], env);
      expect(printed.code, printed.stderr).to.equal(0);
      expect(printed.stdout.trim()).to.match(
        new RegExp(`^ACL SETUSER portcullis_api reset on #[0-9a-f]{64} resetchannels ~${prefix}api-dpop:\\* -@all \\+ping `),
      );
      expect(printed.stdout).to.not.include(password);
      const applied = await runNode(['src/cli.ts', 'redis', 'acl', '--password-file', passwordFile, '--apply'], env);
      expect(applied.code, applied.stderr).to.equal(0);

      const asApi = connect(redis.url.replace('redis://', `redis://portcullis_api:${password}@`));
      await asApi.connect();
      // What the API does: DPoP proof ids in its namespace (SET NX EX, DEL), PING for readiness.
      const replay = createReplayStore({ redis: asApi, knex: owner, namespace: API_REPLAY_NAMESPACE });
      expect(await replay.firstUse('jkt:jti-1', 60)).to.equal(true);
      expect(await replay.firstUse('jkt:jti-1', 60)).to.equal(false);
      await replay.release('jkt:jti-1');
      expect(await replay.firstUse('jkt:jti-1', 60)).to.equal(true);
      expect(await asApi.ping()).to.equal('PONG');
      // What it may not: the oidc state, the auth server's claims and lockouts, listing keys, the server's config.
      const admin = connect(redis.url);
      await admin.set('oidc:Session:someone', '{"sealed":"v1.x"}');
      const refusals: [string, () => Promise<unknown>][] = [
        ['GET oidc state', () => asApi.get('oidc:Session:someone')],
        ['DEL oidc state', () => asApi.del('oidc:Session:someone')],
        ['SET an auth claim', () => asApi.set('once:abc', '1')],
        ['GET a lockout', () => asApi.get('lockout:password:x')],
        ['SET outside the prefix', () => asApi.call('SET', 'elsewhere', '1')],
        ['SCAN', () => asApi.scan('0')],
        ['KEYS', () => asApi.keys('*')],
        ['CONFIG GET', () => asApi.config('GET', 'requirepass')],
        ['FLUSHDB', () => asApi.flushdb()],
        ['EVAL', () => asApi.eval('return 1', 0)],
        ['SUBSCRIBE', () => connect(redis.url.replace('redis://', `redis://portcullis_api:${password}@`)).subscribe('x')],
      ];
      for (const [what, attempt] of refusals) expect(String(await rejectionOf(attempt)), what).to.match(/NOPERM/);
      expect(await admin.get('oidc:Session:someone')).to.equal('{"sealed":"v1.x"}');

      // The API process itself runs as that user (readiness pings Redis).
      const port = await freePort();
      api = await startRole('api', port, {
        ...processEnv('api', 'redis', { API_URL: `http://127.0.0.1:${port}`, DATABASE_URL: testEnv.databaseUrl }),
        REDIS_URL: redis.url.replace('redis://', `redis://portcullis_api:${password}@`),
        REDIS_KEY_PREFIX: prefix,
      });
      const ready = (await (await fetch(`${api.url}/readyz`)).json()) as { checks: Record<string, string> };
      expect(ready.checks).to.deep.include({ redis: 'ok' });
    } finally {
      await stopInstance(api);
      for (const client of clients) client.disconnect();
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    describe(`with the roles and keys split (${storage} storage)`, function () {
      let deps: Deps;
      let auth: Instance | undefined;
      let api: Instance | undefined;
      let issuer: string;
      let apiUrl: string;
      let rp: client.Configuration;

      before(async function () {
        const [authPort, apiPort] = [await freePort(), await freePort()];
        issuer = `http://127.0.0.1:${authPort}`;
        apiUrl = `http://127.0.0.1:${apiPort}`;
        const urls = { ISSUER: issuer, API_URL: apiUrl };
        // The test itself is the operator: users and clients made with the owner's connection.
        const config = loadConfig({ ...testConfigEnv({ storage }), ...urls });
        deps = await createDeps(config, { logger: createLogger(config) });
        [auth, api] = await Promise.all([
          startRole('auth', authPort, processEnv('auth', storage, urls)),
          startRole('api', apiPort, processEnv('api', storage, urls)),
        ]);
        const registered = await createTestClient(deps, {
          scope: 'openid offline_access records:read records:write account:export account:erase',
        });
        rp = await client.discovery(new URL(issuer), registered.client_id, registered.client_secret, undefined, {
          execute: [client.allowInsecureRequests],
        });
      });
      after(async function () {
        const codes = await Promise.all([stopInstance(api), stopInstance(auth)]);
        await deps.close();
        expect(codes).to.deep.equal([0, 0]);
        // Nothing either process did needed a right its role lacks.
        for (const instance of [auth, api]) expect(instance?.output()).to.not.match(/permission denied/);
      });

      const tokensFor = async (user: { email: string; password: string }, scope: string, browser = new Browserless(issuer)) => {
        const { url, verifier, state } = await authorizationRequest(rp, {
          scope: `openid offline_access ${scope}`,
          prompt: 'consent',
          resource: apiUrl,
        });
        const callback = await signIn(browser, url, user);
        return client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: apiUrl });
      };
      const servers = () => ({ apiUrl }) as TestServers;
      const api$ = (method: string, path: string, token: string, body?: unknown): Promise<ApiResponse> =>
        call(servers(), method, path, token, body);

      it('S3 the API process runs without MASTER_KEY as its own role, and records work end to end: create, read, share, accept, export, erase', async function () {
        const environ = await readFile(`/proc/${api?.child.pid}/environ`, 'utf8');
        expect(environ).to.not.include('MASTER_KEY');
        expect(environ).to.include(`DATABASE_URL=${urlAs(roles.api)}`);

        const alice = await createTestUser(deps);
        const bob = await createTestUser(deps);
        const [aliceBrowser, bobBrowser] = [new Browserless(issuer), new Browserless(issuer)];
        const aliceTokens = await tokensFor(alice, 'records:read records:write account:export account:erase', aliceBrowser);
        const bobTokens = await tokensFor(bob, 'records:read records:write', bobBrowser);
        const a = aliceTokens.access_token;
        const b = bobTokens.access_token;

        const created = await api$('POST', '/v1/records', a, { type: 'medical', label: 'Allergies', data: { penicillin: true } });
        expect(created.status, created.text).to.equal(201);
        const id = (created.body as { id: string }).id;
        expect((await api$('GET', `/v1/records/${id}`, a)).body).to.deep.include({ label: 'Allergies', data: { penicillin: true } });
        const updated = await api$('PATCH', `/v1/records/${id}`, a, { label: 'Allergies (checked)' });
        expect(updated.status, updated.text).to.equal(200);
        expect((await api$('POST', `/v1/records/${id}/shares`, a, { userId: bob.id })).status).to.equal(201);
        expect((await api$('POST', `/v1/shares/incoming/${id}/accept`, b)).status).to.equal(204);
        const read = await api$('GET', `/v1/records/${id}`, b);
        expect(read.status, read.text).to.equal(200);
        expect(read.body).to.deep.include({ label: 'Allergies (checked)', access: 'shared' });
        // Bob's read is in the audit chain, written by the API (AUDIT_KEY, no MASTER_KEY).
        expect(await owner('audit_events').where({ type: 'record.accessed', actor_id: bob.id }).first()).to.not.equal(undefined);
        // The account pages, served by the auth server as its own role: Alice's access history
        // (S11), Bob's received share and leaving it (record type and owner, never the payload).
        const alicePage = await aliceBrowser.follow(`${issuer}/account`);
        expect(alicePage.response.status).to.equal(200);
        expect(await alicePage.response.text()).to.include(bob.id);
        const bobPage = await bobBrowser.follow(`${issuer}/account`);
        const bobHtml = await bobPage.response.text();
        expect(bobHtml).to.include(alice.email);
        const leave = formOf(bobHtml, `/account/shared-with-me/${id}/leave`);
        const left = await bobBrowser.submit(leave.action, { csrf: leave.csrf });
        expect(left.url.search).to.equal('?notice=share-left');
        expect((await api$('GET', `/v1/records/${id}`, b)).status).to.equal(404);

        const exported = await api$('GET', '/v1/me/export', a);
        expect(exported.status, exported.text).to.equal(200);
        const document = exported.body as {
          records: { label: string }[];
          consents: { client_id: string; scopes: string[]; resources: string[] }[];
        };
        expect(document.records.map((r) => r.label)).to.deep.equal(['Allergies (checked)']);
        // Consents come from the account index, not from unsealing the grants.
        expect(document.consents).to.have.length.at.least(1);
        expect(document.consents[0]?.scopes).to.include.members(['openid', 'records:read', 'account:erase']);
        expect(document.consents[0]?.resources).to.deep.equal([apiUrl]);

        const indexed = await owner('account_oidc_index')
          .where({ account_id: alice.id })
          .select<{ kind: string; id: string }[]>('kind', 'id');
        expect(indexed.map((row) => row.kind).sort()).to.deep.equal(['Grant', 'Session']);
        // Grant rows name the grant; session rows its storage key (S10).
        const stored = (row: { kind: string; id: string }) =>
          (row.kind === 'Grant' ? deps.oidcAdapter('Grant') : deps.storedOidcAdapter('Session')).find(row.id);
        for (const row of indexed) expect(await stored(row), row.kind).to.not.equal(undefined);
        const erased = await api$('DELETE', '/v1/me', a);
        expect(erased.status, `${erased.text}\n${api?.output().slice(-3000) ?? ''}`).to.equal(204);
        expect(await owner('users').where({ id: alice.id }).first()).to.equal(undefined);
        expect(await owner('records').where({ id }).first()).to.equal(undefined);
        // The auth server ends the erased account's sessions and grants (the API cannot reach them).
        await eventually(
          async () => {
            const [row] = await owner('oidc_state_revocations').count<{ count: number }[]>({ count: '*' });
            expect(Number(row?.count), 'revocations still queued').to.equal(0);
          },
          { timeoutMs: 15_000, intervalMs: 200 },
        );
        for (const row of indexed) expect(await stored(row), row.kind).to.equal(undefined);
        if (storage === 'postgres') {
          expect(await owner('oidc_payloads').whereRaw(`payload->>'accountId' = ?`, [alice.id]).first()).to.equal(undefined);
        }
        expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, aliceTokens.refresh_token!))).to.equal('invalid_grant');
        expect((await api$('GET', '/v1/records', a)).status).to.equal(401);
        // Bob's own session is untouched.
        expect((await client.refreshTokenGrant(rp, bobTokens.refresh_token!)).access_token).to.be.a('string');
      });

      it('S3 data keys wrapped under MASTER_KEY are re-wrapped under VAULT_KEY once (keys rewrap-vault), and the API opens the records made before', async function () {
        // A record as the release before made it: its owner's data key wrapped under MASTER_KEY.
        const carol = await createTestUser(deps);
        const master = createMasterBox(Buffer.from(testEnv.masterKey, 'base64'));
        const dataKey = randomBytes(32);
        const recordId = randomUUID();
        await owner('user_data_keys').insert({ user_id: carol.id, key_wrapped: master.seal(dataKey, dataKeyAad(carol.id)) });
        const sealed = createCryptoBox(dataKey, 'd1').seal(
          JSON.stringify({ label: 'From before', data: { n: 1 } }),
          recordAad(recordId, carol.id),
        );
        await owner('records').insert({ id: recordId, owner_id: carol.id, type: 'note', payload_sealed: sealed });
        const token = (await tokensFor(carol, 'records:read')).access_token;

        // Until it is re-wrapped the API cannot open it (503), and its log says what to run.
        const before = await api$('GET', `/v1/records/${recordId}`, token);
        expect(before.status, before.text).to.equal(503);
        expect(before.text).to.not.include('MASTER_KEY');
        // The log line travels through a pipe: it may arrive just after the answer.
        await eventually(() => expect(api?.output() ?? '', 'the API log').to.include('portcullis keys rewrap-vault'), { timeoutMs: 5000 });

        const env = testConfigEnv({ storage });
        const first = await runNode(['src/cli.ts', 'keys', 'rewrap-vault'], env);
        expect(first.code, first.stderr).to.equal(0);
        expect(JSON.parse(first.stdout)).to.deep.include({ resealed: { 'user_data_keys.key_wrapped': 1 }, unreadable: [] });
        expect((JSON.parse(first.stdout) as { status: { not_current: number } }).status.not_current).to.equal(0);
        const wrapped = (await owner('user_data_keys').where({ user_id: carol.id }).first<{ key_wrapped: string }>()).key_wrapped;
        expect(wrapped.split('.')[1]).to.match(/^v-/);
        // Idempotent: a second run finds nothing to do.
        const second = await runNode(['src/cli.ts', 'keys', 'rewrap-vault'], env);
        expect(second.code, second.stderr).to.equal(0);
        expect(JSON.parse(second.stdout)).to.deep.include({ resealed: { 'user_data_keys.key_wrapped': 0 }, unreadable: [] });

        const after = await api$('GET', `/v1/records/${recordId}`, token);
        expect(after.status, after.text).to.equal(200);
        expect(after.body).to.deep.include({ label: 'From before', data: { n: 1 } });
      });
    });
  }
});
