import { expect } from 'chai';
import * as client from 'openid-client';
import { CONSTANT_CHALLENGE_EVENT } from '../../src/auth/constant-challenge.ts';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { consistently, eventually } from '../helpers/wait.ts';

type Params = [string, string][];

const redirectUri = 'https://app.example/cb';
const loopbackUri = 'http://127.0.0.1/cb';

/** Parameters an authorization response must never carry when it reports an error (T7, T13). */
const GRANTS = ['code', 'access_token', 'id_token', 'token_type', 'refresh_token'];

/** Runs one case of a table test; a failure names the case. */
async function labelled(label: string, check: () => unknown): Promise<void> {
  try {
    await check();
  } catch (error) {
    throw new Error(`${label}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Negative tests for the authorization endpoint (docs/security.md T1–T14, T38, B9): every request
 * goes to the real provider with a client registered through the CLI path; responses are read
 * with redirect: manual, so a refused request shows whether anything was sent to the client.
 */
describe('authorization endpoint abuse (docs/security.md T2–T14, T38, B9)', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let web: { client_id: string; client_secret?: string };
  let native: { client_id: string };
  let challenge: string;

  before(async function () {
    servers = await startTestServers();
    web = await createTestClient(servers.deps, {
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [],
      // No `admin`: T10 asks for it.
      scope: 'openid profile email offline_access records:read',
    });
    native = await createTestClient(servers.deps, {
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: [loopbackUri],
      post_logout_redirect_uris: [],
      scope: 'openid profile records:read',
    });
    challenge = await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier());
  });

  after(async function () {
    await servers.stop();
  });

  /**
   * A valid request for the client: with prompt=none and no session the only possible outcome
   * is a login_required redirect, so anything else is caused by the parameter under test.
   */
  function valid(clientId: string, uri: string, state: string): Params {
    return [
      ['client_id', clientId],
      ['redirect_uri', uri],
      ['response_type', 'code'],
      ['scope', 'openid'],
      ['state', state],
      ['code_challenge', challenge],
      ['code_challenge_method', 'S256'],
      ['prompt', 'none'],
    ];
  }

  /** Replaces (or with `undefined` removes) parameters; appends new ones. */
  function edit(params: Params, changes: Record<string, string | undefined>): Params {
    const out = params.filter(([k]) => !(k in changes));
    for (const [k, v] of Object.entries(changes)) if (v !== undefined) out.push([k, v]);
    return out;
  }

  function authUrl(params: Params): URL {
    const url = new URL('/auth', servers.issuer);
    url.search = new URLSearchParams(params).toString();
    return url;
  }

  async function authorize(params: Params, browser = new Browserless(servers.issuer)): Promise<Response> {
    return browser.request(authUrl(params));
  }

  /** T1/T2/T5: a 400 HTML page naming the error, and nothing sent anywhere (no Location). */
  async function expectErrorPage(response: Response, error: string): Promise<void> {
    const html = await response.text();
    expect(response.status, html.slice(0, 300)).to.equal(400);
    expect(response.headers.get('Location')).to.equal(null);
    expect(response.headers.get('Content-Type')).to.match(/^text\/html/);
    expect(html).to.include(`<code>${error}</code>`);
  }

  /** Query and fragment parameters of a redirect, merged (an implicit response would use the fragment). */
  function responseParams(location: URL): URLSearchParams {
    const merged = new URLSearchParams(location.search);
    for (const [k, v] of new URLSearchParams(location.hash.slice(1))) merged.append(k, v);
    return merged;
  }

  /** T13: an error redirect to the registered URI with the exact state, iss = issuer, and no code or token. */
  function expectErrorRedirect(response: Response, uri: string, error: string, state: string): URLSearchParams {
    expect(response.status, `expected a redirect, got ${response.status}`).to.equal(303);
    const location = new URL(response.headers.get('Location') ?? '');
    expect(location.origin + location.pathname).to.equal(uri);
    const params = responseParams(location);
    expect(params.get('error'), params.get('error_description') ?? '').to.equal(error);
    expect(params.getAll('state')).to.deep.equal([state]);
    expect(params.getAll('iss')).to.deep.equal([servers.issuer]);
    for (const name of GRANTS) expect(params.has(name), `${name} in ${location.href}`).to.equal(false);
    return params;
  }

  /**
   * invalid_request, never a code (T6): as a page when the client itself is in doubt (RFC 6749
   * §4.1.2.1: no redirect), else as an error redirect to the registered URI.
   */
  async function expectInvalidRequest(response: Response, at: 'page' | 'redirect'): Promise<void> {
    if (at === 'page') return expectErrorPage(response, 'invalid_request');
    expect(response.status).to.equal(303);
    const location = new URL(response.headers.get('Location') ?? '');
    expect(location.origin + location.pathname).to.equal(redirectUri);
    const params = responseParams(location);
    expect(params.get('error')).to.equal('invalid_request');
    expect(params.get('iss')).to.equal(servers.issuer);
    for (const name of GRANTS) expect(params.has(name)).to.equal(false);
  }

  it('control: the exact registered URI gets a login_required redirect (T13 shape)', async function () {
    const response = await authorize(valid(web.client_id, redirectUri, 'ctl-1'));
    expectErrorRedirect(response, redirectUri, 'login_required', 'ctl-1');
  });

  it('T2 refuses every parser-differential variant of the registered redirect URI with an error page', async function () {
    const corpus = [
      'https://app.example/cb/',
      'https://app.example/CB',
      'HTTPS://app.example/cb',
      'https://APP.example/cb',
      'https://app.example:443/cb',
      'https://app.example/cb?x=1',
      'https://app.example/cb#f',
      'https://app.example/cb/../cb',
      'https://app.example/cb/%2e%2e/cb',
      'https://app.example/cb%2F..%2Fcb',
      'https://app.example/..;/cb',
      'https://app.example/cb/..;/cb',
      'https://app.example.evil.test/cb',
      'https://appXexample/cb',
      'https://app.example@evil.test/cb',
      'https://evil.test@app.example@evil.test/cb',
      'https://evil.test\\@app.example/cb',
      'https://app.example\\@evil.test/cb',
      '//evil.test/cb',
      '//app.example/cb',
      'https://app.example/cb%00',
      'https://app.example/cb\u0000',
      'https://app.example/cb ',
      'https://app.example/cb\t',
      'https://app.example/cb%20',
      ' https://app.example/cb',
      'https://app.example/cb\n',
    ];
    for (const [i, variant] of corpus.entries()) {
      const response = await authorize(valid(web.client_id, variant, `t2-${i}`));
      await labelled(JSON.stringify(variant), () => expectErrorPage(response, 'invalid_redirect_uri'));
    }
  });

  it('T4 a loopback native client: any port on the registered path only', async function () {
    const accepted = await authorize(valid(native.client_id, 'http://127.0.0.1:53124/cb', 't4-ok'));
    expectErrorRedirect(accepted, 'http://127.0.0.1:53124/cb', 'login_required', 't4-ok');
    for (const uri of [
      'http://127.0.0.1:53124/cb?x=1',
      'http://127.0.0.1:53124/other',
      'http://127.0.0.1:53124/cb/',
      'http://localhost:53124/cb',
      'http://127.0.0.2:53124/cb',
      'http://[::1]:53124/cb',
      'https://127.0.0.1:53124/cb',
      'http://127.0.0.1:53124@evil.test/cb',
    ]) {
      const response = await authorize(valid(native.client_id, uri, 't4-no'));
      await labelled(uri, () => expectErrorPage(response, 'invalid_redirect_uri'));
    }
    // And a real sign-in on an ephemeral port ends at that port with a code.
    const user = await createTestUser(servers.deps);
    const params = edit(valid(native.client_id, 'http://127.0.0.1:53125/cb', 't4-code'), { prompt: undefined });
    const callback = await signIn(new Browserless(servers.issuer), authUrl(params), user);
    expect(callback.origin + callback.pathname).to.equal('http://127.0.0.1:53125/cb');
    expect(callback.searchParams.get('code')).to.be.a('string');
  });

  it('T5 unknown and disabled client_id: error page, no redirect', async function () {
    await expectErrorPage(await authorize(valid('no-such-client', redirectUri, 't5')), 'invalid_client');
    const doomed = await createTestClient(servers.deps, { redirect_uris: [redirectUri], post_logout_redirect_uris: [] });
    expectErrorRedirect(await authorize(valid(doomed.client_id, redirectUri, 't5')), redirectUri, 'login_required', 't5');
    expect(await servers.deps.stores.clients.setDisabled(doomed.client_id, true)).to.equal(true);
    await expectErrorPage(await authorize(valid(doomed.client_id, redirectUri, 't5')), 'invalid_client');
  });

  it('T6 duplicate client_id, redirect_uri, response_type, state or code_challenge: invalid_request, never a code', async function () {
    const duplicates: [string, string][] = [
      ['client_id', native.client_id],
      ['client_id', web.client_id],
      ['redirect_uri', 'https://evil.test/cb'],
      ['redirect_uri', redirectUri],
      ['response_type', 'code'],
      ['state', 'other-state'],
      ['code_challenge', challenge],
    ];
    // A second client_id puts the client in doubt: a page. Anything else is answered at the
    // client's one registered URI (never at the other value given).
    for (const extra of duplicates) {
      const response = await authorize([...valid(web.client_id, redirectUri, 't6'), extra]);
      await labelled(`${extra[0]} twice`, async () => expectInvalidRequest(response, extra[0] === 'client_id' ? 'page' : 'redirect'));
    }
    // With two registered URIs a repeated redirect_uri is ambiguous: an error page, no redirect.
    const two = await createTestClient(servers.deps, {
      redirect_uris: [redirectUri, 'https://app.example/cb2'],
      post_logout_redirect_uris: [],
    });
    const ambiguous = await authorize([...valid(two.client_id, redirectUri, 't6'), ['redirect_uri', 'https://app.example/cb2']]);
    await expectErrorPage(ambiguous, 'invalid_request');
  });

  it('T7 implicit and hybrid response types: unsupported_response_type, no token anywhere', async function () {
    for (const responseType of ['token', 'id_token token', 'code token', 'id_token', 'code id_token']) {
      const response = await authorize(
        edit(valid(web.client_id, redirectUri, `t7-${responseType}`), { response_type: responseType, nonce: 'n-1' }),
      );
      await labelled(responseType, () => expectErrorRedirect(response, redirectUri, 'unsupported_response_type', `t7-${responseType}`));
    }
  });

  it('T8 no code_challenge: invalid_request redirect with state and iss', async function () {
    for (const id of [web.client_id, native.client_id]) {
      const uri = id === web.client_id ? redirectUri : 'http://127.0.0.1:8123/cb';
      const response = await authorize(edit(valid(id, uri, 't8'), { code_challenge: undefined, code_challenge_method: undefined }));
      const params = expectErrorRedirect(response, uri, 'invalid_request', 't8');
      expect(params.get('error_description')).to.match(/PKCE/);
    }
  });

  it('T9 plain method or a malformed challenge: invalid_request', async function () {
    const cases: Record<string, string | undefined>[] = [
      { code_challenge_method: 'plain' },
      { code_challenge_method: 'PLAIN' },
      { code_challenge_method: undefined },
      { code_challenge: challenge.slice(0, 42) },
      { code_challenge: `${challenge.slice(0, 42)}+` },
      { code_challenge: `${challenge.slice(0, 42)}=` },
      { code_challenge: `${challenge.slice(0, 41)}/=` },
      { code_challenge: 'a'.repeat(129) },
    ];
    for (const change of cases) {
      const response = await authorize(edit(valid(web.client_id, redirectUri, 't9'), change));
      await labelled(JSON.stringify(change), () => expectErrorRedirect(response, redirectUri, 'invalid_request', 't9'));
    }
  });

  it('T10 a scope outside the allowlist or with invalid characters: invalid_scope', async function () {
    for (const scope of [
      'openid admin',
      'openid records:write',
      'openid "admin"',
      'openid\u0001',
      'openid\tprofile',
      'openid  profile',
      'openid\\',
    ]) {
      const response = await authorize(edit(valid(web.client_id, redirectUri, 't10'), { scope }));
      await labelled(JSON.stringify(scope), () => expectErrorRedirect(response, redirectUri, 'invalid_scope', 't10'));
    }
  });

  it('T11 prompt=none: login_required without a session, consent_required with a session but no consent', async function () {
    const browser = new Browserless(servers.issuer);
    expectErrorRedirect(await authorize(valid(web.client_id, redirectUri, 't11-a'), browser), redirectUri, 'login_required', 't11-a');

    // Sign in (and consent) for another web client; this one has no grant in the session.
    const user = await createTestUser(servers.deps);
    const other = await createTestClient(servers.deps, { redirect_uris: ['https://other.example/cb'], post_logout_redirect_uris: [] });
    const params = edit(valid(other.client_id, 'https://other.example/cb', 't11-o'), { prompt: undefined });
    const callback = await signIn(browser, authUrl(params), user);
    expect(callback.searchParams.get('code')).to.be.a('string');
    // The session and that grant are there: the other client now gets a code without any page.
    const again = await authorize(valid(other.client_id, 'https://other.example/cb', 't11-s'), browser);
    expect(new URL(again.headers.get('Location') ?? '').searchParams.get('code')).to.be.a('string');

    expectErrorRedirect(await authorize(valid(web.client_id, redirectUri, 't11-b'), browser), redirectUri, 'consent_required', 't11-b');
  });

  it('T13 state is returned byte for byte on error redirects', async function () {
    const state = 'a b+c/d=e&f?g%h#i~é';
    expectErrorRedirect(await authorize(valid(web.client_id, redirectUri, state)), redirectUri, 'login_required', state);
    const scoped = await authorize(edit(valid(web.client_id, redirectUri, state), { scope: 'openid admin' }));
    expectErrorRedirect(scoped, redirectUri, 'invalid_scope', state);
  });

  it('T14 no CORS on the authorization endpoint', async function () {
    const origin = 'https://evil.test';
    const preflight = await fetch(authUrl(valid(web.client_id, redirectUri, 't14')), {
      method: 'OPTIONS',
      redirect: 'manual',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    });
    const get = await fetch(authUrl(valid(web.client_id, redirectUri, 't14')), { redirect: 'manual', headers: { Origin: origin } });
    expect(get.status).to.equal(303);
    for (const response of [preflight, get]) {
      expect(response.headers.get('Access-Control-Allow-Origin')).to.equal(null);
      expect(response.headers.get('Access-Control-Allow-Credentials')).to.equal(null);
      expect(response.headers.get('Access-Control-Allow-Methods')).to.equal(null);
    }
    // The token endpoint, by contrast, is CORS-enabled (so the assertion above can fail).
    const tokenPreflight = await fetch(new URL('/token', servers.issuer), {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' },
    });
    expect(tokenPreflight.headers.get('Access-Control-Allow-Origin')).to.equal(origin);
  });

  it('T38 oversized scope, state, login_hint and a 10 MB token body are refused quickly; the server stays healthy', async function () {
    const budgetMs = 2000;
    const big = (n: number) => 'a'.repeat(n);
    const cases: [string, Params][] = [
      ['scope 100 KB', edit(valid(web.client_id, redirectUri, 't38'), { scope: `openid ${big(100 * 1024)}` })],
      ['state 64 KB', edit(valid(web.client_id, redirectUri, 't38'), { state: big(64 * 1024) })],
      ['login_hint 64 KB', edit(valid(web.client_id, redirectUri, 't38'), { login_hint: big(64 * 1024) })],
    ];
    // Every password check (argon2) is counted here; none of these requests may reach one.
    const factorChecks = async () =>
      ((await servers.running.metrics.registry.getSingleMetric('portcullis_logins_total')?.get())?.values ?? []).reduce(
        (n, v) => n + v.value,
        0,
      );
    const checksBefore = await factorChecks();
    const measured: string[] = [];
    // GET only: POST /auth is not enabled (enableHttpPostMethods is off), so it is a 404.
    for (const [label, params] of cases) {
      const started = performance.now();
      const response = await fetch(authUrl(params), { redirect: 'manual' });
      const body = await response.text();
      const ms = performance.now() - started;
      measured.push(`${label}: ${response.status} in ${ms.toFixed(0)} ms`);
      // RFC 9112 §3: a request-target longer than the server parses MUST be answered 414.
      expect(response.status, label).to.equal(414);
      expect(response.headers.get('Location'), label).to.equal(null);
      expect(body.length, `${label}: the input is not echoed`).to.be.below(16 * 1024);
      expect(ms, label).to.be.below(budgetMs);
    }

    const started = performance.now();
    const token = await fetch(new URL('/token', servers.issuer), {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: basicAuth(web.client_id, web.client_secret),
      },
      body: `grant_type=authorization_code&code=${big(10 * 1024 * 1024)}`,
    });
    const tokenBody = await token.text();
    const ms = performance.now() - started;
    measured.push(`token 10 MB: ${token.status} in ${ms.toFixed(0)} ms`);
    // RFC 6749 §5.2: the token endpoint's errors are 400 with an error code; this body is not one it parses.
    expect(token.status, measured.join('; ')).to.equal(400);
    expect(JSON.parse(tokenBody)).to.include({ error: 'invalid_request' });
    expect(tokenBody.length).to.be.below(16 * 1024);
    expect(ms, measured.join('; ')).to.be.below(budgetMs);

    expect((await fetch(new URL('/healthz', servers.issuer))).status).to.equal(200);
    expectErrorRedirect(await authorize(valid(web.client_id, redirectUri, 't38-after')), redirectUri, 'login_required', 't38-after');
    expect(await factorChecks(), measured.join('; ')).to.equal(checksBefore);
  });

  it('B7 a client sending one code_challenge for different transactions is audited (once an hour); a reload and fresh challenges are not', async function () {
    const user = await createTestUser(servers.deps);
    const steadyUri = 'https://steady.example/cb';
    const steady = await createTestClient(servers.deps, {
      client_name: 'Steady App',
      redirect_uris: [steadyUri],
      post_logout_redirect_uris: [],
    });
    const browser = new Browserless(servers.issuer);
    const codeFor = async (clientId: string, uri: string, state: string, pkce: string): Promise<void> => {
      const response = await authorize(edit(valid(clientId, uri, state), { code_challenge: pkce }), browser);
      expect(new URL(response.headers.get('Location') ?? '').searchParams.get('code'), state).to.be.a('string');
    };
    const events = async (clientId: string) =>
      servers.deps
        .knex('audit_events')
        .where({ type: CONSTANT_CHALLENGE_EVENT, client_id: clientId })
        .select('actor_id', 'outcome', 'data');
    /** The check runs after the answer: its events are polled for, and their absence held for a while. */
    const stays = async (clientId: string, expected: unknown[]) =>
      consistently(async () => expect(await events(clientId)).to.deep.equal(expected), { forMs: 200 });

    const first = edit(valid(steady.client_id, steadyUri, 'b7-one'), { prompt: undefined });
    const callback = await signIn(browser, authUrl(first), user);
    expect(callback.searchParams.get('code')).to.be.a('string');
    await codeFor(steady.client_id, steadyUri, 'b7-one', challenge); // the same request again (a reload)
    await stays(steady.client_id, []);

    await codeFor(steady.client_id, steadyUri, 'b7-two', challenge); // a new transaction, the old challenge
    await codeFor(steady.client_id, steadyUri, 'b7-three', challenge);
    const reported = [{ actor_id: user.id, outcome: 'failure', data: { client_name: 'Steady App' } }];
    await eventually(async () => expect(await events(steady.client_id)).to.deep.equal(reported), { timeoutMs: 12_000, intervalMs: 50 });
    await stays(steady.client_id, reported);

    // A client that makes a fresh challenge per transaction is never reported.
    const fresh = await createTestClient(servers.deps, { redirect_uris: ['https://fresh.example/cb'], post_logout_redirect_uris: [] });
    const freshChallenge = () => client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier());
    await signIn(
      browser,
      authUrl(
        edit(valid(fresh.client_id, 'https://fresh.example/cb', 'b7-f0'), { prompt: undefined, code_challenge: await freshChallenge() }),
      ),
      user,
    );
    for (const state of ['b7-f1', 'b7-f2', 'b7-f3'])
      await codeFor(fresh.client_id, 'https://fresh.example/cb', state, await freshChallenge());
    await stays(fresh.client_id, []);
  });

  it('B9 the password grant (ROPC) is refused: unsupported_grant_type', async function () {
    const response = await fetch(new URL('/token', servers.issuer), {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: basicAuth(web.client_id, web.client_secret),
      },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'someone@example.test',
        password: 'whatever',
        scope: 'openid',
      }).toString(),
    });
    expect(response.status).to.equal(400);
    expect(await response.json()).to.include({ error: 'unsupported_grant_type' });
  });
});
