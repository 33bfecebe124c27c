import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { enrollTotp } from '../helpers/api.ts';
import { Browserless, formOf, formsByButton } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { startPrivateRedis, type PrivateRedis } from '../helpers/cluster.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo, RP_REDIRECT } from '../helpers/oidc.ts';
import { freePort, startTestServers, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { eventually } from '../helpers/wait.ts';

const LOGGED_OUT = 'https://rp.example.test/bye';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

type Seen = { method: string; url: URL; status: number; headers: Headers; body: string };

/**
 * A Browserless behind a TLS-terminating proxy: the issuer is https://…, requests go to the
 * plain listener with X-Forwarded-Proto (TRUST_PROXY), so Secure cookies, __Host- names and
 * HSTS are exercised. Every response is recorded for the header and redirect checks.
 */
class ProxiedBrowser extends Browserless {
  readonly backend: string;
  readonly seen: Seen[] = [];

  constructor(origin: string, backend: string) {
    super(origin);
    this.backend = backend;
  }

  override async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url, this.origin);
    const ours = target.origin === this.origin;
    const headers = new Headers(init.headers);
    if (!headers.has('Accept')) headers.set('Accept', 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8');
    const cookie = this.jar.header(target);
    if (cookie && ours && !headers.has('Cookie')) headers.set('Cookie', cookie);
    headers.set('X-Forwarded-Proto', 'https');
    const wire = ours ? new URL(`${target.pathname}${target.search}`, this.backend) : target;
    const response = await fetch(wire, { ...init, headers, redirect: 'manual' });
    if (ours) this.jar.store(response);
    const body = await response.text();
    this.seen.push({ method: init.method ?? 'GET', url: target, status: response.status, headers: response.headers, body });
    return new Response(response.status === 204 || response.status === 304 ? null : body, {
      status: response.status,
      headers: response.headers,
    });
  }
}

/**
 * Our interaction, account, device and logout endpoints on a real server behind a TLS proxy:
 * finished interactions cannot be replayed (T31), protective headers on every page (T40),
 * 303/302 after credential POSTs (T41), no open redirects (T42). Storage faults: T45 below.
 */
