import { expect } from 'chai';
import fc from 'fast-check';
import * as client from 'openid-client';
import OidcRouter from 'oidc-provider/lib/helpers/router.js';
import { apiRoutes } from '../../src/api/routes/index.ts';
import { buildAuthApp } from '../../src/auth/app.ts';
import { enrollTotp, userTokens } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import {
  describeRequest,
  fuzzRequest,
  judge,
  leakPatterns,
  POLLUTION_CANARY,
  type FuzzPools,
  type FuzzRequest,
  type Pairs,
  type Recipe,
} from '../helpers/http-fuzz.ts';
import { ALL_ROUTES, AUTH_ROUTES, routeKeys, type SurfaceRoute } from '../helpers/http-surface.ts';
import { repoRoot } from '../helpers/process.ts';
import { socketRequest } from '../helpers/raw-socket.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { signInToAccount } from '../helpers/sign-in.ts';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';

/**
 * R12 DAST: a fast-check pass over every route of both servers (test/helpers/http-surface.ts)
 * with generated methods, paths, headers, queries and bodies, real credentials mixed in. No
 * response may be a 5xx, leak internals or be malformed HTTP, and both servers must still serve
 * normal requests afterwards. Runs in both storage modes, bounded in time (docs/security.md R12).
 *
 * Knobs (environment):
 *   FUZZ_SEED           the seed (default 1912); a failure prints it with fast-check's path
 *   FUZZ_RUNS           requests per storage mode (default 4000); setting it lifts the time cap
 *   FUZZ_TIME_LIMIT_MS  time cap per storage mode (default 25 s; the run stops there, green)
 *   FUZZ_SHRINK=1       shrink a failure to a smaller request (slower)
 *   FUZZ_KEEP_GOING=1   list every distinct problem instead of stopping at the first
 *   FUZZ_STATS=1|2      print statuses per route (2: with the start of each body)
 *   FUZZ_TRACE=<route>  print each request to a route ending so, e.g. FUZZ_TRACE='api /v1/records'
 */
const SEED = process.env.FUZZ_SEED === undefined ? 1912 : Number(process.env.FUZZ_SEED);
const RUNS = Number(process.env.FUZZ_RUNS ?? 4000);
const TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? (process.env.FUZZ_RUNS ? 3_600_000 : 25_000));
const KEEP_GOING = process.env.FUZZ_KEEP_GOING === '1';
const STATS = process.env.FUZZ_STATS;
const TRACE = process.env.FUZZ_TRACE;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

type Credentials = { pools: Record<'auth' | 'api', FuzzPools>; health: { clientId: string; clientSecret: string; refreshToken: string } };

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

