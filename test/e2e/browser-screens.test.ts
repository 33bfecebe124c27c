import { expect } from 'chai';
import { generate } from 'otplib';
import type { Page } from 'playwright-core';
import { addVirtualAuthenticator, goto, openSession, passwordStep, relyingParty, useChromium, screenPath } from '../helpers/browser.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Walks through every MFA and account page once in Chromium and keeps a screenshot of each in
 * test-artifacts/screens/ for review; also checks that every form control has a label.
 */
describe('browser: MFA and account pages render accessibly (Chromium)', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers({ issuerHost: 'localhost' });
  });

  after(async function () {
    await servers.stop();
  });

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: await screenPath(name), fullPage: true });
    // Every visible input, select and textarea has an accessible name.
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

  it('login with passkey, MFA choice, TOTP enrollment, recovery codes and the account page', async function () {
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Notes' });
    const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const admin = await createTestUser(servers.deps, { roles: ['admin'], name: 'Grace Hopper' });
    const { page } = await chromium.open();

    const flow = await rp.authorizationUrl();
    await goto(page, flow.url.href);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    await shot(page, '01-login');

    await passwordStep(page, admin.email, admin.password);
    await page.getByRole('heading', { name: 'Set up two-step sign-in' }).waitFor();
    await shot(page, '02-enroll-totp');
    await page.getByRole('link', { name: 'Use a passkey instead' }).click();
    await page.getByRole('button', { name: 'Create a passkey' }).waitFor();
    await shot(page, '03-enroll-passkey');
    await page.getByRole('link', { name: 'Use an authenticator app instead' }).click();
    const secret = ((await page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    await page.getByLabel('Enter the 6-digit code the app shows').fill('000000');
    await page.getByRole('button', { name: 'Verify and turn on' }).click();
    await page.getByRole('alert').waitFor();
    await shot(page, '04-enroll-totp-wrong-code');
    await page.getByLabel('Enter the 6-digit code the app shows').fill(await generate({ secret }));
    await page.getByRole('button', { name: 'Verify and turn on' }).click();
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    await shot(page, '05-recovery-codes');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    await shot(page, '06-consent');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => !url.href.startsWith(servers.issuer));

    // A second sign-in asks for the factor, with the other ways offered.
    const again = await rp.authorizationUrl({ prompt: 'login' });
    await goto(page, again.url.href);
    await passwordStep(page, admin.email, admin.password);
    await page.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
    await shot(page, '07-mfa-totp');
    await page.getByRole('link', { name: 'Recovery code' }).click();
    await shot(page, '08-mfa-recovery');
    await page.getByRole('link', { name: 'Authenticator app code' }).click();
    await page.getByLabel('Code from your authenticator app').fill(await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 }));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL((url) => !url.href.startsWith(servers.issuer));

    // The account page, with a passkey added.
    const authenticator = await addVirtualAuthenticator(page);
    await goto(page, `${servers.issuer}/account`);
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await page.getByLabel('Name for a new passkey').fill('Work laptop');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await page.getByText('Passkey added.').waitFor();
    await shot(page, '09-account');
    await goto(page, `${servers.issuer}/account/totp`);
    await shot(page, '10-account-totp-already-on');

    // With a passkey enrolled, the second step offers it first (autofill held back meanwhile).
    await authenticator.cdp.send('WebAuthn.setAutomaticPresenceSimulation', {
      authenticatorId: authenticator.authenticatorId,
      enabled: false,
    });
    const third = await rp.authorizationUrl({ prompt: 'login' });
    await goto(page, third.url.href);
    await passwordStep(page, admin.email, admin.password);
    await page.getByRole('button', { name: 'Use passkey' }).waitFor();
    await shot(page, '11-mfa-passkey');

    // TOTP setup from the account page, for a user without an app.
    const plain = await createTestUser(servers.deps);
    const other = await openSession(chromium.browser);
    try {
      await goto(other.page, `${servers.issuer}/account`);
      await passwordStep(other.page, plain.email, plain.password);
      await other.page.getByRole('button', { name: 'Set up an authenticator app' }).click();
      await other.page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
      await shot(other.page, '12-account-totp-setup');
    } finally {
      await other.context.close();
    }
  });

  it('R4 the consent page for the account scopes: erasure first, boxed, its warning in words (light and dark)', async function () {
    const scope = 'openid profile records:read account:export account:erase';
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Account Tools', scope });
    const rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const user = await createTestUser(servers.deps);
    const { page } = await chromium.open();
    const flow = await rp.authorizationUrl({ scope, resource: servers.apiUrl });
    await goto(page, flow.url.href);
    await passwordStep(page, user.email, user.password);
    await page.getByRole('button', { name: 'Allow' }).waitFor();

    // What a screen reader reads, in order: the warnings are words, the dangerous items first.
    const items = (await page.locator('ul.scopes > li').allInnerTexts()).map((text) => text.replace(/\s+/g, ' ').trim());
    expect(items[0]).to.match(/^Cannot be undone\s*:?\s*Permanently delete your account and all your records account:erase$/i);
    expect(items[1]).to.match(/^All your data\s*:?\s*Download a copy of all your data/i);
    expect(items.slice(2).join(' | ')).to.include('Read your records').and.include('See your name');
    // Set apart by more than colour (a box with a thick border), and in the danger colours.
    const style = (selector: string) =>
      page
        .locator(selector)
        .first()
        .evaluate((e) => {
          const s = getComputedStyle(e);
          return { background: s.backgroundColor, border: s.borderLeftWidth, color: s.color };
        });
    const danger = await style('ul.scopes > li.scope-danger');
    const plain = await style('ul.scopes > li:not(.scope-danger)');
    expect(danger.background).to.not.equal(plain.background);
    expect(parseFloat(danger.border)).to.be.at.least(3);
    expect(danger.color).to.not.equal(plain.color);
    await shot(page, '14-consent-account-scopes');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, '15-consent-account-scopes-dark');
  });

  it('the 404 page for an unknown address', async function () {
    const session = await chromium.open();
    const response = await session.page.goto(`${servers.issuer}/no-such-page`);
    expect(response?.status()).to.equal(404);
    await session.page.getByRole('heading', { name: "This page doesn't exist" }).waitFor();
    await shot(session.page, '13-not-found');
  });
});
