import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import * as client from 'openid-client';
import { generate } from 'otplib';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps } from '../../src/deps.ts';
import { masterKeyId } from '../../src/shared/master-key.ts';
import { MASTER_COLUMNS } from '../../src/store/sealed-columns.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { startBalancer, type Balancer } from '../helpers/cluster.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { runNode, spawnNode, waitForReady, type Spawned } from '../helpers/process.ts';
import { freePort, testConfigEnv, type StorageMode } from '../helpers/servers.ts';
import { createTestDatabase, testEnv } from '../setup.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { signIn, type PageHandler } from '../helpers/sign-in.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * Issue 20 S2: rotating MASTER_KEY while instances run loses nothing. Two instances (each a real
 * `node src/main.ts` with the auth server and the API) behind one balancer for the issuer and one
 * for the API, on one database and Redis prefix. Both start on the old key; instance A restarts
 * with the new key and the old one as MASTER_KEY_PREVIOUS; instance B, still on the old key, seals
 * new values (a TOTP enrolment, signing keys rotated with its configuration; a record's data key is
 * VAULT_KEY's, S3, and goes under the same VAULT_KEY on both)
 * and a user signs in there; B restarts like A; `keys reseal`; `keys status` is clean; both restart
 * with the new key alone: every user signs in with TOTP (and a recovery code), every record opens,
 * tokens and the session issued before the rotation still work.
 */
const keys = (current: string, previous?: string): Record<string, string> => ({
  MASTER_KEY: current,
  ...(previous ? { MASTER_KEY_PREVIOUS: previous } : {}),
});

type User = { id: string; email: string; password: string; totp?: string; lastStep: number; recoveryCodes?: string[] };
type Tokens = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

for (const storage of ['redis', 'postgres'] as const satisfies readonly StorageMode[]) {
  describe(`S2 master-key rotation with two instances running (${storage})`, function () {
    this.timeout(300_000);
    let databaseUrl: string;
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    let db: Knex;
    let shared: Record<string, string>;
    let issuerLb: Balancer | undefined;
    let apiLb: Balancer | undefined;
    const ports = { A: { auth: 0, api: 0 }, B: { auth: 0, api: 0 } };
    const running: Partial<Record<'A' | 'B', Spawned>> = {};
    let rp: client.Configuration;
    let clientAuth: { id: string; secret: string };
    const users: User[] = [];

    async function start(name: 'A' | 'B', env: Record<string, string>): Promise<void> {
      const spawned = spawnNode(['src/main.ts'], {
        ...shared,
        AUTH_PORT: String(ports[name].auth),
        API_PORT: String(ports[name].api),
        ...env,
      });
      running[name] = spawned;
      try {
        // A process that cannot start exits at once: say so then, rather than after the readiness timeout.
        const exited = spawned.exited.then((code) => {
          throw new Error(`exited with code ${String(code)}`);
        });
        await Promise.race([
          Promise.all([
            waitForReady(`http://127.0.0.1:${ports[name].auth}/readyz`),
            waitForReady(`http://127.0.0.1:${ports[name].api}/readyz`),
          ]),
          exited,
        ]);
        exited.catch(() => undefined);
      } catch (error) {
        spawned.child.kill('SIGKILL');
        await spawned.exited;
        Reflect.deleteProperty(running, name);
        throw new Error(`instance ${name} did not become ready:\n${spawned.output()}`, { cause: error });
      }
    }

    async function stop(name: 'A' | 'B'): Promise<void> {
      const spawned = running[name];
      if (!spawned) return;
      if (spawned.child.exitCode === null && spawned.child.signalCode === null) spawned.child.kill('SIGTERM');
      expect(await spawned.exited, `instance ${name} exit code`).to.equal(0);
      Reflect.deleteProperty(running, name);
    }

    const cli = (env: Record<string, string>, args: string[]) => runNode(['src/cli.ts', ...args], { ...shared, ...env });

    const pin = (name: 'A' | 'B') => {
      issuerLb?.pin(name);
      apiLb?.pin(name);
    };

    /** The next TOTP code of the user whose time step has not been used yet (the replay guard refuses a used one). */
    async function nextCode(user: User): Promise<string> {
      if (!user.totp) throw new Error('no authenticator app');
      const now = Math.floor(Date.now() / 1000);
      const step = Math.max(Math.floor(now / 30) - 1, user.lastStep + 1);
      // Accepted steps are the current one ±1, three codes a user can spend within one step; the
      // test uses at most three per user, so it never has to wait for the clock.
      if (step > Math.floor(now / 30) + 1) throw new Error(`${user.email} has used every TOTP step the server accepts now`);
      user.lastStep = step;
      return generate({ secret: user.totp, epoch: step * 30 + 1 });
    }

    /**
     * A sign-in through the real pages of a client that requires a second factor: password, then
     * the authenticator app (set up on the way when the user has none, keeping the recovery codes
     * shown) or a recovery code, then consent. Returns the tokens for the API and the browser.
     */
    async function signInAs(user: User, options: { recoveryCode?: string } = {}): Promise<{ tokens: Tokens; browser: Browserless }> {
      const { url, verifier, state } = await authorizationRequest(rp, {
        scope: 'openid offline_access records:read records:write',
        prompt: 'consent',
        resource: shared.API_URL!,
      });
      const browser = new Browserless(shared.ISSUER!);
      const enrolment: PageHandler = async (html) => {
        if (!html.includes('id="totp-secret"')) return undefined;
        user.totp = (/id="totp-secret">([^<]+)</.exec(html)?.[1] ?? '').replace(/\s/g, '');
        const form = formOf(html, '/enroll/totp');
        return { action: form.action, fields: { csrf: form.csrf, code: await nextCode(user) } };
      };
      const recoveryCodes: PageHandler = (html) => {
        if (!html.includes('Save your recovery codes')) return undefined;
        user.recoveryCodes = [...html.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
        const form = formOf(html, '/continue');
        return { action: form.action, fields: { csrf: form.csrf } };
      };
      const appCode: PageHandler = async (html) => {
        if (!html.includes('/mfa/totp') || options.recoveryCode !== undefined) return undefined;
        const form = formOf(html, '/mfa/totp');
        return { action: form.action, fields: { csrf: form.csrf, code: await nextCode(user) } };
      };
      const callback = await signIn(browser, url, user, { ...options, pages: [enrolment, recoveryCodes, appCode] });
      const tokens = await client.authorizationCodeGrant(
        rp,
        callback,
        { pkceCodeVerifier: verifier, expectedState: state },
        { resource: shared.API_URL! },
      );
      return { tokens, browser };
    }

    async function api(
      method: string,
      path: string,
      token: string,
      body?: unknown,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await fetch(`${shared.API_URL!}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
    }

    async function createRecord(token: string, label: string): Promise<string> {
      const created = await api('POST', '/v1/records', token, { type: 'note', label, data: { text: label } });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
      return created.body.id as string;
    }

    async function introspect(token: string): Promise<boolean> {
      const response = await fetch(`${shared.ISSUER!}/token/introspection`, {
        method: 'POST',
        headers: {
          Authorization: basicAuth(clientAuth.id, clientAuth.secret),
          'Content-Type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token }),
      });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { active: boolean }).active;
    }

    /** Key ids of every value sealed under a master key, by table. */
    /** Key ids per column sealed under MASTER_KEY (the records' data keys are VAULT_KEY's, S3). */
    async function keyIdsInUse(): Promise<Record<string, string[]>> {
      const found: Record<string, string[]> = {};
      for (const spec of MASTER_COLUMNS) {
        if (!(await db.schema.hasTable(spec.table))) continue;
        const values = await db(spec.table).whereNotNull(spec.column).pluck<string[]>(spec.column);
        found[`${spec.table}.${spec.column}`] = [...new Set(values.map((v) => v.split('.')[1] ?? ''))].sort();
      }
      return found;
    }

    const kidOf = (jwt: string): string => (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

    before(async function () {
      databaseUrl = (await createTestDatabase(`s2_${storage}`)).url;
      db = knexFactory({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 2 } });
      for (const name of ['A', 'B'] as const) ports[name] = { auth: await freePort(), api: await freePort() };
      const [issuerPort, apiPort] = [await freePort(), await freePort()];
      shared = testConfigEnv({
        storage,
        env: {
          DATABASE_URL: databaseUrl,
          REDIS_KEY_PREFIX: `${testEnv.redisKeyPrefix}s2-${storage}:`,
          ISSUER: `http://127.0.0.1:${issuerPort}`,
          API_URL: `http://127.0.0.1:${apiPort}`,
          HOST: '127.0.0.1',
          KEYS_REFRESH_SECONDS: '1',
        },
      });
      issuerLb = await startBalancer(issuerPort, { A: ports.A.auth, B: ports.B.auth });
      apiLb = await startBalancer(apiPort, { A: ports.A.api, B: ports.B.api });
      // Users and the client (nothing of them is sealed under the master key) before any instance runs.
      const deps = await createDeps(loadConfig({ ...shared, ...keys(oldKey) }));
      try {
        for (let i = 0; i < 3; i++) users.push({ ...(await createTestUser(deps)), lastStep: 0 });
        const registered = await createTestClient(deps, { require_mfa: true, client_name: 'S2 RP' });
        clientAuth = { id: registered.client_id, secret: registered.client_secret ?? '' };
      } finally {
        await deps.close();
      }
    });

    after(async function () {
      for (const name of ['A', 'B'] as const) {
        running[name]?.child.kill('SIGKILL');
        await running[name]?.exited;
      }
      await issuerLb?.close();
      await apiLb?.close();
      await db.destroy();
    });

    it('S2 a master-key rotation with two instances running loses nothing: TOTP, records, signing keys, tokens and sessions survive, and the servers start on the new key alone', async function () {
      const [u1, u2, u3] = users as [User, User, User];
      const oldId = masterKeyId(Buffer.from(oldKey, 'base64'));
      const newId = masterKeyId(Buffer.from(newKey, 'base64'));

      // 0. Both instances on the old key. u1 sets up TOTP on A, gets tokens and a session, stores a record.
      await Promise.all([start('A', keys(oldKey)), start('B', keys(oldKey))]);
      rp = await client.discovery(new URL(shared.ISSUER!), clientAuth.id, clientAuth.secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      pin('A');
      const before = await signInAs(u1);
      const r1 = await createRecord(before.tokens.access_token, 'sealed before the rotation');

      // 1. A restarts with the new key, the old one as MASTER_KEY_PREVIOUS. u3 sets up TOTP and stores a record there.
      await stop('A');
      await start('A', keys(newKey, oldKey));
      pin('A');
      const third = await signInAs(u3);
      const r3 = await createRecord(third.tokens.access_token, 'sealed by A under the new key');

      // 2. B, still on the old key only, seals new values: u2's TOTP seed, new signing keys (u2's data key: VAULT_KEY).
      pin('B');
      const second = await signInAs(u2);
      expect(u2.recoveryCodes).to.have.length(10);
      const r2 = await createRecord(second.tokens.access_token, 'sealed by B under the old key');
      // And u1 signs in on B.
      await signInAs(u1);
      // Signing keys rotated with B's configuration (MASTER_KEY = the old key), signing at once.
      const rotated = await cli(keys(oldKey), ['keys', 'rotate']);
      expect(rotated.code, rotated.stderr).to.equal(0);
      const published = (JSON.parse(rotated.stdout) as { published: { kid: string; alg: string }[] }).published;
      for (const key of published) {
        const activated = await cli(keys(oldKey), ['keys', 'activate', key.kid]);
        expect(activated.code, activated.stderr).to.equal(0);
      }
      const newEs256 = published.find((k) => k.alg === 'ES256')!.kid;
      // A (new key + previous) opens the signing keys B's side sealed under the old key, and signs with them.
      pin('A');
      // A loads the new keys on its next refresh (KEYS_REFRESH_SECONDS=1): refresh until the token is signed with one.
      await eventually(
        async () => {
          second.tokens = await client.refreshTokenGrant(rp, second.tokens.refresh_token ?? '', { resource: shared.API_URL! });
          expect(kidOf(second.tokens.access_token)).to.equal(newEs256);
        },
        { timeoutMs: 20_000, intervalMs: 200, message: 'A signs with the key B activated' },
      );

      // 3. B restarts like A. `keys status` names what is still under the old key; `keys reseal` moves it; status is clean.
      await stop('B');
      await start('B', keys(newKey, oldKey));
      const dirty = await cli(keys(newKey, oldKey), ['keys', 'status']);
      expect(dirty.code, dirty.stderr).to.equal(2);
      const dirtyReport = JSON.parse(dirty.stdout) as {
        current: string;
        previous: string[];
        clean: boolean;
        tables: Record<string, Record<string, number>>;
      };
      expect(dirtyReport).to.include({ current: newId, clean: false });
      expect(dirtyReport.previous).to.deep.equal([oldId]);
      // The records' data keys are VAULT_KEY's (S3): not MASTER_KEY's to count or move.
      expect(dirtyReport.tables).to.not.have.property('user_data_keys.key_wrapped');
      for (const column of [
        'signing_keys.private_jwk_sealed',
        'mfa_totp.secret_sealed',
        'cookie_keys.key_sealed',
        'server_secrets.secret_sealed',
      ]) {
        expect(dirtyReport.tables[column]?.[oldId], column).to.be.greaterThan(0);
      }
      const resealed = await cli(keys(newKey, oldKey), ['keys', 'reseal', '--batch-size', '2']);
      expect(resealed.code, resealed.stderr).to.equal(0);
      const again = await cli(keys(newKey, oldKey), ['keys', 'reseal']);
      expect(again.code, again.stderr).to.equal(0);
      expect(Object.values((JSON.parse(again.stdout) as { resealed: Record<string, number> }).resealed).every((n) => n === 0)).to.equal(
        true,
      );
      const clean = await cli(keys(newKey, oldKey), ['keys', 'status']);
      expect(clean.code, clean.stdout + clean.stderr).to.equal(0);
      expect(JSON.parse(clean.stdout)).to.include({ clean: true });
      for (const [column, ids] of Object.entries(await keyIdsInUse())) if (ids.length > 0) expect(ids, column).to.deep.equal([newId]);

      // 4. Both restart with the new key alone: they start, and nothing was lost.
      await Promise.all([stop('A'), stop('B')]);
      await Promise.all([start('A', keys(newKey)), start('B', keys(newKey))]);
      const signedIn: Record<string, Tokens> = {};
      for (const [user, on] of [
        [u1, 'A'],
        [u2, 'B'],
        [u3, 'A'],
      ] as const) {
        pin(on);
        signedIn[user.id] = (await signInAs(user)).tokens;
        expect(kidOf(signedIn[user.id]!.access_token)).to.equal(newEs256);
      }
      // A recovery code B hashed under the server's pepper before the rotation still works (once).
      pin('B');
      await signInAs(u2, { recoveryCode: u2.recoveryCodes![0]! });
      for (const [user, record, label] of [
        [u1, r1, 'sealed before the rotation'],
        [u2, r2, 'sealed by B under the old key'],
        [u3, r3, 'sealed by A under the new key'],
      ] as const) {
        for (const on of ['A', 'B'] as const) {
          pin(on);
          const read = await api('GET', `/v1/records/${record}`, signedIn[user.id]!.access_token);
          expect(read.status, `${label} on ${on}`).to.equal(200);
          expect(read.body).to.include({ label });
        }
      }
      // Tokens and the session from before the rotation: the refresh token introspects and refreshes, the session still signs in silently.
      pin('B');
      expect(await introspect(before.tokens.refresh_token ?? '')).to.equal(true);
      const refreshed = await client.refreshTokenGrant(rp, before.tokens.refresh_token ?? '', { resource: shared.API_URL! });
      expect((await api('GET', '/v1/me', refreshed.access_token)).status).to.equal(200);
      pin('A');
      expect(await introspect(second.tokens.refresh_token ?? '')).to.equal(true);
      const silent = await authorizationRequest(rp, { scope: 'openid', prompt: 'none' });
      const { url: back } = await before.browser.follow(silent.url);
      expect(back.searchParams.get('error'), back.toString()).to.equal(null);
      expect(back.searchParams.get('code')).to.be.a('string');
    });
  });
}
