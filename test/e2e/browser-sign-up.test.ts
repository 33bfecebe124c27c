import { mkdir } from 'node:fs/promises';
import { expect } from 'chai';
import type { BrowserContext, Page } from 'playwright-core';
import { ARTIFACTS, goto, passwordStep, relyingParty, useChromium } from '../helpers/browser.ts';
import { createTestClient, createTestUser, uniqueEmail } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { codeOf, nthMailTo } from '../helpers/sign-up.ts';
import { startSmtpServer, type ReceivedMail, type TestSmtpServer } from '../helpers/smtp.ts';

/**
 * Self-registration in Chromium against a real SMTP server (issue 12): sign up → the mail → its
 * code → signed in at the relying party with a verified address; the verification of an older
 * account at sign-in and an address change on the account page. Keeps a screenshot of every new
 * page and of each mail's HTML in test-artifacts/screens/sign-up/ and checks that every form
 * control has a label.
 */
describe('browser: sign-up, email verification and address change (Chromium)', function () {
  this.timeout(90_000);
  const chromium = useChromium();
  let smtp: TestSmtpServer;
  let servers: TestServers;
  const dir = new URL('screens/sign-up/', ARTIFACTS);
  const password = 'correct horse battery staple 12';

  before(async function () {
    smtp = await startSmtpServer();
    servers = await startTestServers({
      issuerHost: 'localhost',
      env: { MAIL_URL: smtp.url, MAIL_FROM: 'Portcullis <no-reply@example.test>', SELF_REGISTRATION: 'true' },
    });
    await mkdir(dir, { recursive: true });
  });

  after(async function () {
    await servers.stop();
    await smtp.close();
  });

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: new URL(`${name}.png`, dir).pathname, fullPage: true });
    const unlabeled = await page.$$eval('input:not([type=hidden]), select, textarea', (elements) =>
      elements
        .filter((e) => !(e as HTMLElement).hidden && (e as HTMLElement).offsetParent !== null)
        .filter((e) => {
          const id = e.getAttribute('id');
          return !(id && document.querySelector(`label[for="${id}"]`)) && !e.getAttribute('aria-label') && !e.closest('label');
        })
        .map((e) => e.outerHTML),
    );
    expect(unlabeled, `${name}: unlabeled controls`).to.deep.equal([]);
  }

  /** The mail's HTML part as a mail client would show it, in a page of its own. */
  async function shotMail(context: BrowserContext, mail: ReceivedMail, name: string): Promise<void> {
    const page = await context.newPage();
    await page.setViewportSize({ width: 700, height: 700 });
    await page.setContent(mail.html, { waitUntil: 'load' });
    await page.screenshot({ path: new URL(`${name}.png`, dir).pathname, fullPage: true });
    await page.close();
  }

  it('sign up → the mailed code → signed in at the RP with email_verified true', async function () {
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Notes' });
    const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const { page, context, callbacks } = await chromium.open();
    const email = uniqueEmail('chromium');

    const flow = await rp.authorizationUrl({ resource: servers.apiUrl, scope: 'openid email records:read' });
    await goto(page, flow.url.href);
    await page.getByRole('link', { name: 'Create an account' }).waitFor();
    await shot(page, '01-login-with-create-account');

    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    await shot(page, '02-sign-up');

    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill('password');
    await page.getByLabel('Password again').fill('password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).to.include('most common passwords');
    await shot(page, '03-sign-up-weak-password');

    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Password again').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await shot(page, '04-check-your-email');

    await page.getByLabel('6-digit code').fill('000000');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('alert').waitFor();
    await shot(page, '05-wrong-code');

    const mail = await smtp.waitForMailTo(email);
    await shotMail(context, mail, '06-mail-sign-up-code');
    await page.getByLabel('6-digit code').fill(codeOf(mail));
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => !url.href.startsWith(servers.issuer)).catch(() => undefined);
    const callback = callbacks.at(-1);
    if (!callback) throw new Error('the browser never came back to the RP');
    const { claims } = await exchangeWithResource(rp, callback, flow);
    expect(claims).to.include({ email, email_verified: true });
  });

  async function exchangeWithResource(
    rp: Awaited<ReturnType<typeof relyingParty>>,
    callback: URL,
    flow: { verifier: string; state: string },
  ) {
    const client = await import('openid-client');
    const tokens = await client.authorizationCodeGrant(
      rp.rp,
      callback,
      { pkceCodeVerifier: flow.verifier, expectedState: flow.state, idTokenExpected: true },
      { resource: servers.apiUrl },
    );
    return { claims: tokens.claims() as Record<string, unknown> };
  }

  it('the notice to an address that has an account, and the page of a link opened in another browser', async function () {
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Notes' });
    const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const owner = await createTestUser(servers.deps);
    const { page, context } = await chromium.open();
    const flow = await rp.authorizationUrl();
    await goto(page, flow.url.href);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(owner.email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Password again').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await shotMail(context, await smtp.waitForMailTo(owner.email), '07-mail-account-exists');

    // A code mail's link opened in another browser.
    const other = uniqueEmail('elsewhere');
    await page.goto(flow.url.href);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(other);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Password again').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    const link = (await smtp.waitForMailTo(other)).link ?? '';
    const elsewhere = await chromium.browser.newContext();
    try {
      const second = await elsewhere.newPage();
      await second.goto(link);
      await second.getByRole('heading', { name: 'Open this link where you started' }).waitFor();
      await shot(second, '08-link-in-another-browser');
    } finally {
      await elsewhere.close();
    }
    // In the browser that asked, the link fills the code in.
    await page.goto(link);
    expect(await page.getByLabel('6-digit code').inputValue()).to.match(/^\d{6}$/);
    await shot(page, '09-link-fills-the-code');
  });

  it('an unverified account verifies its address at sign-in', async function () {
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Notes' });
    const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const user = await createTestUser(servers.deps);
    const { page, context, callbacks } = await chromium.open();
    const flow = await rp.authorizationUrl();
    await goto(page, flow.url.href);
    await passwordStep(page, user.email, user.password);
    await page.getByRole('heading', { name: 'Verify your email address' }).waitFor();
    await shot(page, '10-verify-at-sign-in');
    const mail = await smtp.waitForMailTo(user.email);
    await shotMail(context, mail, '11-mail-verify-code');
    await page.getByLabel('6-digit code').fill(codeOf(mail));
    await page.getByRole('button', { name: 'Verify and continue' }).click();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => !url.href.startsWith(servers.issuer)).catch(() => undefined);
    expect(callbacks.at(-1)?.searchParams.get('code')).to.be.a('string');
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email_verified: true });
  });

  it('changes the address from the account page; the old address is told', async function () {
    const user = await createTestUser(servers.deps);
    await servers.deps.stores.users.markEmailVerified(user.id);
    const { page, context } = await chromium.open();
    await goto(page, `${servers.issuer}/account`);
    await passwordStep(page, user.email, user.password);
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await page.getByRole('heading', { name: /Email address/ }).scrollIntoViewIfNeeded();
    await shot(page, '12-account-email-panel');
    const newEmail = uniqueEmail('moved');
    await page.getByLabel('New email address').fill(newEmail);
    await page.getByRole('button', { name: 'Change email address' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await shot(page, '13-confirm-new-address');
    const mail = await smtp.waitForMailTo(newEmail);
    await shotMail(context, mail, '14-mail-change-code');
    await page.getByLabel('6-digit code').fill(codeOf(mail));
    await page.getByRole('button', { name: 'Confirm new address' }).click();
    await page.getByText('Your email address was changed.').waitFor();
    await shot(page, '15-address-changed');
    await shotMail(context, await nthMailTo(smtp, user.email, 1), '16-mail-address-changed');
    expect(await servers.deps.stores.users.findById(user.id)).to.include({ email: newEmail, email_verified: true });
  });
});
