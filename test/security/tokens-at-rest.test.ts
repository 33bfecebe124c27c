import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import * as client from 'openid-client';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { createTestDatabase, testEnv } from '../setup.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { signIn } from '../helpers/sign-in.ts';
import { startMfaSetups } from '../helpers/passkeys.ts';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const SESSION_COOKIE = 'portcullis.session';
const WRONG_USER_CODE = 'That code is not right';

/** Koa's signed cookies (keygrip): the attacker is granted the cookie keys too, so only the stored value decides. */
const cookieSignature = (key: string, name: string, value: string): string =>
  createHmac('sha1', key).update(`${name}=${value}`).digest('base64').replaceAll('/', '_').replaceAll('+', '-').replaceAll('=', '');

/** Every string in a JSON value: object keys and leaves. */
function jsonStrings(value: unknown, into: Set<string>): void {
  if (typeof value === 'string') into.add(value);
  else if (typeof value === 'number' || typeof value === 'boolean') into.add(String(value));
  else if (Array.isArray(value)) for (const item of value) jsonStrings(item, into);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      into.add(key);
      jsonStrings(item, into);
    }
  }
}

/** A stored string as it is, its parts around ':' (Redis key names), and its JSON strings when it parses. */
function addStored(value: string, into: Set<string>): void {
  into.add(value);
  for (const part of value.split(':')) into.add(part);
  try {
    jsonStrings(JSON.parse(value), into);
  } catch {
    // not JSON
  }
}

/** Everything under a Redis key prefix: key names, hash fields and values, set/list/zset members, strings. */
async function redisCopy(redisUrl: string, prefix: string): Promise<string[]> {
  const redis = new Redis(redisUrl);
  const texts: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        texts.push(key, key.slice(prefix.length));
        const type = await redis.type(key);
        if (type === 'string') texts.push((await redis.get(key)) ?? '');
        else if (type === 'hash') texts.push(...Object.entries(await redis.hgetall(key)).flat());
        else if (type === 'set') texts.push(...(await redis.smembers(key)));
        else if (type === 'list') texts.push(...(await redis.lrange(key, 0, -1)));
        else if (type === 'zset') texts.push(...(await redis.zrange(key, '0', '-1')));
        else texts.push(`unexpected redis type ${type}`);
      }
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return texts;
}

/** Every column of every row of the oidc state table and the account index, as text. */
async function postgresCopy(knex: Knex): Promise<string[]> {
  const texts: string[] = [];
  for (const table of ['oidc_payloads', 'account_oidc_index']) {
    for (const row of await knex(table).select<Record<string, unknown>[]>('*')) {
      for (const value of Object.values(row)) {
        if (value === null || value instanceof Date) continue;
        texts.push(typeof value === 'string' ? value : JSON.stringify(value));
      }
    }
  }
  return texts;
}

