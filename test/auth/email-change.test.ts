import { expect } from 'chai';
import * as client from 'openid-client';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser, uniqueEmail } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { codeOf, comparable, consentIfAsked, type Rp } from '../helpers/sign-up.ts';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';

const MAIL_FROM = 'Portcullis <no-reply@example.test>';

/**
 * Changing the address from the account page (issue 12): the new address gets a code, the change
 * takes effect only when it is entered in the same session, and the old address is told.
 */
describe('issue 12 changing the email address on the account page', function () {
  this.timeout(60_000);
  let smtp: TestSmtpServer;
  let servers: TestServers;
  let rp: Rp;

  before(async function () {
    smtp = await startSmtpServer();
    servers = await startTestServers({ env: { MAIL_URL: smtp.url, MAIL_FROM, SELF_REGISTRATION_DOMAINS: 'example.test' } });
    const registered = await createTestClient(servers.deps, { client_name: 'Notes App' });
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
  });

  after(async function () {
    await servers.stop();
    await smtp.close();
  });

  /** A verified account signed in to /account; returns the browser and the page. */
  async function accountPage() {
    const user = await createTestUser(servers.deps);
    await servers.deps.stores.users.markEmailVerified(user.id);
    const browser = new Browserless(servers.issuer);
    const first = await browser.follow('/account');
    const login = formOf(await first.response.text(), '/login');
    const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
    expect(url.pathname).to.equal('/account');
    return { user, browser, html: await response.text() };
  }

  async function requestChange(browser: Browserless, html: string, newEmail: string) {
    const form = formOf(html, '/account/email');
    const { response, url } = await browser.submit(form.action, { csrf: form.csrf, new_email: newEmail });
    return { response, url, html: await response.text() };
  }

  async function enterCode(browser: Browserless, html: string, code: string) {
    const form = formOf(html, '/account/email/verify');
    const { response, url } = await browser.submit(form.action, { csrf: form.csrf, code });
    return { response, url, html: await response.text() };
  }

  const eventsOf = async (userId: string) =>
    (
      await servers.deps
        .knex('audit_events')
        .where({ actor_id: userId })
        .orderBy('id')
        .select<{ type: string; outcome: string }[]>('type', 'outcome')
    ).map((e) => `${e.type}:${e.outcome}`);

  it('the new address gets a code; the change takes effect when it is entered, and the old address is told', async function () {
    const { user, browser, html } = await accountPage();
    expect(html).to.include('Email address').and.include('Verified');
    const newEmail = uniqueEmail('moved');
    const asked = await requestChange(browser, html, newEmail);
    expect(asked.url.pathname).to.equal('/account/email/verify');
    expect(asked.html).to.include('Check your email').and.include(newEmail).and.include(user.email);
    // Nothing changed yet: the account keeps its address until the code.
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: user.email });

    const mail = await smtp.waitForMailTo(newEmail);
    expect(mail.subject).to.equal('Your code to confirm your new email address');
    expect(mail.link).to.equal(`${servers.issuer}/account/email/verify?code=${codeOf(mail)}`);
    expect(smtp.mailsTo(user.email)).to.have.length(0);

    const done = await enterCode(browser, asked.html, codeOf(mail));
    expect(done.url.pathname + done.url.search).to.equal('/account?notice=email-changed');
    expect(done.html).to.include('Your email address was changed.').and.include(newEmail);
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: newEmail, email_verified: true });

    const notice = await smtp.waitForMailTo(user.email);
    expect(notice.subject).to.equal('Your sign-in email address was changed');
    const masked = `${newEmail[0] ?? ''}•••@example.test`;
    expect(notice.text).to.include(masked).and.not.include(newEmail);
    // No link into the account: the old address can no longer sign in (the footer names the issuer only).
    expect(notice.text).to.not.include(`${servers.issuer}/`);
    expect(notice.text).to.include('contact your\nadministrator at once');

    // The old address no longer signs in; the new one does, and apps see it.
    expect(await servers.deps.accounts.authenticate(user.email, user.password)).to.equal(undefined);
    expect(await servers.deps.accounts.authenticate(newEmail, user.password)).to.include({ id: user.id });
    const flow = await rp.authorizationUrl({ prompt: 'consent' });
    const { response, url } = await browser.follow(flow.url);
    const callback = await consentIfAsked(browser, { url, html: url.origin === servers.issuer ? await response.text() : '' });
    const tokens = await client.authorizationCodeGrant(rp.rp, callback, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
    expect(await client.fetchUserInfo(rp.rp, tokens.access_token, user.id)).to.include({ email: newEmail, email_verified: true });

    expect(await eventsOf(user.id)).to.include.members(['email.change_requested:success', 'email.changed:success']);
  });

  it('an address another account has: the same answer as success, its owner is told, and the change never takes effect', async function () {
    const holder = await createTestUser(servers.deps);
    const { user, browser, html } = await accountPage();
    const other = await accountPage();
    const free = uniqueEmail('free');
    const taken = await requestChange(browser, html, holder.email.toUpperCase());
    const fine = await requestChange(other.browser, other.html, free);
    expect(taken.response.status).to.equal(fine.response.status);
    expect(taken.url.pathname).to.equal(fine.url.pathname);
    const normalise = (page: string, current: string, asked: string) =>
      comparable(page).replaceAll(current, 'CURRENT').replaceAll(asked, 'NEW').replaceAll(asked.toUpperCase(), 'NEW');
    expect(normalise(taken.html, user.email, holder.email)).to.equal(normalise(fine.html, other.user.email, free));

    const notice = await smtp.waitForMailTo(holder.email);
    expect(notice.subject).to.equal('Someone tried to use your email address');
    expect(notice.text).to.include('move another account to this email address');
    expect(notice.text).to.not.match(/^\s*\d{6}\s*$/m);
    await smtp.waitForMailTo(free);

    // A guess at the code that was never sent is a wrong code; nothing ever changes.
    const guess = await enterCode(browser, taken.html, '000000');
    expect(guess.html).to.include('That code is not right. 4 tries left.');
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: user.email });
    expect(await servers.deps.stores.users.findById(holder.id)).to.include({ email: holder.email });
    expect(smtp.mailsTo(user.email)).to.have.length(0);
  });

  it('the code works only in the session that asked for it', async function () {
    const { user, browser, html } = await accountPage();
    const newEmail = uniqueEmail('session');
    const asked = await requestChange(browser, html, newEmail);
    const code = codeOf(await smtp.waitForMailTo(newEmail));
    // The same user signed in elsewhere: no change waits in that session.
    const elsewhere = new Browserless(servers.issuer);
    const first = await elsewhere.follow('/account');
    const login = formOf(await first.response.text(), '/login');
    await elsewhere.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
    const link = await elsewhere.follow(`/account/email/verify?code=${code}`);
    expect(link.response.status).to.equal(400);
    expect(await link.response.text()).to.include('No address change is waiting here');
    const form = formOf(asked.html, '/account/email/verify');
    const page = formOf(await (await elsewhere.follow('/account')).response.text(), '/account/email');
    const posted = await elsewhere.submit(form.action, { csrf: page.csrf, code });
    expect(posted.response.status).to.equal(400);
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: user.email });
    // In the session that asked, it works.
    const done = await enterCode(browser, asked.html, code);
    expect(done.url.search).to.equal('?notice=email-changed');
  });

  it('refuses the same address, a domain outside SELF_REGISTRATION_DOMAINS and a malformed one, sending nothing', async function () {
    const { user, browser, html } = await accountPage();
    const same = await requestChange(browser, html, user.email.toUpperCase());
    expect(same.html).to.include('This is already your email address.');
    const outside = `someone.${Date.now()}@elsewhere.test`;
    const domain = await requestChange(browser, html, outside);
    expect(domain.html).to.include('This email address cannot be used here.');
    // The alert names no allowed domain.
    expect(/<p class="alert" role="alert">([^<]*)<\/p>/.exec(domain.html)?.[1]).to.equal(
      'This email address cannot be used here. Use your work or school address, or ask your administrator.',
    );
    const malformed = await requestChange(browser, html, 'not an address');
    expect(malformed.html).to.include('Enter an email address');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.mailsTo(outside)).to.have.length(0);
  });

  it('asking needs a recent sign-in and the page’s form token', async function () {
    const { user, browser, html } = await accountPage();
    const newEmail = uniqueEmail('stale');
    const form = formOf(html, '/account/email');
    const noToken = await browser.submit(form.action, { new_email: newEmail });
    expect(noToken.response.status).to.equal(403);
    // An old sign-in is sent to sign in again.
    const adapter = servers.deps.oidcAdapter('Session');
    const id = browser.jar.cookies.get('portcullis.session;/')?.value ?? '';
    const payload = (await adapter.find(id)) as { loginTs: number; exp: number } & Record<string, unknown>;
    await adapter.upsert(id, { ...payload, loginTs: payload.loginTs - 3600 }, payload.exp - Math.floor(Date.now() / 1000));
    const stale = await browser.request(form.action, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
      body: new URLSearchParams({ csrf: form.csrf, new_email: newEmail }).toString(),
    });
    expect(stale.status).to.equal(303);
    expect(stale.headers.get('Location')).to.include('prompt=login');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.mailsTo(newEmail)).to.have.length(0);
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: user.email });
  });

  it('"Keep my current address" ends the change: its code no longer works', async function () {
    const { user, browser, html } = await accountPage();
    const newEmail = uniqueEmail('kept');
    const asked = await requestChange(browser, html, newEmail);
    const code = codeOf(await smtp.waitForMailTo(newEmail));
    const cancel = formOf(asked.html, '/account/email/cancel');
    const kept = await browser.submit(cancel.action, { csrf: cancel.csrf });
    expect(kept.url.search).to.equal('?notice=email-kept');
    const late = await enterCode(browser, asked.html, code);
    expect(late.response.status).to.equal(400);
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: user.email });
  });
});