describe('interaction and logout endpoints (T31, T40, T41, T42)', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let issuer: string;
  let backend: string;
  let rp: { client_id: string; client_secret?: string };
  let other: { client_id: string; client_secret?: string };
  let device: { client_id: string };
  let user: Awaited<ReturnType<typeof createTestUser>>;
  let mfaUser: Awaited<ReturnType<typeof createTestUser>>;
  let totpSecret: string;

  before(async function () {
    const port = await freePort();
    issuer = `https://127.0.0.1:${port}`;
    backend = `http://127.0.0.1:${port}`;
    servers = await startTestServers({ env: { ISSUER: issuer, AUTH_PORT: String(port), TRUST_PROXY: 'true' } });
    rp = await createTestClient(servers.deps, { redirect_uris: [RP_REDIRECT], post_logout_redirect_uris: [LOGGED_OUT] });
    other = await createTestClient(servers.deps, {
      redirect_uris: [RP_REDIRECT],
      post_logout_redirect_uris: ['https://other.example.test/bye'],
    });
    device = await createTestClient(servers.deps, {
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      response_types: [],
      scope: 'openid',
    });
    user = await createTestUser(servers.deps);
    mfaUser = await createTestUser(servers.deps);
    totpSecret = await enrollTotp(servers, mfaUser);
  });

  after(async function () {
    await servers.stop();
  });

  const authorizationUrl = (clientId: string, extra: Record<string, string> = {}) =>
    authorizationRequestTo(issuer, clientId, { nonce: randomBytes(8).toString('hex'), ...extra });

  const post = (browser: ProxiedBrowser, action: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    browser.request(action, {
      method: 'POST',
      headers: { ...FORM, Origin: issuer, ...headers },
      body: new URLSearchParams(fields).toString(),
    });

  /** Login (+ TOTP) and consent; returns the callback and the browser that holds the session. */
  async function proxiedSignIn(who: { email: string; password: string }, clientId = rp.client_id, totp?: string) {
    const browser = new ProxiedBrowser(issuer, backend);
    const { url: authorization, verifier } = authorizationUrl(clientId);
    const url = await signIn(browser, authorization, who, totp ? { totpSecret: totp } : {});
    expect(url.href.startsWith(RP_REDIRECT), url.href).to.equal(true);
    return { browser, callback: url, verifier };
  }

  async function tokens(code: string, verifier: string): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
    const response = await fetch(`${backend}/token`, {
      method: 'POST',
      headers: {
        ...FORM,
        'X-Forwarded-Proto': 'https',
        Authorization: basicAuth(rp.client_id, rp.client_secret),
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP_REDIRECT, code_verifier: verifier }),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
  }

  describe('T31 a finished interaction cannot be replayed', function () {
    it('T31 replaying /login, /confirm and the resume URL after consent → 400 error page, no new code', async function () {
      const browser = new ProxiedBrowser(issuer, backend);
      const { url: authorization } = authorizationUrl(rp.client_id);
      const first = await browser.follow(authorization);
      const login = formOf(await first.response.text(), '/login');
      const loginCookies = browser.jar.header(new URL(login.action, issuer));
      const consent = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      const confirm = formOf(await consent.response.text(), '/confirm');
      const confirmCookies = browser.jar.header(new URL(confirm.action, issuer));
      const confirmed = await post(browser, confirm.action, { csrf: confirm.csrf });
      expect(confirmed.status).to.equal(303);
      const resume = new URL(confirmed.headers.get('Location') ?? '', issuer);
      const resumeCookies = browser.jar.header(resume);
      const done = await browser.follow(resume);
      expect(done.url.searchParams.get('code')).to.be.a('string');

      const replays: [string, string, RequestInit][] = [
        [
          'login',
          loginCookies,
          {
            method: 'POST',
            headers: { ...FORM, Origin: issuer },
            body: new URLSearchParams({ csrf: login.csrf, email: user.email, password: user.password }).toString(),
          },
        ],
        [
          'confirm',
          confirmCookies,
          { method: 'POST', headers: { ...FORM, Origin: issuer }, body: new URLSearchParams({ csrf: confirm.csrf }).toString() },
        ],
        ['resume', resumeCookies, {}],
      ];
      const targets = [login.action, confirm.action, resume.href];
      for (const [index, [name, cookies, init]] of replays.entries()) {
        const response = await browser.request(targets[index]!, {
          ...init,
          headers: { ...(init.headers as Record<string, string>), Cookie: cookies },
        });
        const html = await response.text();
        expect(response.status, name).to.equal(400);
        expect(response.headers.get('Location'), name).to.equal(null);
        expect(response.headers.get('Content-Type'), name).to.include('text/html');
        // The login and consent forms find their interaction gone (its cookie is bound to it): the
        // expired-session page. The resume URL is the provider's: its invalid_request page.
        if (name === 'resume') expect(html, name).to.include('interaction session not found').and.to.include('invalid_request');
        else expect(html, name).to.include('Your sign-in session has expired');
        expect(html, name).not.to.include('code=');
      }
    });
  });

  describe('T41 redirects after credential POSTs', function () {
    it('T41 login, second factor, consent, device confirm, logout confirm and account POSTs answer 303, never 307/308', async function () {
      const browsers: ProxiedBrowser[] = [];
      // Password + consent; password + TOTP + consent.
      const plain = await proxiedSignIn(user);
      browsers.push(plain.browser, (await proxiedSignIn(mfaUser, rp.client_id, totpSecret)).browser);

      // Device flow: enter the code, allow, sign in.
      const started = await fetch(`${backend}/device/auth`, {
        method: 'POST',
        headers: { ...FORM, 'X-Forwarded-Proto': 'https' },
        body: new URLSearchParams({ client_id: device.client_id, scope: 'openid' }),
      });
      const { user_code: userCode } = (await started.json()) as { user_code: string };
      const deviceBrowser = new ProxiedBrowser(issuer, backend);
      browsers.push(deviceBrowser);
      const entry = await deviceBrowser.follow(`/device?user_code=${userCode}`);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(await entry.response.text())?.[1] ?? '';
      const confirmPage = await deviceBrowser.submit('/device', { xsrf, user_code: userCode });
      const allow = formsByButton(await confirmPage.response.text()).get('Allow')!;
      const allowed = await deviceBrowser.submit(allow.action, allow.fields);
      const deviceLogin = formOf(await allowed.response.text(), '/login');
      const deviceDone = await deviceBrowser.submit(deviceLogin.action, {
        csrf: deviceLogin.csrf,
        email: user.email,
        password: user.password,
      });
      expect(await deviceDone.response.text()).to.include('Device connected');

      // Account page: sign in there, change the password (a credential POST).
      const account = new ProxiedBrowser(issuer, backend);
      browsers.push(account);
      const accountLogin = await account.follow('/account');
      const accountForm = formOf(await accountLogin.response.text(), '/login');
      const signedIn = await account.submit(accountForm.action, { csrf: accountForm.csrf, email: user.email, password: user.password });
      expect(signedIn.url.pathname).to.equal('/account');
      const passwordForm = formOf(await signedIn.response.text(), '/account/password');
      const newPassword = `pw-${randomBytes(8).toString('hex')}`;
      const changed = await account.submit(passwordForm.action, {
        csrf: passwordForm.csrf,
        current_password: user.password,
        new_password: newPassword,
        confirm_password: newPassword,
      });
      expect(changed.url.search).to.include('notice=');
      user.password = newPassword;

      // RP-initiated logout, confirmed.
      const logout = await plain.browser.follow(
        `/session/end?client_id=${rp.client_id}&post_logout_redirect_uri=${encodeURIComponent(LOGGED_OUT)}`,
      );
      const logoutForm = formsByButton(await logout.response.text());
      const form = /<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"[\s\S]*?name="xsrf" value="([^"]+)"/.exec(
        await (await plain.browser.request(logout.url)).text(),
      );
      expect(form, [...logoutForm.keys()].join()).not.to.equal(null);
      const out = await plain.browser.submit(form![1]!, { xsrf: form![2]!, logout: 'yes' });
      expect(out.url.href.startsWith(LOGGED_OUT), out.url.href).to.equal(true);

      const posts = browsers.flatMap((b) => b.seen).filter((s) => s.method === 'POST' && s.status >= 300 && s.status < 400);
      const paths = new Set(posts.map((p) => p.url.pathname.replace(/\/interaction\/[^/]+/, '/interaction/:uid')));
      for (const expected of [
        '/interaction/:uid/login',
        '/interaction/:uid/mfa/totp',
        '/interaction/:uid/confirm',
        '/device',
        '/account/password',
        '/session/end/confirm',
      ])
        expect([...paths], `${expected} in ${[...paths].join()}`).to.include(expected);
      // RFC 9700 §4.12: 303 See Other after a POST that carried credentials, so the browser does not repost them.
      for (const p of posts) expect(p.status, `${p.method} ${p.url.pathname}`).to.equal(303);
    });
  });

  describe('T40 protective headers on every page and token response', function () {
    const cspDirectives = ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"];

    function expectPageHeaders(name: string, headers: Headers): void {
      const csp = headers.get('Content-Security-Policy') ?? '';
      for (const directive of cspDirectives) expect(csp, `${name}: CSP`).to.include(directive);
      expect(headers.get('Strict-Transport-Security'), `${name}: HSTS`).to.match(
        /max-age=(\d{8,}|3153[6-9]\d{3}|315[4-9]\d{4}|31[6-9]\d{5}|3[2-9]\d{6}|[4-9]\d{7}); includeSubDomains/,
      );
      expect(headers.get('X-Content-Type-Options'), `${name}: nosniff`).to.equal('nosniff');
      expect(headers.get('Referrer-Policy'), `${name}: Referrer-Policy`).to.equal('no-referrer');
      expect(headers.get('Cache-Control') ?? '', `${name}: Cache-Control`).to.include('no-store');
    }

    function expectCookies(name: string, headers: Headers): void {
      for (const cookie of headers.getSetCookie()) {
        const [pair = ''] = cookie.split(';');
        const cookieName = pair.slice(0, pair.indexOf('='));
        expect(cookie, `${name}: ${cookieName}`).to.match(/;\s*httponly/i);
        expect(cookie, `${name}: ${cookieName}`).to.match(/;\s*samesite=(lax|strict)/i);
        expect(cookie, `${name}: ${cookieName}`).to.match(/;\s*secure/i);
        expect(cookieName, `${name}: cookie prefix`).to.match(/^__(Host|Secure)-/);
        if (cookieName.startsWith('__Host-'))
          expect(cookie, `${name}: ${cookieName}`)
            .to.match(/;\s*path=\/(;|$)/i)
            .and.not.to.match(/;\s*domain=/i);
      }
    }

    it('T40 login, consent, error, device, account, logout, logged-out and 404 pages carry CSP, HSTS, nosniff, no-referrer, no-store; cookies are Secure, HttpOnly, SameSite, prefixed', async function () {
      const browser = new ProxiedBrowser(issuer, backend);
      const pages = new Map<string, Seen>();
      const remember = (name: string) => {
        const last = browser.seen.at(-1)!;
        pages.set(name, last);
      };
      const { url: authorization } = authorizationUrl(rp.client_id);
      const loginPage = await browser.follow(authorization);
      remember('login');
      const login = formOf(await loginPage.response.text(), '/login');
      const consentPage = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      expect(consentPage.url.pathname).to.match(/^\/interaction\//);
      remember('consent');
      const confirm = formOf(await consentPage.response.text(), '/confirm');
      await browser.submit(confirm.action, { csrf: confirm.csrf });
      await browser.follow('/auth?client_id=unknown-client&response_type=code&scope=openid');
      remember('error page');
      await browser.follow('/device');
      remember('device code entry');
      await browser.follow('/account');
      remember('account');
      const logout = await browser.follow(`/session/end?client_id=${rp.client_id}`);
      remember('logout confirm');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(await logout.response.text())?.[1] ?? '';
      await browser.submit('/session/end/confirm', { xsrf, logout: 'yes' });
      remember('logged out');
      await browser.follow('/no-such-page');
      remember('404');
      expect(pages.get('404')?.status).to.equal(404);
      expect(pages.get('error page')?.status).to.equal(400);

      for (const [name, page] of pages) {
        expect(page.headers.get('Content-Type') ?? '', name).to.include('text/html');
        expectPageHeaders(name, page.headers);
      }
      // Every cookie this browser was ever sent.
      for (const seen of browser.seen) expectCookies(`${seen.method} ${seen.url.pathname}`, seen.headers);
      expect(browser.seen.flatMap((s) => s.headers.getSetCookie()).some((c) => c.startsWith('__Host-portcullis.session='))).to.equal(true);
    });

    it('T40 unknown paths: browsers get the HTML 404 page with every protective header, API clients problem JSON; neither is cached', async function () {
      const browser = new ProxiedBrowser(issuer, backend);
      const page = await browser.follow('/no-such-page?x=<script>');
      expect(page.response.status).to.equal(404);
      expect(page.response.headers.get('Content-Type')).to.include('text/html');
      const html = await page.response.text();
      expect(html).to.include('This page doesn&#39;t exist').and.to.include('href="/account"').and.not.to.include('<script>');
      expectPageHeaders('404 page', page.response.headers);
      expect(page.response.headers.get('Content-Security-Policy')).to.match(/script-src 'self' 'nonce-[A-Za-z0-9+/]{22}=='/);

      for (const method of ['GET', 'POST', 'DELETE']) {
        const api = await browser.request('/no-such-endpoint', { method, headers: { Accept: 'application/json' } });
        expect(api.status, method).to.equal(404);
        expect(api.headers.get('Content-Type'), method).to.include('application/problem+json');
        expect(api.headers.get('Cache-Control'), method).to.include('no-store');
        expect(api.headers.get('X-Content-Type-Options'), method).to.equal('nosniff');
        expect(await api.json(), method).to.deep.include({ status: 404, type: 'urn:portcullis:problem:not-found', title: 'Not found' });
      }
    });

    it('T40 token and userinfo JSON: Cache-Control no-store, nosniff, HSTS', async function () {
      const { callback, verifier } = await proxiedSignIn(user);
      const token = await tokens(callback.searchParams.get('code')!, verifier);
      expect(token.status).to.equal(200);
      expect(token.headers.get('Cache-Control')).to.include('no-store');
      expect(token.headers.get('X-Content-Type-Options')).to.equal('nosniff');
      expect(token.headers.get('Strict-Transport-Security')).to.include('max-age=31536000');
      const userinfo = await fetch(`${backend}/me`, {
        headers: { Authorization: `Bearer ${String(token.body.access_token)}`, 'X-Forwarded-Proto': 'https' },
      });
      expect(userinfo.status).to.equal(200);
      expect(userinfo.headers.get('Cache-Control')).to.include('no-store');
      expect(userinfo.headers.get('X-Content-Type-Options')).to.equal('nosniff');
    });
  });

  describe('T42 no open redirects', function () {
    const evil = 'https://evil.test';

    /** No response of the chain, nor any logout form it offers, leads off to evil.test. */
    async function expectNoEvilRedirect(name: string, path: string): Promise<void> {
      const browser = new ProxiedBrowser(issuer, backend);
      const { response, url } = await browser.follow(path);
      expect(url.hostname, name).not.to.equal('evil.test');
      const html = await response.text();
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
      if (xsrf) {
        const confirmed = await browser.submit('/session/end/confirm', { xsrf, logout: 'yes' });
        expect(confirmed.url.hostname, `${name} (confirmed)`).not.to.equal('evil.test');
      }
      for (const seen of browser.seen) expect(seen.headers.get('Location') ?? '', name).not.to.include('evil.test');
    }

    it('T42 /session/end with an unregistered post_logout_redirect_uri never redirects there, whatever the id_token_hint', async function () {
      const mine = await proxiedSignIn(user);
      const mineTokens = await tokens(mine.callback.searchParams.get('code')!, mine.verifier);
      const idToken = String(mineTokens.body.id_token);
      const otherLogin = await proxiedSignIn(user, other.client_id);
      const otherCode = otherLogin.callback.searchParams.get('code')!;
      const otherTokens = await fetch(`${backend}/token`, {
        method: 'POST',
        headers: {
          ...FORM,
          'X-Forwarded-Proto': 'https',
          Authorization: basicAuth(other.client_id, other.client_secret),
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: otherCode,
          redirect_uri: RP_REDIRECT,
          code_verifier: otherLogin.verifier,
        }),
      });
      const otherIdToken = ((await otherTokens.json()) as { id_token: string }).id_token;
      const [, payload] = idToken.split('.');
      const forged = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
      const uri = encodeURIComponent(evil);
      const cases: [string, string][] = [
        ['no hint', `/session/end?post_logout_redirect_uri=${uri}`],
        ['client_id only', `/session/end?client_id=${rp.client_id}&post_logout_redirect_uri=${uri}`],
        ['valid hint', `/session/end?id_token_hint=${idToken}&post_logout_redirect_uri=${uri}`],
        ['alg:none hint', `/session/end?id_token_hint=${forged}&post_logout_redirect_uri=${uri}`],
        ["another client's hint", `/session/end?id_token_hint=${otherIdToken}&post_logout_redirect_uri=${uri}`],
        [
          "another client's hint, our client_id",
          `/session/end?client_id=${rp.client_id}&id_token_hint=${otherIdToken}&post_logout_redirect_uri=${encodeURIComponent(LOGGED_OUT)}`,
        ],
        [
          'evil uri with a registered prefix',
          `/session/end?client_id=${rp.client_id}&post_logout_redirect_uri=${encodeURIComponent(`${LOGGED_OUT}@evil.test`)}`,
        ],
      ];
      for (const [name, path] of cases) await expectNoEvilRedirect(name, path);
      // The registered URI does work (the test can tell a redirect when there is one).
      const browser = new ProxiedBrowser(issuer, backend);
      const page = await browser.follow(`/session/end?id_token_hint=${idToken}&post_logout_redirect_uri=${encodeURIComponent(LOGGED_OUT)}`);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(await page.response.text())?.[1] ?? '';
      expect((await browser.submit('/session/end/confirm', { xsrf, logout: 'yes' })).url.href.startsWith(LOGGED_OUT)).to.equal(true);
    });

    it('T42 return-address parameters on our own pages (returnTo, next, redirect) are ignored: only same-origin redirects', async function () {
      const { browser } = await proxiedSignIn(user);
      const targets = ['//evil.test', 'https:evil.test', '/\\evil.test', 'https://evil.test', '/%2F%2Fevil.test', '\\\\evil.test'];
      const paths = ['/account', '/account/callback', '/session/end', '/device', '/interaction/x'];
      for (const target of targets) {
        for (const path of paths) {
          for (const param of ['returnTo', 'next', 'redirect', 'return_to', 'redirect_uri']) {
            const response = await browser.request(`${path}?${param}=${encodeURIComponent(target)}`);
            const location = response.headers.get('Location');
            if (location) expect(new URL(location, issuer).origin, `${path}?${param}=${target} → ${location}`).to.equal(issuer);
          }
        }
        // Path-based: a server that "normalises" //evil.test/ into a redirect would be an open redirect.
        const raw = await fetch(`${backend}/${target.replace(/^\/+/, '')}`.replace(`${backend}/`, `${backend}//`), {
          redirect: 'manual',
          headers: { 'X-Forwarded-Proto': 'https' },
        });
        const location = raw.headers.get('Location');
        if (location) expect(new URL(location, issuer).origin, `path ${target} → ${location}`).to.equal(issuer);
      }
    });
  });
});

/**
 * T45 with Redis (sessions, interactions, tokens) stopped under a running server: no token, no
 * sign-in, an honest "temporarily unavailable"; and back to normal, without a restart, once
 * Redis returns. A private redis-server is killed, never the shared one.
 */
describe('T45 Redis outage on the authorization server', function () {
  this.timeout(90_000);
  let redis: PrivateRedis | undefined;
  let servers: TestServers;
  let service: { client_id: string; client_secret?: string };
  let rp: { client_id: string };
  let user: Awaited<ReturnType<typeof createTestUser>>;

  before(async function () {
    redis = await startPrivateRedis();
    servers = await startTestServers({ env: { REDIS_URL: redis.url } });
    service = await createTestClient(servers.deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      response_types: [],
    });
    rp = await createTestClient(servers.deps);
    user = await createTestUser(servers.deps);
  });

  after(async function () {
    await servers.stop();
    await redis?.stop();
  });

  const clientCredentials = () =>
    fetch(`${servers.issuer}/token`, {
      method: 'POST',
      headers: { ...FORM, Authorization: basicAuth(service.client_id, service.client_secret) },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
      signal: AbortSignal.timeout(15_000),
    });

  const authorizationUrl = (): URL => authorizationRequestTo(servers.issuer, rp.client_id, { state: 'st' }).url;

  it('T45 Redis down: /token 5xx (never 200), /auth 503 temporarily_unavailable, login refused; Redis back: all work again without a restart', async function () {
    expect((await clientCredentials()).status).to.equal(200);
    const browser = new Browserless(servers.issuer);
    const page = await browser.follow(authorizationUrl());
    const login = formOf(await page.response.text(), '/login');

    const port = redis!.port;
    await redis!.stop();
    redis = undefined;

    const token = await clientCredentials();
    const tokenBody = await token.text();
    expect(token.status, tokenBody).to.be.at.least(500);
    expect(tokenBody).not.to.include('access_token');

    // RFC 6749 §4.1.2.1: the client and its redirect URI are valid (clients live in Postgres), so
    // the error goes back to the client: temporarily_unavailable, with its state, and no code.
    const authorize = await browser.request(authorizationUrl());
    const location = authorize.headers.get('Location');
    expect(authorize.status, (await authorize.text()).slice(0, 300)).to.equal(303);
    const back = new URL(location ?? '');
    expect(back.href.startsWith(RP_REDIRECT), location ?? '').to.equal(true);
    expect(back.searchParams.get('error')).to.equal('temporarily_unavailable');
    expect(back.searchParams.get('state')).to.equal('st');
    expect(back.searchParams.get('code')).to.equal(null);

    const submitted = await browser.request(login.action, {
      method: 'POST',
      headers: { ...FORM, Origin: servers.issuer },
      body: new URLSearchParams({ csrf: login.csrf, email: user.email, password: user.password }).toString(),
    });
    expect(submitted.status).to.be.at.least(500);
    expect(submitted.headers.get('Location')).to.equal(null);
    expect(submitted.headers.getSetCookie().some((c) => c.startsWith('portcullis.session='))).to.equal(false);

    redis = await startPrivateRedis([], port);
    await eventually(async () => expect((await clientCredentials()).status, 'client_credentials once Redis is back').to.equal(200), {
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    const callback = await signIn(new Browserless(servers.issuer), authorizationUrl(), user);
    expect(callback.searchParams.get('code')).to.be.a('string');
  });
});
