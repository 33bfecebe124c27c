import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Our interaction pages (login, consent) against the attacks docs/security.md lists for them:
 * login CSRF, enumeration through messages, step skipping, and the page headers.
 */
describe('login and consent pages', function () {
  let servers: TestServers;
  let rp: client.Configuration;
  let user: Awaited<ReturnType<typeof createTestUser>>;
  let disabled: Awaited<ReturnType<typeof createTestUser>>;

  before(async function () {
    servers = await startTestServers();
    user = await createTestUser(servers.deps);
    disabled = await createTestUser(servers.deps);
    await servers.deps.knex('users').where({ id: disabled.id }).update({ disabled: true });
    const registered = await createTestClient(servers.deps);
    rp = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
  });

  after(async function () {
    await servers.stop();
  });

  async function openLogin() {
    const { url } = await authorizationRequest(rp, { state: 'state-1' });
    const browser = new Browserless(servers.issuer);
    const { response, url: page } = await browser.follow(url);
    const html = await response.text();
    return { browser, response, page, html, form: formOf(html, '/login') };
  }

  it('renders an accessible login page with Email and Password labels and safe headers (T40)', async function () {
    const { response, html } = await openLogin();
    expect(response.status).to.equal(200);
    expect(html).to.match(/<label for="email">Email<\/label>/);
    expect(html).to.match(/<label for="password">Password<\/label>/);
    expect(html).to.include('Test RP');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).to.include("frame-ancestors 'none'").and.include("object-src 'none'").and.include("base-uri 'none'");
    expect(csp).to.not.include('form-action');
    expect(response.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(response.headers.get('referrer-policy')).to.equal('no-referrer');
    expect(response.headers.get('cache-control')).to.equal('no-store');
    expect(response.headers.get('cross-origin-opener-policy')).to.equal('same-origin');
  });

  it('sets HttpOnly, SameSite=Lax signed cookies for the interaction', async function () {
    const { url } = await authorizationRequest(rp);
    const response = await fetch(url, { redirect: 'manual' });
    const cookies = response.headers.getSetCookie();
    expect(cookies.length).to.be.greaterThan(0);
    for (const cookie of cookies) {
      expect(cookie.toLowerCase()).to.include('httponly').and.include('samesite=lax');
    }
    expect(cookies.some((c) => c.includes('.sig='))).to.equal(true);
  });

  it('answers unknown email, wrong password and disabled account identically (T33)', async function () {
    const attempts = [
      { email: 'nobody@example.test', password: 'whatever-password' },
      { email: user.email, password: 'wrong-password' },
      { email: disabled.email, password: disabled.password },
    ];
    const pages: string[] = [];
    for (const attempt of attempts) {
      const { browser, form } = await openLogin();
      const { response, url } = await browser.submit(form.action, { csrf: form.csrf, ...attempt });
      expect(response.status).to.equal(200);
      expect(url.pathname).to.match(/^\/interaction\/[^/]+\/login$/);
      const html = await response.text();
      expect(html).to.include('The email or password is not right.');
      // Normalise what legitimately differs: the interaction id, its CSRF token, the typed email.
      pages.push(html.replace(/\/interaction\/[^/"]+/g, '/interaction/X').replace(/value="[^"]*"/g, 'value=""'));
    }
    expect(pages[1]).to.equal(pages[0]);
    expect(pages[2]).to.equal(pages[0]);
  });

  it('refuses a cross-site login POST before checking the password (T30)', async function () {
    const attempts = () =>
      servers.deps.knex('audit_events').where({ type: 'login.password', actor_id: user.id }).count<{ count: number }[]>({ count: '*' });
    const before = (await attempts())[0]?.count;
    const { browser, form } = await openLogin();
    for (const headers of [{ Origin: 'https://evil.test' }, { 'Sec-Fetch-Site': 'cross-site' }]) {
      const { response } = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password }, headers);
      expect(response.status).to.equal(403);
      expect(await response.text()).to.include('sent from another site');
    }
    expect((await attempts())[0]?.count).to.equal(before);
  });

  it('refuses a login POST with a missing or forged form token (T30)', async function () {
    const { browser, form } = await openLogin();
    const missing = await browser.submit(form.action, { email: user.email, password: user.password });
    expect(missing.response.status).to.equal(403);
    const forged = await browser.submit(form.action, { csrf: 'A'.repeat(43), email: user.email, password: user.password });
    expect(forged.response.status).to.equal(403);
    // The genuine token still works afterwards.
    const ok = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password });
    expect(ok.url.pathname).to.match(/^\/interaction\//);
    expect(await ok.response.text()).to.include('Allow');
  });

  it('refuses a POST without the interaction cookie (another browser)', async function () {
    const { form } = await openLogin();
    const stranger = new Browserless(servers.issuer);
    const { response } = await stranger.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password });
    expect(response.status).to.equal(400);
    const page = await response.text();
    expect(page).to.include('Your sign-in session has expired').and.include('Go back to the application');
  });

  it('does not let consent be posted before the password step (T32)', async function () {
    const { browser, form } = await openLogin();
    const confirm = form.action.replace(/\/login$/, '/confirm');
    const { response } = await browser.submit(confirm, { csrf: form.csrf });
    expect(response.status).to.equal(400);
    expect(await response.text()).to.include('This step is not expected now.');
  });

  it('rejects array-valued and oversized fields cleanly', async function () {
    const { browser, form } = await openLogin();
    const response = await browser.request(form.action, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
      body: `csrf=${form.csrf}&email=a@b.test&email=c@d.test&password=x`,
    });
    expect(response.status).to.equal(400);
    const huge = await browser.request(form.action, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
      body: `csrf=${form.csrf}&email=a@b.test&password=${'x'.repeat(100_000)}`,
    });
    expect(huge.status).to.equal(413);
  });

  it('shows a friendly error page and no redirect for an unregistered redirect_uri (T1)', async function () {
    const { url } = await authorizationRequest(rp, { redirect_uri: 'https://evil.test/cb' });
    const response = await fetch(url, { redirect: 'manual' });
    expect(response.status).to.equal(400);
    expect(response.headers.get('location')).to.equal(null);
    const html = await response.text();
    expect(html).to.include('return address it has not registered');
    expect(html).to.include('invalid_redirect_uri');
  });

  it('has no development interactions and answers unknown paths with 404 (T43)', async function () {
    const response = await fetch(`${servers.issuer}/interaction/does-not-exist/nope`, { redirect: 'manual' });
    expect(response.status).to.equal(404);
    const discovery = (await (await fetch(`${servers.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery.response_types_supported).to.deep.equal(['code', 'none']);
  });
});
