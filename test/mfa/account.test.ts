import { expect } from 'chai';
import * as client from 'openid-client';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { RP_REDIRECT } from '../helpers/oidc.ts';
import { oauthErrorOf } from '../helpers/rejections.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * The account page over HTTP: sign-in through the provider, recent-authentication re-prompt,
 * CSRF, connected apps and "sign out everywhere" (which oidc-provider leaves to the app).
 */
describe('account page', function () {
  let servers: TestServers;
  let rp: Awaited<ReturnType<typeof relyingParty>>;

  before(async function () {
    servers = await startTestServers();
    const registered = await createTestClient(servers.deps, { client_name: 'Notes App' });
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
  });

  after(async function () {
    await servers.stop();
  });

  /** Signs in to /account through the provider's login page; returns the account page HTML. */
  async function accountSignIn(browser: Browserless, email: string, password: string): Promise<string> {
    const first = await browser.follow('/account');
    expect(first.url.pathname).to.match(/^\/interaction\//);
    const login = formOf(await first.response.text(), '/login');
    const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email, password });
    expect(url.pathname).to.equal('/account');
    return response.text();
  }

  /** An app connected with offline access: returns its refresh token. */
  async function connectApp(browser: Browserless): Promise<string> {
    const flow = await rp.authorizationUrl({ scope: 'openid email offline_access', prompt: 'consent' });
    const first = await browser.follow(flow.url);
    let { url } = first;
    if (url.origin === servers.issuer) {
      const consent = formOf(await first.response.text(), '/confirm');
      ({ url } = await browser.submit(consent.action, { csrf: consent.csrf }));
    }
    expect(url.href.startsWith(RP_REDIRECT)).to.equal(true);
    const tokens = await client.authorizationCodeGrant(rp.rp, url, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
    if (!tokens.refresh_token) throw new Error('no refresh token');
    return tokens.refresh_token;
  }

  async function ageSession(browser: Browserless, seconds: number): Promise<void> {
    const adapter = servers.deps.oidcAdapter('Session');
    const payload = (await adapter.find(browser.sessionId)) as { loginTs: number; exp: number } & Record<string, unknown>;
    await adapter.upsert(
      browser.sessionId,
      { ...payload, loginTs: payload.loginTs - seconds },
      payload.exp - Math.floor(Date.now() / 1000),
    );
  }

  it('is reached by signing in through the provider (first-party client, no consent screen)', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    const html = await accountSignIn(browser, user.email, user.password);
    expect(html).to.contain('Your account');
    expect(html).to.contain(user.email);
  });

  it('asks for a fresh sign-in before a sensitive change when the last one is old', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    const html = await accountSignIn(browser, user.email, user.password);
    const csrf = formOf(html, '/sign-out-everywhere').csrf;
    await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
    await ageSession(browser, 3600);
    const response = await browser.request('/account/totp/remove', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
      body: new URLSearchParams({ csrf }).toString(),
    });
    expect(response.status).to.equal(303);
    const location = new URL(response.headers.get('Location') ?? '', servers.issuer);
    expect(location.pathname).to.equal('/auth');
    expect(location.searchParams.get('prompt')).to.equal('login');
  });

  it('refuses account changes without the form token or from another site (T30)', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    const html = await accountSignIn(browser, user.email, user.password);
    const csrf = formOf(html, '/sign-out-everywhere').csrf;
    const post = (fields: Record<string, string>, headers: Record<string, string>) =>
      browser.request('/account/sign-out-everywhere', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(fields).toString(),
      });
    expect((await post({}, { Origin: servers.issuer })).status).to.equal(403);
    expect((await post({ csrf: 'forged' }, { Origin: servers.issuer })).status).to.equal(403);
    expect((await post({ csrf }, { Origin: 'https://evil.test' })).status).to.equal(403);
    expect((await post({ csrf }, { 'Sec-Fetch-Site': 'cross-site' })).status).to.equal(403);
    expect(await servers.deps.oidcAdapter('Session').find(browser.sessionId)).to.not.equal(undefined);
  });

  it('lists connected apps and revokes one: its refresh token stops working', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    await accountSignIn(browser, user.email, user.password);
    const refreshToken = await connectApp(browser);
    const page = await (await browser.follow('/account')).response.text();
    expect(page).to.contain('Notes App');
    expect(page).to.not.contain('Your account</strong>');
    const revoke = formOf(page, '/revoke');
    const { url } = await browser.submit(revoke.action, { csrf: revoke.csrf });
    expect(url.searchParams.get('notice')).to.equal('grant-revoked');
    expect(await oauthErrorOf(() => client.refreshTokenGrant(rp.rp, refreshToken))).to.equal('invalid_grant');
    const after = await (await browser.follow('/account')).response.text();
    expect(after).to.contain('No applications have access');
  });

  it("does not let one user revoke another user's grant", async function () {
    const alice = await createTestUser(servers.deps);
    const bob = await createTestUser(servers.deps);
    const aliceBrowser = new Browserless(servers.issuer);
    await accountSignIn(aliceBrowser, alice.email, alice.password);
    const refreshToken = await connectApp(aliceBrowser);
    const grantId = /\/account\/grants\/([^/]+)\/revoke/.exec(await (await aliceBrowser.follow('/account')).response.text())?.[1] ?? '';
    const bobBrowser = new Browserless(servers.issuer);
    const bobPage = await accountSignIn(bobBrowser, bob.email, bob.password);
    const { response } = await bobBrowser.submit(`/account/grants/${grantId}/revoke`, {
      csrf: formOf(bobPage, '/sign-out-everywhere').csrf,
    });
    expect(response.status).to.equal(404);
    const tokens = await client.refreshTokenGrant(rp.rp, refreshToken);
    expect(tokens.access_token).to.be.a('string');
  });

  it('"sign out everywhere" ends every session and revokes every grant of the user', async function () {
    const user = await createTestUser(servers.deps);
    const laptop = new Browserless(servers.issuer);
    const phone = new Browserless(servers.issuer);
    const html = await accountSignIn(laptop, user.email, user.password);
    await accountSignIn(phone, user.email, user.password);
    const refreshToken = await connectApp(phone);
    const form = formOf(html, '/sign-out-everywhere');
    const { response } = await laptop.submit(form.action, { csrf: form.csrf });
    expect(await response.text()).to.contain('Signed out everywhere');
    for (const browser of [laptop, phone]) {
      expect(await servers.deps.oidcAdapter('Session').find(browser.sessionId)).to.equal(undefined);
      const again = await browser.follow('/account');
      expect(again.url.pathname).to.match(/^\/interaction\//);
    }
    expect(await oauthErrorOf(() => client.refreshTokenGrant(rp.rp, refreshToken))).to.equal('invalid_grant');
    const events = await servers.deps.knex('audit_events').where({ actor_id: user.id, type: 'sessions.revoked_all' });
    expect(events).to.have.length(1);
  });

  it('changing the password needs the current one and signs out other devices (T29)', async function () {
    const user = await createTestUser(servers.deps);
    const laptop = new Browserless(servers.issuer);
    const phone = new Browserless(servers.issuer);
    const html = await accountSignIn(laptop, user.email, user.password);
    await accountSignIn(phone, user.email, user.password);
    const form = formOf(html, '/password');
    const wrong = await laptop.submit(form.action, {
      csrf: form.csrf,
      current_password: 'not-it',
      new_password: 'a new long passphrase',
      confirm_password: 'a new long passphrase',
      sign_out_others: 'yes',
    });
    expect(await wrong.response.text()).to.contain('The current password is not right');
    const ok = await laptop.submit(form.action, {
      csrf: form.csrf,
      current_password: user.password,
      new_password: 'a new long passphrase',
      confirm_password: 'a new long passphrase',
      sign_out_others: 'yes',
    });
    expect(ok.url.searchParams.get('notice')).to.equal('password-changed-signed-out');
    expect(await ok.response.text()).to.contain('Other devices and apps were signed out');
    expect(await servers.deps.oidcAdapter('Session').find(phone.sessionId)).to.equal(undefined);
    expect(await servers.deps.oidcAdapter('Session').find(laptop.sessionId)).to.not.equal(undefined);
    expect(await servers.deps.accounts.authenticate(user.email, 'a new long passphrase')).to.not.equal(undefined);
  });

  it("R8 /account?notice= shows only known notices: an attacker's text shows nothing, a known code its own message", async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    await accountSignIn(browser, user.email, user.password);
    const page = async (notice: string) => (await browser.follow(`/account?notice=${encodeURIComponent(notice)}`)).response.text();
    const lure = 'Your account is suspended. Call +1 555 0100 and read out your recovery codes.';
    for (const notice of [lure, 'constructor', '__proto__', 'toString']) {
      const html = await page(notice);
      expect(html, notice).to.contain('Your account');
      expect(html, notice).to.not.contain('class="notice"');
    }
    expect(await page(lure)).to.not.contain('Call +1 555');
    expect(await page('grant-revoked')).to.match(/class="notice"[^>]*>Access removed\.</);
  });
});
