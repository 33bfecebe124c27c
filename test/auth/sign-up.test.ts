import { expect } from 'chai';
import * as client from 'openid-client';
import { loadConfig } from '../../src/config/load.ts';
import { enabledMailFeatures } from '../../src/config/mail-checks.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser, uniqueEmail } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { codeOf, comparable, consentIfAsked, nthMailTo, openLoginPage, submitCode, submitSignUp, type Rp } from '../helpers/sign-up.ts';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';

const MAIL_FROM = 'Portcullis <no-reply@example.test>';
const password = 'correct horse battery staple 12';

/**
 * Self-registration (issue 12) against a real SMTP server and a real relying party (openid-client):
 * the code from the received mail signs the new account in at the RP with a verified address.
 */
describe('issue 12 self-registration', function () {
  this.timeout(60_000);
  let smtp: TestSmtpServer;
  let servers: TestServers;
  let rp: Rp;

  before(async function () {
    smtp = await startSmtpServer();
    servers = await startTestServers({ env: { MAIL_URL: smtp.url, MAIL_FROM, SELF_REGISTRATION: 'true' } });
    const registered = await createTestClient(servers.deps, { client_name: 'Notes App' });
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
  });

  after(async function () {
    await servers.stop();
    await smtp.close();
  });

  const accountOf = (email: string) => servers.deps.stores.users.findByEmail(email);

  it('sign up → the code from the received mail → signed in at the RP, ID token and userinfo with email_verified true', async function () {
    const email = uniqueEmail('new');
    // An access token for the API (a resource indicator): the ID token carries the email claims (OIDC Core §5.4).
    const {
      browser,
      flow,
      html: login,
    } = await openLoginPage(servers.issuer, rp, { resource: servers.apiUrl, scope: 'openid email records:read' });
    expect(login).to.include('Create an account');
    const sent = await submitSignUp(browser, login, { email, password });
    expect(sent.url.pathname).to.match(/\/sign-up\/verify$/);
    expect(sent.html).to.include('Check your email').and.include(email);
    // Nothing exists until the code is entered.
    expect(await accountOf(email)).to.equal(undefined);

    const mail = await smtp.waitForMailTo(email);
    expect(mail.subject).to.equal('Your code to create your account');
    const code = codeOf(mail);
    expect(mail.link).to.equal(`${servers.issuer}${sent.url.pathname}?code=${code}`);
    expect(mail.html).to.include(code);

    const verified = await submitCode(browser, sent.html, code);
    const callback = await consentIfAsked(browser, verified);
    const tokens = await client.authorizationCodeGrant(
      rp.rp,
      callback,
      { pkceCodeVerifier: flow.verifier, expectedState: flow.state, idTokenExpected: true },
      { resource: servers.apiUrl },
    );
    const claims = tokens.claims() as client.IDToken;
    const account = await accountOf(email);
    expect(account).to.include({ email, email_verified: true });
    expect(claims).to.include({ sub: account?.id, email, email_verified: true });
    expect(claims.amr).to.deep.equal(['pwd']);

    // The password chosen at sign-up signs in.
    const again = await openLoginPage(servers.issuer, rp);
    const form = formOf(again.html, '/login');
    const signedIn = await again.browser.submit(form.action, { csrf: form.csrf, email, password });
    expect(signedIn.url.pathname).to.not.match(/\/login$/);
  });

  it('userinfo says email_verified true for the new account', async function () {
    const email = uniqueEmail('userinfo');
    const { browser, flow, html: login } = await openLoginPage(servers.issuer, rp);
    const sent = await submitSignUp(browser, login, { email, password });
    const verified = await submitCode(browser, sent.html, codeOf(await smtp.waitForMailTo(email)));
    const callback = await consentIfAsked(browser, verified);
    const tokens = await client.authorizationCodeGrant(rp.rp, callback, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
    const info = await client.fetchUserInfo(rp.rp, tokens.access_token, tokens.claims()?.sub ?? '');
    expect(info).to.include({ email, email_verified: true });
  });

  it('an existing address gets the same page, its owner gets a notice instead of a code, and no account is made', async function () {
    const owner = await createTestUser(servers.deps);
    const fresh = uniqueEmail('fresh');
    const before = await servers.deps.accounts.countUsers();

    const one = await openLoginPage(servers.issuer, rp);
    const existing = await submitSignUp(one.browser, one.html, { email: owner.email, password });
    const two = await openLoginPage(servers.issuer, rp);
    const unused = await submitSignUp(two.browser, two.html, { email: fresh, password });
    expect(existing.response.status).to.equal(unused.response.status);
    expect(existing.url.pathname.replace(/\/interaction\/[\w-]+/, '')).to.equal(unused.url.pathname.replace(/\/interaction\/[\w-]+/, ''));
    expect(comparable(existing.html).replaceAll(owner.email, 'ADDRESS')).to.equal(comparable(unused.html).replaceAll(fresh, 'ADDRESS'));

    const notice = await smtp.waitForMailTo(owner.email);
    expect(notice.subject).to.equal('Someone tried to use your email address');
    expect(notice.text).to.include('You already have').and.include('Forgot password?');
    expect(notice.text).to.not.match(/^\s*\d{6}\s*$/m);
    expect(notice.link).to.equal(`${servers.issuer}/account`);
    await smtp.waitForMailTo(fresh);

    // A guess at the (never sent) code is answered as a wrong code for a new address.
    const guessExisting = await submitCode(one.browser, existing.html, '000000');
    const guessFresh = await submitCode(two.browser, unused.html, '000000');
    expect(guessExisting.response.status).to.equal(guessFresh.response.status);
    expect(comparable(guessExisting.html).replaceAll(owner.email, 'ADDRESS')).to.equal(
      comparable(guessFresh.html).replaceAll(fresh, 'ADDRESS'),
    );

    expect(await servers.deps.accounts.countUsers()).to.equal(before);
    // The owner's password still works, the sign-up's does not.
    expect(await servers.deps.accounts.authenticate(owner.email, owner.password)).to.not.equal(undefined);
    expect(await servers.deps.accounts.authenticate(owner.email, password)).to.equal(undefined);
  });

  it('refuses a password the policy refuses elsewhere, and two passwords that differ, sending nothing', async function () {
    const email = uniqueEmail('weak');
    const { browser, html } = await openLoginPage(servers.issuer, rp);
    const weak = await submitSignUp(browser, html, { email, password: 'password' });
    expect(weak.response.status).to.equal(400);
    expect(weak.html).to.include('one of the most common passwords');
    const short = await submitSignUp(browser, html, { email, password: 'Ab3$' });
    expect(short.html).to.include('too short (at least 8 characters)');
    const differ = await submitSignUp(browser, html, { email, password, confirm: `${password}x` });
    expect(differ.html).to.include('The passwords do not match.');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.mailsTo(email)).to.have.length(0);
  });

  it('limits wrong codes: after EMAIL_CODE_ATTEMPTS entries the right code no longer works; a new code does', async function () {
    const email = uniqueEmail('wrong');
    const { browser, flow, html: login } = await openLoginPage(servers.issuer, rp);
    const sent = await submitSignUp(browser, login, { email, password });
    const code = codeOf(await smtp.waitForMailTo(email));
    const wrong = code === '123456' ? '654321' : '123456';
    let page = sent.html;
    for (let left = 4; left >= 0; left--) {
      const answer = await submitCode(browser, page, wrong);
      expect(answer.response.status).to.equal(400);
      expect(answer.html).to.include(left > 0 ? `${left} ${left === 1 ? 'try' : 'tries'} left` : 'it no longer works');
      page = answer.html;
    }
    const late = await submitCode(browser, page, code);
    expect(late.html).to.include('This code no longer works');
    expect(await accountOf(email)).to.equal(undefined);

    // "Send a new code": only the newest works.
    const resend = formOf(page, '/sign-up/resend');
    const resent = await browser.submit(resend.action, { csrf: resend.csrf });
    const resentHtml = await resent.response.text();
    expect(resentHtml).to.include('We sent a new code');
    const fresh = codeOf(await nthMailTo(smtp, email, 2));
    const verified = await submitCode(browser, resentHtml, fresh);
    const callback = await consentIfAsked(browser, verified);
    const claims = await rp.exchange(callback, flow.verifier, flow.state);
    expect(await accountOf(email)).to.include({ id: claims.sub, email_verified: true });
  });

  it('refuses an expired code', async function () {
    const email = uniqueEmail('expired');
    const { browser, html: login } = await openLoginPage(servers.issuer, rp);
    const sent = await submitSignUp(browser, login, { email, password });
    const code = codeOf(await smtp.waitForMailTo(email));
    await servers.deps
      .knex('email_codes')
      .where({ email })
      .update({ expires_at: servers.deps.knex.raw("now() - interval '1 second'") });
    const late = await submitCode(browser, sent.html, code);
    expect(late.response.status).to.equal(400);
    expect(late.html).to.include('This code has expired');
    expect(await accountOf(email)).to.equal(undefined);
  });

  it('needs the page’s form token and a same-origin form on every POST', async function () {
    const { browser, html: login } = await openLoginPage(servers.issuer, rp);
    const href = /<a href="([^"]+\/sign-up)">/.exec(login)?.[1] ?? '';
    const page = await browser.follow(href);
    const form = formOf(await page.response.text(), '/sign-up');
    const email = uniqueEmail('csrf');
    const fields = { email, password, confirm_password: password };
    const noToken = await browser.submit(form.action, fields);
    expect(noToken.response.status).to.equal(403);
    const crossSite = await browser.submit(
      form.action,
      { ...fields, csrf: form.csrf },
      { Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' },
    );
    expect(crossSite.response.status).to.equal(403);
    for (const path of ['/sign-up/verify', '/sign-up/resend']) {
      const answer = await browser.submit(form.action.replace(/\/sign-up$/, path), { code: '123456' });
      expect(answer.response.status, path).to.equal(403);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.mailsTo(email)).to.have.length(0);
  });

  it('a link opened in another browser says where to use it, and verifies nothing', async function () {
    const email = uniqueEmail('elsewhere');
    const { browser, html: login } = await openLoginPage(servers.issuer, rp);
    await submitSignUp(browser, login, { email, password });
    const mail = await smtp.waitForMailTo(email);
    const other = new Browserless(servers.issuer);
    const opened = await other.follow(mail.link ?? '');
    expect(opened.response.status).to.equal(400);
    expect(await opened.response.text()).to.include('Open this link where you started');
    expect(await accountOf(email)).to.equal(undefined);
    // In the browser that asked, the link fills the code in; the POST makes the account.
    const same = await browser.follow(mail.link ?? '');
    const html = await same.response.text();
    expect(html).to.include(`value="${codeOf(mail)}"`);
    await submitCode(browser, html, codeOf(mail));
    expect(await accountOf(email)).to.include({ email_verified: true });
  });

  it('at rest, the code is an HMAC bound to its row and the flow a keyed digest; expired rows are swept', async function () {
    const email = uniqueEmail('at-rest');
    const { browser, html: login, url } = await openLoginPage(servers.issuer, rp);
    await submitSignUp(browser, login, { email, password });
    const code = codeOf(await smtp.waitForMailTo(email));
    const uid = /\/interaction\/([\w-]+)/.exec(url.pathname)?.[1] ?? '';
    const row = await servers.deps.knex('email_codes').where({ email }).first<Record<string, unknown>>();
    const text = JSON.stringify(row);
    expect(text).to.not.include(code);
    expect(text).to.not.include(uid);
    expect(row.code_hash).to.be.a('string').with.length(43);
    expect(String(row.password_hash)).to.match(/^\$argon2id\$/);
    await servers.deps
      .knex('email_codes')
      .where({ email })
      .update({ expires_at: servers.deps.knex.raw("now() - interval '1 second'") });
    expect(await servers.deps.signUp.sweep()).to.be.at.least(1);
    expect(await servers.deps.knex('email_codes').where({ email })).to.deep.equal([]);
  });

  it('a client that requires a second factor: the new account sets one up before it is signed in', async function () {
    const strict = await createTestClient(servers.deps, { client_name: 'Strict App', require_mfa: true });
    const strictRp = await relyingParty(servers.issuer, strict.client_id, strict.client_secret);
    const email = uniqueEmail('strict');
    const { browser, html: login } = await openLoginPage(servers.issuer, strictRp);
    const sent = await submitSignUp(browser, login, { email, password });
    const next = await submitCode(browser, sent.html, codeOf(await smtp.waitForMailTo(email)));
    expect(next.url.origin).to.equal(servers.issuer);
    expect(next.html).to.include('Set up two-step sign-in');
    expect(await accountOf(email)).to.include({ email_verified: true });
  });

  it('SELF_REGISTRATION and REQUIRE_VERIFIED_EMAIL need mail in production; REQUIRE_VERIFIED_EMAIL follows SELF_REGISTRATION unless set', function () {
    const base = { NODE_ENV: 'production', ISSUER: 'https://id.example.test' };
    expect(loadConfig({}).signUp).to.deep.equal({ enabled: false, domains: [] });
    const on = loadConfig({ ...base, SELF_REGISTRATION: 'true', SELF_REGISTRATION_DOMAINS: 'example.com, Example.org' });
    expect(on.signUp.domains).to.deep.equal(['example.com', 'Example.org']);
    expect(enabledMailFeatures(on)).to.deep.equal(['self-registration (SELF_REGISTRATION)', 'email verification (REQUIRE_VERIFIED_EMAIL)']);
    expect(productionSettingProblems(on).join('\n')).to.include(
      'MAIL_URL (or MAIL_URL_FILE) must be set: self-registration (SELF_REGISTRATION), email verification (REQUIRE_VERIFIED_EMAIL) send mail',
    );
    expect(enabledMailFeatures(loadConfig({ ...base, SELF_REGISTRATION: 'true', REQUIRE_VERIFIED_EMAIL: 'false' }))).to.deep.equal([
      'self-registration (SELF_REGISTRATION)',
    ]);
    expect(enabledMailFeatures(loadConfig({ ...base, REQUIRE_VERIFIED_EMAIL: 'true' }))).to.deep.equal([
      'email verification (REQUIRE_VERIFIED_EMAIL)',
    ]);
    expect(enabledMailFeatures(loadConfig(base))).to.deep.equal([]);
    expect(() => loadConfig({ SELF_REGISTRATION_DOMAINS: 'example.com,@evil' })).to.throw(
      /SELF_REGISTRATION_DOMAINS: must be comma-separated domains/,
    );
  });
});