/** The device confirmation page's Allow form (action and hidden fields). */
function allowForm(html: string): { action: string; fields: Record<string, string> } {
  for (const match of html.matchAll(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)) {
    const body = match[2] ?? '';
    if (/<button[^>]*>\s*Allow\s*<\/button>/.test(body)) {
      const fields = Object.fromEntries(
        [...body.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']),
      );
      return { action: (match[1] ?? '').replaceAll('&amp;', '&'), fields };
    }
  }
  throw new Error(`no Allow form: ${html.slice(0, 300)}`);
}

type DeviceStart = Awaited<ReturnType<typeof client.initiateDeviceAuthorization>>;

/**
 * S10 (issue 20): a copy of the authorization server's state (Redis, or oidc_payloads without
 * Redis, plus the account index) taken after real sign-ins holds no value that the token,
 * userinfo, account, authorization or device endpoints accept; the real credentials still work.
 * Each storage mode gets its own database and Redis prefix, so the copy is the whole store.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S10 tokens at rest (${storage})`, function () {
    this.timeout(180_000);
    let databaseUrl: string;
    let redisPrefix: string;
    let servers: TestServers;

    before(async function () {
      databaseUrl = (await createTestDatabase(`s10_${storage}`)).url;
      redisPrefix = `${testEnv.redisKeyPrefix}s10-${storage}:`;
      servers = await startTestServers({
        storage,
        env: { DATABASE_URL: databaseUrl, ...(storage === 'redis' ? { REDIS_KEY_PREFIX: redisPrefix } : {}) },
      });
    });

    after(async function () {
      await servers.stop();
    });

    it('S10 a copy of the oidc state store and account index holds no token, code, session or user code that an endpoint accepts', async function () {
      const { issuer, deps } = servers;
      const user = await createTestUser(deps);

      // A full sign-in: code + PKCE with offline_access, refresh, userinfo (opaque access tokens).
      const web = await createTestClient(deps, { scope: 'openid offline_access profile email' });
      const rp = await client.discovery(new URL(issuer), web.client_id, web.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const browser = new Browserless(issuer);
      const first = await authorizationRequest(rp, { scope: 'openid offline_access email', prompt: 'consent' });
      const callback = await signIn(browser, first.url, user);
      const firstCode = callback.searchParams.get('code') ?? '';
      const tokens = await client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: first.verifier, expectedState: first.state });
      const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token ?? '');
      const sub = tokens.claims()?.sub ?? '';
      expect((await client.fetchUserInfo(rp, refreshed.access_token, sub)).email).to.equal(user.email);
      // A second authorization on the same session leaves a live, unredeemed code in the store.
      const live = await authorizationRequest(rp, { scope: 'openid', prompt: 'none' });
      const liveCallback = (await browser.follow(live.url)).url;
      const liveCode = liveCallback.searchParams.get('code') ?? '';
      expect(liveCode).to.have.length.greaterThan(10);
      const sessionId = [...browser.jar.cookies.values()].find((c) => c.name === SESSION_COOKIE)?.value ?? '';
      expect(sessionId).to.have.length.greaterThan(10);

      // A device flow to the end, and a second one left waiting for its user code.
      const tv = await createTestClient(deps, {
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'openid offline_access',
      });
      const device = await client.discovery(new URL(issuer), tv.client_id, undefined, client.None(), {
        execute: [client.allowInsecureRequests],
      });
      const started: DeviceStart = await client.initiateDeviceAuthorization(device, { scope: 'openid offline_access' });
      const tvBrowser = new Browserless(issuer);
      const entered = await tvBrowser.follow(started.verification_uri_complete ?? '');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(await entered.response.text())?.[1] ?? '';
      const confirm = await (await tvBrowser.submit('/device', { xsrf, user_code: started.user_code })).response.text();
      const allow = allowForm(confirm);
      const loginPage = await tvBrowser.submit(allow.action, allow.fields);
      const login = formOf(await loginPage.response.text(), '/login');
      expect(
        await (await tvBrowser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password })).response.text(),
      ).to.include('Device connected');
      const deviceTokens = await client.pollDeviceAuthorizationGrant(device, { ...started, interval: 0.01 });
      const pending: DeviceStart = await client.initiateDeviceAuthorization(device, { scope: 'openid' });

      // On the account page, the owner starts "Add a passkey" and "Set up an authenticator app" and
      // leaves both: their ceremonies are bound to the session (S12), in webauthn_challenges and mfa_totp.
      await startMfaSetups(browser, await (await browser.follow('/account')).response.text());

      // The copy: every key, field, value and JSON string of the store and the account index.
      const texts = [
        ...(storage === 'redis' ? await redisCopy(testEnv.redisUrl, redisPrefix) : []),
        ...(await postgresCopy(servers.deps.knex)),
      ];
      const candidates = new Set<string>();
      for (const text of texts) addStored(text, candidates);
      const tried = [...candidates].filter((value) => value.length >= 6 && value.length <= 4096);
      expect(tried.length).to.be.greaterThan(10);

      const real = {
        firstCode,
        liveCode,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token ?? '',
        rotatedAccessToken: refreshed.access_token,
        rotatedRefreshToken: refreshed.refresh_token ?? '',
        sessionId,
        deviceAccessToken: deviceTokens.access_token,
        deviceRefreshToken: deviceTokens.refresh_token ?? '',
        deviceCode: started.device_code,
        pendingDeviceCode: pending.device_code,
        userCode: started.user_code.replace('-', ''),
        pendingUserCode: pending.user_code.replace('-', ''),
      };
      const dump = texts.join('\n');
      const leaked = Object.entries(real)
        .filter(([, value]) => dump.includes(value))
        .map(([name]) => name);
      // Nor anywhere else in the database (a stolen backup): every table, every column, as text.
      const tables = await deps.knex.raw<{ rows: { name: string }[] }>(
        `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
      );
      expect(tables.rows.length).to.be.greaterThan(10);
      for (const { name: table } of tables.rows) {
        for (const [name, value] of Object.entries(real)) {
          const hit = await deps.knex.raw<{ rows: unknown[] }>('SELECT 1 FROM ?? AS t WHERE strpos(to_jsonb(t)::text, ?) > 0 LIMIT 1', [
            table,
            value,
          ]);
          if (hit.rows.length > 0) leaked.push(`${name} in ${table}`);
        }
      }

      const basic = basicAuth(web.client_id, web.client_secret);
      const token = async (body: Record<string, string>) =>
        fetch(`${issuer}/token`, {
          method: 'POST',
          headers: { Authorization: basic, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(body),
        });
      const cookieKey = (servers.config.cookieKeys ?? (await deps.keys.cookieKeys()))[0] ?? '';
      const sessionCookie = (value: string) =>
        `${SESSION_COOKIE}=${value}; ${SESSION_COOKIE}.sig=${cookieSignature(cookieKey, SESSION_COOKIE, value)}`;
      const silent = authorizationRequest(rp, { scope: 'openid', prompt: 'none' });

      const accepted: string[] = [];
      const check = async (value: string) => {
        const [refresh, code, userinfo, account, auth] = await Promise.all([
          token({ grant_type: 'refresh_token', refresh_token: value }),
          // The live code's verifier: an attacker who also has it still needs the code itself.
          token({ grant_type: 'authorization_code', code: value, redirect_uri: RP_REDIRECT, code_verifier: live.verifier }),
          fetch(`${issuer}/me`, { headers: { Authorization: `Bearer ${value}` } }),
          fetch(`${issuer}/account`, { headers: { Cookie: sessionCookie(value) }, redirect: 'manual' }),
          fetch((await silent).url, { headers: { Cookie: sessionCookie(value) }, redirect: 'manual' }),
        ]);
        if (refresh.status === 200) accepted.push(`refresh token: ${value}`);
        if (code.status === 200) accepted.push(`authorization code: ${value}`);
        if (userinfo.status === 200) accepted.push(`bearer: ${value}`);
        if (account.status === 200) accepted.push(`session cookie on /account: ${value}`);
        if (new URL(auth.headers.get('Location') ?? '/', issuer).searchParams.has('code'))
          accepted.push(`session cookie on /auth: ${value}`);
        await Promise.all([refresh, code, userinfo, account, auth].map((response) => response.body?.cancel() ?? Promise.resolve()));
      };
      for (let i = 0; i < tried.length; i += 8) await Promise.all(tried.slice(i, i + 8).map(check));

      // User codes: one browser on the device page, each value typed in turn.
      const codeBrowser = new Browserless(issuer);
      let formXsrf = /name="xsrf" value="([^"]+)"/.exec(await (await codeBrowser.follow('/device')).response.text())?.[1] ?? '';
      for (const value of tried) {
        const { response } = await codeBrowser.submit('/device', { xsrf: formXsrf, user_code: value });
        const html = await response.text();
        if (!html.includes(WRONG_USER_CODE)) accepted.push(`user code: ${value} (${response.status})`);
        formXsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? formXsrf;
      }
      expect({ leaked, accepted }).to.deep.equal({ leaked: [], accepted: [] });

      // Control: the real credentials still work.
      const redeemed = await token({
        grant_type: 'authorization_code',
        code: liveCode,
        redirect_uri: RP_REDIRECT,
        code_verifier: live.verifier,
      });
      expect(redeemed.status, await redeemed.clone().text()).to.equal(200);
      const again = await client.refreshTokenGrant(rp, refreshed.refresh_token ?? '');
      expect((await client.fetchUserInfo(rp, again.access_token, sub)).email).to.equal(user.email);
      const account = await fetch(`${issuer}/account`, { headers: { Cookie: sessionCookie(sessionId) }, redirect: 'manual' });
      expect(account.status).to.equal(200);
      expect(await account.text()).to.include(user.email);
      const silentAgain = await fetch((await silent).url, { headers: { Cookie: sessionCookie(sessionId) }, redirect: 'manual' });
      expect(new URL(silentAgain.headers.get('Location') ?? '/', issuer).searchParams.get('code')).to.be.a('string');
      const { response: pendingPage } = await codeBrowser.submit('/device', { xsrf: formXsrf, user_code: pending.user_code });
      const pendingHtml = await pendingPage.text();
      expect(allowForm(pendingHtml).action).to.be.a('string');
      expect(pendingHtml).to.include(pending.user_code);
      expect((await client.refreshTokenGrant(device, deviceTokens.refresh_token ?? '')).access_token).to.be.a('string');
    });
  });
}