/** Real clients, users, tokens, sessions and half-finished flows, so fuzzed requests reach the code behind the checks. */
async function prepareCredentials(servers: TestServers): Promise<Credentials> {
  const { deps, issuer, apiUrl } = servers;
  const allScopes = 'openid offline_access profile email records:read records:write account:export account:erase admin';
  const fuzzClient = await createTestClient(deps, {
    scope: allScopes,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  const clientId = fuzzClient.client_id;
  const clientSecret = fuzzClient.client_secret ?? '';
  const rp = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, { execute: [client.allowInsecureRequests] });
  const deviceClient = await createTestClient(deps, {
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_GRANT, 'refresh_token'],
    redirect_uris: [],
    post_logout_redirect_uris: [],
    scope: 'openid offline_access records:read',
  });

  // Users: one whose token the fuzzer may use for anything (erasure included), one it can only
  // read and write records with, an admin, and a bystander the admin routes may act on.
  const user = await createTestUser(deps);
  const eraser = await createTestUser(deps);
  const bystander = await createTestUser(deps);
  const admin = await createTestUser(deps, { roles: ['admin'] });
  // REQUIRE_VERIFIED_EMAIL is on (so its pages are fuzzed too): these sign in without a code.
  for (const account of [user, eraser, bystander, admin]) await deps.stores.users.markEmailVerified(account.id);
  const adminTotp = await enrollTotp(servers, admin);
  const userTokenSet = await userTokens(servers, rp, user, 'records:read records:write');
  const eraserTokens = await userTokens(servers, rp, eraser, 'records:read records:write account:export account:erase');
  const adminTokens = await userTokens(servers, rp, admin, 'records:read records:write admin', adminTotp);
  const clientToken = await json(
    await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { ...FORM, Authorization: basicAuth(clientId, clientSecret) },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: apiUrl, scope: 'records:read' }),
    }),
  );
  const record = await json(
    await fetch(`${apiUrl}/v1/records`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${userTokenSet.access_token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'note', label: 'fuzz', data: { a: 1 } }),
    }),
  );

  // A record the eraser offers to the user: an incoming offer for the user's token and account page.
  const offered = await json(
    await fetch(`${apiUrl}/v1/records`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${eraserTokens.access_token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'note', label: 'offered', data: { b: 2 } }),
    }),
  );
  await fetch(`${apiUrl}/v1/records/${String(offered.id)}/shares`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${eraserTokens.access_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId: user.id }),
  });

  // Interactions left open at the login and at the consent step, each with its cookies and CSRF token.
  const interactions: { uid: string; cookie: string; csrf: string }[] = [];
  for (const stopAt of ['login', 'consent', 'login']) {
    const browser = new Browserless(issuer);
    const flow = client.buildAuthorizationUrl(rp, {
      redirect_uri: 'https://rp.example.test/cb',
      scope: 'openid records:read',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      resource: apiUrl,
      prompt: 'consent',
    });
    let { response, url } = await browser.follow(flow);
    let html = await response.text();
    if (stopAt === 'consent') {
      const login = formOf(html, '/login');
      ({ response, url } = await browser.submit(login.action, { csrf: login.csrf, email: bystander.email, password: bystander.password }));
      html = await response.text();
    }
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    interactions.push({ uid: url.pathname.split('/')[2] ?? '', cookie: browser.jar.header(url), csrf });
  }

  // A signed-in account page session.
  const accountBrowser = new Browserless(issuer);
  const accountCsrf = /name="csrf" value="([^"]+)"/.exec(await signInToAccount(accountBrowser, user))?.[1] ?? '';
  const accountCookie = accountBrowser.jar.header(new URL('/account', issuer));

  // A device flow waiting for its user code, and a dynamically registered client.
  const device = await json(
    await fetch(`${issuer}/device/auth`, {
      method: 'POST',
      headers: FORM,
      body: new URLSearchParams({ client_id: deviceClient.client_id, scope: 'openid records:read', resource: apiUrl }),
    }),
  );
  const { token: initialAccessToken } = await deps.stores.initialAccessTokens.create({ maxUses: 1000 });
  const registered = await json(
    await fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${initialAccessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_name: 'Fuzzed', redirect_uris: ['https://app.example/cb'] }),
    }),
  );

  // Kept from the fuzzer: the health check's own client and user.
  const healthClient = await createTestClient(deps, { grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] });
  const healthRp = await client.discovery(new URL(issuer), healthClient.client_id, healthClient.client_secret, undefined, {
    execute: [client.allowInsecureRequests],
  });
  const healthUser = await createTestUser(deps);
  await deps.stores.users.markEmailVerified(healthUser.id);
  const healthTokens = await userTokens(servers, healthRp, healthUser, 'records:read');

  const strings = (values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string' && v.length > 0);
  const tokens = strings([userTokenSet.access_token, eraserTokens.access_token, adminTokens.access_token, clientToken.access_token]);
  const values = strings([
    clientId,
    clientSecret,
    deviceClient.client_id,
    registered.client_id,
    registered.client_secret,
    'https://rp.example.test/cb',
    apiUrl,
    issuer,
    user.email,
    user.password,
    bystander.email,
    userTokenSet.refresh_token,
    eraserTokens.refresh_token,
    userTokenSet.id_token,
    ...tokens,
    device.user_code,
    device.device_code,
    accountCsrf,
    ...interactions.map((i) => i.csrf),
    ...interactions.map((i) => i.uid),
    record.id,
    user.id,
    bystander.id,
    'openid records:read',
    'records:read records:write admin',
    'account:erase',
  ]);
  const shared = { values, cookies: strings([accountCookie, ...interactions.map((i) => i.cookie)]) };
  const pkce = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' };
  const authorize = {
    client_id: clientId,
    response_type: 'code',
    redirect_uri: 'https://rp.example.test/cb',
    scope: 'openid records:read',
    state: 'fuzz',
    resource: apiUrl,
    ...pkce,
  };
  const pairs = (...objects: Record<string, unknown>[]): Pairs[] => objects.map((o) => Object.entries(o));
  const interactionForm = pairs(...interactions.map((i) => ({ csrf: i.csrf })), {
    csrf: interactions[0]?.csrf,
    email: user.email,
    password: user.password,
  });
  const accountForm = (fields: Record<string, unknown> = {}) => pairs({ csrf: accountCsrf, ...fields });
  const authRecipes: Record<string, Recipe> = {
    '/auth': {
      query: pairs(authorize, { ...authorize, prompt: 'none' }, { ...authorize, request_uri: 'urn:ietf:params:oauth:request_uri:x' }),
    },
    '/token': {
      form: pairs(
        { grant_type: 'client_credentials', resource: apiUrl, scope: 'records:read' },
        { grant_type: 'refresh_token', refresh_token: userTokenSet.refresh_token, resource: apiUrl },
        {
          grant_type: 'authorization_code',
          code: 'x',
          redirect_uri: 'https://rp.example.test/cb',
          code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
        },
        { grant_type: DEVICE_GRANT, device_code: device.device_code, client_id: deviceClient.client_id },
      ),
    },
    '/token/introspection': {
      form: pairs({ token: userTokenSet.access_token }, { token: userTokenSet.refresh_token, token_type_hint: 'refresh_token' }),
    },
    '/token/revocation': { form: pairs({ token: eraserTokens.access_token, token_type_hint: 'access_token' }) },
    '/device/auth': { form: pairs({ client_id: deviceClient.client_id, scope: 'openid records:read', resource: apiUrl }) },
    '/device': {
      form: pairs({ user_code: device.user_code, xsrf: 'x' }, { user_code: device.user_code, xsrf: 'x', confirm: 'yes' }),
      query: pairs({ user_code: device.user_code }),
    },
    '/request': { form: pairs(authorize) },
    '/me': { query: pairs({ access_token: userTokenSet.access_token }) },
    '/session/end': {
      query: pairs({ id_token_hint: userTokenSet.id_token, post_logout_redirect_uri: 'https://rp.example.test/bye', client_id: clientId }),
    },
    '/session/end/confirm': { form: pairs({ xsrf: 'x', logout: 'yes' }) },
    '/reg': {
      json: pairs(
        { client_name: 'Fuzzed again', redirect_uris: ['https://app.example/cb'] },
        { redirect_uris: ['https://app.example/cb'], grant_types: ['client_credentials'], scope: 'admin' },
      ),
    },
    '/reg/:clientId': {
      json: pairs({ client_id: registered.client_id, client_secret: registered.client_secret, redirect_uris: ['https://app.example/cb'] }),
    },
    '/interaction/:uid/login': { form: interactionForm },
    '/interaction/:uid/passkey': {
      form: pairs({ csrf: interactions[0]?.csrf, response: '{"id":"x","rawId":"x","type":"public-key","response":{}}' }),
    },
    '/interaction/:uid/mfa/:method': { form: pairs({ csrf: interactions[0]?.csrf, code: '123456' }) },
    '/interaction/:uid/enroll/totp': { form: pairs({ csrf: interactions[0]?.csrf, code: '123456' }) },
    '/interaction/:uid/enroll/totp/begin': { form: interactionForm },
    '/interaction/:uid/passkey/options': { form: interactionForm },
    '/interaction/:uid/confirm': { form: interactionForm },
    '/interaction/:uid/abort': { form: interactionForm },
    '/interaction/:uid/continue': { form: interactionForm },
    '/account/callback': { query: pairs({ state: 'x', error: 'access_denied' }) },
    '/account/login': { query: pairs({ reauth: '1' }) },
    '/account': { query: pairs({ notice: 'Your password was changed.' }) },
    '/account/password': {
      form: accountForm({ current_password: 'wrong', new_password: 'a-new-long-password', confirm_password: 'a-new-long-password' }),
    },
    '/account/totp': { form: accountForm({ code: '123456' }) },
    '/account/passkeys': { form: accountForm({ response: '{}', name: 'key' }) },
    '/account/passkeys/options': { form: accountForm() },
    '/account/passkeys/:id/rename': { form: accountForm({ name: 'renamed' }) },
    '/account/passkeys/:id/remove': { form: accountForm() },
    '/account/grants/:id/revoke': { form: accountForm() },
    '/account/offers/:recordId/accept': { form: accountForm() },
    '/account/offers/:recordId/decline': { form: accountForm() },
    '/account/shared-with-me/:recordId/leave': { form: accountForm() },
    '/account/notices/reuse/dismiss': { form: accountForm() },
    '/account/totp/remove': { form: accountForm() },
    '/account/recovery-codes': { form: accountForm() },
  };
  const newRecord = { type: 'note', label: 'fuzzed', data: { a: 1 } };
  const apiRecipes: Record<string, Recipe> = {
    '/v1/records': { query: pairs({ limit: '5' }, { type: 'note' }), json: pairs(newRecord) },
    '/v1/records/:id': { json: pairs({ label: 'renamed' }, newRecord) },
    '/v1/records/:id/shares': { json: pairs({ userId: bystander.id }) },
    '/v1/admin/users': { query: pairs({ limit: '2' }, { email: user.email }, { cursor: 'x' }) },
    '/v1/admin/users/:id': { json: pairs({ roles: ['user'] }, { disabled: false }) },
    '/v1/admin/audit': {
      query: pairs({ limit: '3' }, { type: 'user.login', user: user.id }, { since: '2020-01-01T00:00:00Z', until: '2030-01-01T00:00:00Z' }),
    },
  };
  return {
    pools: {
      auth: {
        ...shared,
        recipes: authRecipes,
        params: {
          uid: strings(interactions.map((i) => i.uid)),
          clientId: strings([registered.client_id, clientId, 'portcullis-account']),
          method: ['totp', 'webauthn', 'recovery'],
          id: strings([userTokenSet.refresh_token, bystander.id]),
          recordId: strings([offered.id, record.id]),
        },
        bearer: strings([
          ...tokens,
          initialAccessToken,
          registered.registration_access_token,
          userTokenSet.id_token,
          userTokenSet.refresh_token,
        ]),
        basic: strings([
          `${clientId}:${clientSecret}`,
          `${String(registered.client_id)}:${String(registered.client_secret)}`,
          `${clientId}:wrong`,
        ]),
      },
      api: {
        ...shared,
        recipes: apiRecipes,
        // The admin routes act on the bystander (and, refused, on the admin itself), never on the users whose tokens the fuzzer holds.
        params: {
          id: strings([record.id]),
          userId: strings([bystander.id, user.id]),
          recordId: strings([offered.id, record.id]),
          '/v1/admin/users/:id id': strings([bystander.id, admin.id]),
        },
        bearer: strings([...tokens, userTokenSet.id_token, initialAccessToken]),
        basic: strings([`${clientId}:${clientSecret}`]),
      },
    },
    health: {
      clientId: healthClient.client_id,
      clientSecret: healthClient.client_secret ?? '',
      refreshToken: healthTokens.refresh_token ?? '',
    },
  };
}

