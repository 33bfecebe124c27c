import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Redis as IORedis } from 'ioredis';
import * as client from 'openid-client';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { runNode } from '../helpers/process.ts';
import { startTestServers, testConfigEnv, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { createTestDatabase, testEnv } from '../setup.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

/**
 * Issue 20 S4: a restore done to recover from a compromise must not leave the attacker's
 * credentials working. Backup → a new sign-in (session cookie, access and refresh token) →
 * `backup restore --force` through the real CLI while the servers keep running → nothing of that
 * sign-in works any more, nor registration and initial access tokens from before the backup; in
 * Redis mode (keys under REDIS_KEY_PREFIX only) and Postgres mode (oidc_payloads).
 */
for (const storage of ['redis', 'postgres'] as const satisfies readonly StorageMode[]) {
  describe(`a restore ends every session and token (${storage})`, function () {
    this.timeout(180_000);
    let databaseUrl: string;
    // Its own prefix inside this file's, so the restore's cleanup can be told apart from a neighbour's keys.
    let prefix: string;
    let neighbourKey: string;
    const backupKey = randomBytes(32).toString('base64');
    let raw: IORedis;
    let servers: TestServers;
    let dir: string;

    before(async function () {
      dir = await mkdtemp(join(tmpdir(), 'portcullis-s4-'));
      databaseUrl = (await createTestDatabase(`s4_${storage}`)).url;
      prefix = `${testEnv.redisKeyPrefix}s4-${storage}:`;
      neighbourKey = `${testEnv.redisKeyPrefix}s4-neighbour:oidc:Session:keep-me`;
      raw = new IORedis(testEnv.redisUrl);
      servers = await startTestServers({ storage, env: { DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: prefix } });
    });

    after(async function () {
      await servers.stop();
      raw.disconnect();
      await rm(dir, { recursive: true, force: true });
    });

    const cli = (args: string[]) =>
      runNode(
        ['src/cli.ts', ...args],
        testConfigEnv({ storage, env: { DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: prefix, BACKUP_KEY: backupKey } }),
      );

    it('S4 backup → new sign-in → restore: the refresh token, the access token (introspection, userinfo), the session cookie, registration and initial access tokens stop working', async function () {
      const user = await createTestUser(servers.deps);
      const registered = await createTestClient(servers.deps, { client_name: 'S4 RP' });
      const secret = registered.client_secret ?? '';
      const rp = await client.discovery(new URL(servers.issuer), registered.client_id, secret, undefined, {
        execute: [client.allowInsecureRequests],
      });

      // Before the backup: an initial access token, and a client registered with it (RFC 7592 token).
      const { token: initialAccessToken } = await servers.deps.stores.initialAccessTokens.create({ maxUses: 10, note: 's4' });
      const register = () =>
        fetch(`${servers.issuer}/reg`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${initialAccessToken}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ client_name: 'S4 dynamic', redirect_uris: ['https://rp.example.test/cb'] }),
        });
      const dynamic = (await (await register()).json()) as { registration_client_uri: string; registration_access_token: string };
      const readRegistration = () =>
        fetch(dynamic.registration_client_uri, { headers: { Authorization: `Bearer ${dynamic.registration_access_token}` } });

      const file = join(dir, 'before-sign-in.backup');
      const created = await cli(['backup', 'create', '--out', file]);
      expect(created.code, created.stderr).to.equal(0);

      // After the backup: a sign-in (session cookie), an opaque access token for userinfo, a refresh token.
      const browser = new Browserless(servers.issuer);
      const request = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
      const callback = await signIn(browser, request.url, user);
      const tokens = await client.authorizationCodeGrant(rp, callback, {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
      });
      const { access_token: accessToken, refresh_token: refreshToken } = tokens;
      if (!refreshToken) throw new Error('no refresh token');

      const introspect = async (): Promise<boolean> => {
        const response = await fetch(`${servers.issuer}/token/introspection`, {
          method: 'POST',
          headers: { Authorization: basicAuth(registered.client_id, secret), 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: accessToken }),
        });
        expect(response.status).to.equal(200);
        return ((await response.json()) as { active: boolean }).active;
      };
      const userinfo = async () => (await fetch(`${servers.issuer}/me`, { headers: { Authorization: `Bearer ${accessToken}` } })).status;
      const refresh = async () => {
        const response = await fetch(`${servers.issuer}/token`, {
          method: 'POST',
          headers: { Authorization: basicAuth(registered.client_id, secret), 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
        });
        return { status: response.status, error: ((await response.json()) as { error?: string }).error };
      };
      /** prompt=none with the browser's cookies: a code while the session lives, login_required once it ended. */
      const silent = async (): Promise<URLSearchParams> => {
        const { url } = await authorizationRequest(rp, { prompt: 'none' });
        return (await browser.follow(url)).url.searchParams;
      };

      // Control: everything works before the restore (the refresh is not used: it would rotate).
      expect(await introspect()).to.equal(true);
      expect(await userinfo()).to.equal(200);
      expect((await silent()).get('code')).to.be.a('string');
      expect((await readRegistration()).status).to.equal(200);
      if (storage === 'redis') await raw.set(neighbourKey, 'another deployment on the same Redis');

      const restored = await cli(['backup', 'restore', file, '--force']);
      expect(restored.code, restored.stderr).to.equal(0);

      // The stores hold no flow state any more (the probes below start new, anonymous ones).
      if (storage === 'redis') {
        // Only this deployment's flow state went: a neighbour's keys on the same Redis are untouched.
        expect(await raw.get(neighbourKey)).to.equal('another deployment on the same Redis');
        const left = await raw.keys(`${prefix}oidc:*`);
        expect(left.filter((key) => !key.startsWith(`${prefix}oidc:ReplayDetection:`))).to.deep.equal([]);
        await raw.del(neighbourKey);
      } else {
        expect(await servers.deps.knex('oidc_payloads').whereNot({ type: 'ReplayDetection' }).pluck('type')).to.deep.equal([]);
      }
      // Nothing from the sign-in after the backup works, without "sign out everywhere".
      expect(await refresh()).to.deep.equal({ status: 400, error: 'invalid_grant' });
      expect(await introspect()).to.equal(false);
      expect(await userinfo()).to.equal(401);
      expect((await silent()).get('error')).to.equal('login_required');
      // Nor the registration credentials from before the backup.
      expect((await readRegistration()).status).to.equal(401);
      const registration = await register();
      expect(registration.status).to.equal(401);
      expect(((await registration.json()) as { error?: string }).error).to.equal('invalid_token');

      // The account index no longer points at anything: "sign out everywhere" finds nothing to end.
      expect(await servers.deps.accountSessions.signOutEverywhere(user.id)).to.deep.equal({ sessions: 0, grants: 0 });

      // The restored deployment is usable: once the server has the new cookie keys, the user signs in again.
      await servers.running.authApp!.tick();
      const again = new Browserless(servers.issuer);
      const second = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
      const secondCallback = await signIn(again, second.url, user);
      const fresh = await client.authorizationCodeGrant(rp, secondCallback, {
        pkceCodeVerifier: second.verifier,
        expectedState: second.state,
      });
      expect((await fetch(`${servers.issuer}/me`, { headers: { Authorization: `Bearer ${fresh.access_token}` } })).status).to.equal(200);
    });
  });
}