describe('issue 12 self-registration settings', function () {
  this.timeout(60_000);
  let smtp: TestSmtpServer;

  before(async function () {
    smtp = await startSmtpServer();
  });

  after(async function () {
    await smtp.close();
  });

  it('off (the default): no link on the sign-in page, and the sign-up paths are 404', async function () {
    const servers = await startTestServers({ env: { MAIL_URL: smtp.url, MAIL_FROM } });
    try {
      const registered = await createTestClient(servers.deps);
      const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
      const { browser, html, url } = await openLoginPage(servers.issuer, rp);
      expect(html).to.not.include('Create an account');
      expect(html).to.not.include('/sign-up');
      for (const path of ['/sign-up', '/sign-up/verify', '/sign-up/verify?code=123456']) {
        const page = await browser.request(`${url.pathname}${path}`);
        expect(page.status, path).to.equal(404);
      }
      const login = formOf(html, '/login');
      for (const path of ['/sign-up', '/sign-up/verify', '/sign-up/resend']) {
        const posted = await browser.submit(`${url.pathname}${path}`, { csrf: login.csrf, email: uniqueEmail('off'), password });
        expect(posted.response.status, path).to.equal(404);
      }
      expect(await servers.deps.knex('email_codes').where('email', 'like', 'off.%')).to.deep.equal([]);
    } finally {
      await servers.stop();
    }
  });

  it('SELF_REGISTRATION_DOMAINS: another domain is refused without naming the allowed ones, and nothing is sent', async function () {
    const servers = await startTestServers({
      env: { MAIL_URL: smtp.url, MAIL_FROM, SELF_REGISTRATION: 'true', SELF_REGISTRATION_DOMAINS: 'allowed.test,Example.Test' },
    });
    try {
      const registered = await createTestClient(servers.deps);
      const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
      const { browser, html } = await openLoginPage(servers.issuer, rp);
      const outside = `someone.${Date.now()}@other.test`;
      for (const email of [outside, `a@sub.allowed.test`, `a@allowed.test.evil.test`, 'a@allowed.test@evil.test']) {
        const refused = await submitSignUp(browser, html, { email, password });
        expect(refused.response.status, email).to.equal(400);
        expect(refused.html, email).to.satisfy(
          (page: string) => page.includes('cannot be used to create an account here') || page.includes('Enter an email address'),
        );
        expect(refused.html).to.not.include('allowed.test<').and.not.include('Example.Test');
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(smtp.mailsTo(outside)).to.have.length(0);

      // The allowed domains, in any case and in full-width letters (the one normalisation, R7).
      const allowed = `someone.${Date.now()}@EXAMPLE.test`;
      const accepted = await submitSignUp(browser, html, { email: allowed, password });
      expect(accepted.url.pathname).to.match(/\/sign-up\/verify$/);
      await smtp.waitForMailTo(allowed);
    } finally {
      await servers.stop();
    }
  });
});