/** oidc-provider's routes as it registers them (verb, path, name), recorded while an auth app is built. */
async function providerRoutes(servers: TestServers): Promise<string[]> {
  type Register = (this: unknown, name: string, path: string, ...middleware: unknown[]) => unknown;
  const prototype = OidcRouter.prototype as unknown as Record<string, Register>;
  const verbs = ['get', 'post', 'put', 'delete', 'options'] as const;
  const originals = new Map(verbs.map((verb) => [verb, prototype[verb] as Register]));
  const seen: string[] = [];
  for (const verb of verbs) {
    const original = originals.get(verb) as Register;
    prototype[verb] = function record(this: unknown, name: string, path: string, ...middleware: unknown[]) {
      seen.push(`${verb.toUpperCase()} ${path} ${name}`);
      return original.call(this, name, path, ...middleware);
    };
  }
  try {
    await buildAuthApp(servers.deps, { draining: false });
  } finally {
    for (const verb of verbs) prototype[verb] = originals.get(verb) as Register;
  }
  return seen;
}

describe('R12 DAST: fuzzing every HTTP route of both servers', function () {
  const leaks = leakPatterns(repoRoot);

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    describe(`${storage} storage`, function () {
      let servers: TestServers;
      let credentials: Credentials;
      let smtp: TestSmtpServer;

      before(async function () {
        this.timeout(60_000);
        // Every route registered: self-registration and the verification at sign-in send mail.
        smtp = await startSmtpServer();
        servers = await startTestServers({
          storage,
          env: { MAIL_URL: smtp.url, MAIL_FROM: 'Portcullis <no-reply@example.test>', SELF_REGISTRATION: 'true' },
        });
        credentials = await prepareCredentials(servers);
      });

      after(async function () {
        Reflect.deleteProperty(Object.prototype, POLLUTION_CANARY);
        await servers.stop();
        await smtp.close();
      });

      if (storage === 'redis') {
        it('R12 the fuzzer knows every route the servers register', async function () {
          const known = (owner: SurfaceRoute['owner']) => new Set(routeKeys(ALL_ROUTES.filter((r) => r.owner === owner)));
          // oidc-provider: every route it registers, with its route name.
          const provider = await providerRoutes(servers);
          expect(provider.length, 'routes recorded from oidc-provider').to.be.greaterThan(10);
          const catalogued = new Set(
            AUTH_ROUTES.filter((r) => r.owner === 'provider').flatMap((r) => r.methods.map((m) => `${m} ${r.path} ${r.name ?? ''}`)),
          );
          expect(
            provider.filter((route) => !catalogued.has(route)),
            'provider routes missing from test/helpers/http-surface.ts',
          ).to.deep.equal([]);
          expect(
            [...catalogued].filter((route) => !provider.includes(route)),
            'listed provider routes it does not register',
          ).to.deep.equal([]);
          // Our routers on the auth server (interaction and account pages).
          const { app } = await buildAuthApp(servers.deps, { draining: false });
          const layers = (app.middleware as { router?: { stack: { path: string; methods: string[] }[] } }[])
            .flatMap((m) => m.router?.stack ?? [])
            .flatMap((layer) => layer.methods.map((method) => `${method} ${layer.path}`));
          expect(layers.length, 'router layers found').to.be.greaterThan(10);
          const ours = new Set([...known('interaction'), ...known('account')]);
          expect(
            layers.filter((route) => !ours.has(route)),
            'router routes missing from test/helpers/http-surface.ts',
          ).to.deep.equal([]);
          expect(
            [...ours].filter((route) => !layers.includes(route)),
            'listed router routes no router registers',
          ).to.deep.equal([]);
          // The resource API's route table.
          const table = apiRoutes(servers.deps).map((route) => `${route.method.toUpperCase()} ${route.path.replace(/\{(\w+)\}/g, ':$1')}`);
          expect(
            table.filter((route) => !known('api').has(route)),
            'API routes missing from test/helpers/http-surface.ts',
          ).to.deep.equal([]);
          expect(
            [...known('api')].filter((route) => !table.includes(route)),
            'listed API routes the table lacks',
          ).to.deep.equal([]);
          // Plain middleware paths answer (they cannot be listed from the apps, so each is asked).
          for (const route of ALL_ROUTES.filter((r) => r.owner === 'middleware')) {
            const base = route.server === 'auth' ? servers.issuer : servers.apiUrl;
            expect((await fetch(`${base}${route.path}`)).status, `${route.server} ${route.path}`).to.equal(200);
          }
        });
      }

      it(`R12 fuzzed requests get no 5xx, leak no internals and are valid HTTP (${storage})`, async function () {
        this.timeout(TIME_LIMIT_MS + 60_000);
        const ports = { auth: Number(new URL(servers.issuer).port), api: Number(new URL(servers.apiUrl).port) };
        const authorities = { auth: new URL(servers.issuer).host, api: new URL(servers.apiUrl).host };
        const hits = new Map<string, number>();
        const statuses = new Map<number, number>();
        const byRoute = new Map<string, number>();
        const found = new Map<string, string>();
        let last: { request: FuzzRequest; problems: string[] } | undefined;
        const started = Date.now();
        const details = await fc.check(
          fc.asyncProperty(fuzzRequest(ALL_ROUTES, credentials.pools, authorities), async (request) => {
            const key = `${request.server} ${request.route.path}`;
            hits.set(key, (hits.get(key) ?? 0) + 1);
            const response = await socketRequest(ports[request.server], request, { timeoutMs: 15_000 });
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
            if (TRACE && key.endsWith(TRACE))
              console.log(
                `${response.status} ${describeRequest(request).slice(0, 400)}\n  ← ${response.body.toString('utf8').slice(0, 200)}`,
              );
            const perRoute = `${key} ${response.status}${STATS === '2' ? ` ${response.body.toString('utf8').slice(0, 200).replace(/\s+/g, ' ')}` : ''}`;
            byRoute.set(perRoute, (byRoute.get(perRoute) ?? 0) + 1);
            const problems = judge(request, response, leaks);
            last = { request, problems };
            if (problems.length > 0 && KEEP_GOING) {
              // Exploring (FUZZ_KEEP_GOING=1): list every distinct problem instead of stopping at the first.
              const kind = `${request.method} ${request.server} ${request.route.path}: ${problems.map((p) => p.slice(0, 60)).join('; ')}`;
              if (!found.has(kind)) found.set(kind, `${describeRequest(request)}\n${problems.join('\n')}`);
              return true;
            }
            return problems.length === 0;
          }),
          {
            seed: SEED,
            numRuns: RUNS,
            interruptAfterTimeLimit: TIME_LIMIT_MS,
            markInterruptAsFailure: false,
            endOnFailure: process.env.FUZZ_SHRINK === undefined,
          },
        );
        const elapsed = Date.now() - started;
        if (STATS)
          console.log(
            [...byRoute]
              .sort()
              .map(([k, n]) => `${k}: ${n}`)
              .join('\n'),
          );
        for (const [kind, detail] of found) console.log(`\n=== ${kind}\n${detail}`);
        console.log(
          `      fuzz (${storage}): ${details.numRuns} requests in ${elapsed} ms, seed ${SEED}; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
        );
        if (details.failed) {
          const counterexample = details.counterexample?.[0];
          const shown = counterexample ? describeRequest(counterexample) : 'n/a';
          expect.fail(
            `fuzz failure (replay: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}, fast-check path ${details.counterexamplePath ?? '?'}; ` +
              `add FUZZ_SHRINK=1 to shrink)\n${shown}\n${(last?.problems ?? []).join('\n')}\n${details.errorInstance instanceof Error ? details.errorInstance.message : ''}`,
          );
        }
        // Every route was aimed at. The route sequence is fixed by the seed; after 1500 requests a
        // route missed by uniform choice among ~70 is beyond chance, so a time-capped run checks too.
        if (details.numRuns >= Math.min(RUNS, 1500)) {
          expect(
            ALL_ROUTES.filter((r) => !hits.has(`${r.server} ${r.path}`)).map((r) => r.path),
            'routes the fuzzer never tried',
          ).to.deep.equal([]);
        }
      });

      it(`R12 both servers still serve normal requests after the fuzz pass (${storage})`, async function () {
        for (const base of [servers.issuer, servers.apiUrl]) {
          expect((await fetch(`${base}/healthz`)).status, `${base}/healthz`).to.equal(200);
          expect((await fetch(`${base}/readyz`)).status, `${base}/readyz`).to.equal(200);
        }
        const { health } = credentials;
        const basic = basicAuth(health.clientId, health.clientSecret);
        const refreshed = await fetch(`${servers.issuer}/token`, {
          method: 'POST',
          headers: { ...FORM, Authorization: basic },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: health.refreshToken, resource: servers.apiUrl }),
        });
        expect(refreshed.status, 'refresh token grant').to.equal(200);
        const token = (await json(refreshed)).access_token as string;
        const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
        expect(me.status, '/v1/me').to.equal(200);
        const discovery = await fetch(`${servers.issuer}/.well-known/openid-configuration`);
        expect(((await json(discovery)).token_endpoint as string).startsWith(servers.issuer)).to.equal(true);
      });
    });
  }
});
