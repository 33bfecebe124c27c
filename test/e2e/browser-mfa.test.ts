import { expect } from 'chai';
import { generate } from 'otplib';
import { ACR } from '../../src/services/mfa-policy.ts';
import {
  addVirtualAuthenticator,
  goto,
  passwordStep,
  relyingParty,
  useChromium,
  waitForCallback,
  type BrowserSession,
} from '../helpers/browser.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Second factors and passkeys in real headless Chromium against the running servers, with the
 * DevTools virtual authenticator standing in for a phone or security key.
 */
describe('browser: MFA and passkeys (Chromium)', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  const fresh = chromium.open;
  let servers: TestServers;
  let rp: Awaited<ReturnType<typeof relyingParty>>;

  before(async function () {
    servers = await startTestServers({ issuerHost: 'localhost' });
    const registered = await createTestClient(servers.deps, { client_name: 'Acme Notes' });
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
  });

  after(async function () {
    await servers.stop();
  });

  /**
   * Allows consent (`consent`: the session holds no grant for the client yet, so the page asks)
   * and waits for the RP callback; returns the ID token claims.
   */
  async function finishAtRp(s: BrowserSession, flow: { verifier: string; state: string }, { consent }: { consent: boolean }) {
    const before = s.callbacks.length;
    if (consent) await s.page.getByRole('button', { name: 'Allow' }).click();
    const callback = await waitForCallback(s, before + 1);
    // The browser then fails to reach the made-up RP host (chrome-error://): let that land before the next goto.
    await s.page.waitForURL((url) => !url.href.startsWith(servers.issuer), { timeout: 5000 });
    await s.page.waitForLoadState();
    return rp.exchange(callback, flow.verifier, flow.state);
  }

  /** Signs in to the account page (it is a client of the provider, like any other). */
  async function accountSignIn(s: BrowserSession, email: string, password: string): Promise<void> {
    await goto(s.page, `${servers.issuer}/account`);
    await passwordStep(s.page, email, password);
    await s.page.waitForURL(`${servers.issuer}/account`);
  }

  const code = (secret: string, offsetSteps = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSteps * 30 });

  async function enrollTotpOnAccountPage(s: BrowserSession): Promise<{ secret: string; recoveryCodes: string[] }> {
    await s.page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const secret = ((await s.page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    await s.page.getByLabel('Enter the 6-digit code the app shows').fill(await code(secret));
    await s.page.getByRole('button', { name: 'Verify and turn on' }).click();
    await s.page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    const recoveryCodes = await s.page.locator('.codes code').allTextContents();
    return { secret, recoveryCodes };
  }

  it('password login for a user without second factors (amr pwd, acr loa:1)', async function () {
    const user = await createTestUser(servers.deps);
    const s = await fresh();
    const flow = await rp.authorizationUrl();
    await goto(s.page, flow.url.href);
    await s.page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    await passwordStep(s.page, user.email, user.password);
    const claims = await finishAtRp(s, flow, { consent: true });
    expect(claims.amr).to.deep.equal(['pwd']);
    expect(claims.acr).to.equal(ACR.password);
  });

  it('TOTP: enrollment on the account page, then login with a computed code; wrong and replayed codes rejected (T35)', async function () {
    const user = await createTestUser(servers.deps);
    let s = await fresh();
    await accountSignIn(s, user.email, user.password);
    const { secret, recoveryCodes } = await enrollTotpOnAccountPage(s);
    expect(recoveryCodes).to.have.length(10);
    await s.context.close();

    s = await fresh();
    const flow = await rp.authorizationUrl();
    await goto(s.page, flow.url.href);
    await passwordStep(s.page, user.email, user.password);
    await s.page.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
    await s.page.getByLabel('Code from your authenticator app').fill((await code(secret)) === '123456' ? '654321' : '123456');
    await s.page.getByRole('button', { name: 'Verify' }).click();
    expect(await s.page.getByRole('alert').textContent()).to.contain('That code did not work');
    // The enrollment used the current step; the next step's code is within the ±1 window.
    const valid = await code(secret, 1);
    await s.page.getByLabel('Code from your authenticator app').fill(valid);
    await s.page.getByRole('button', { name: 'Verify' }).click();
    const claims = await finishAtRp(s, flow, { consent: true });
    expect(claims.amr).to.have.members(['pwd', 'otp', 'mfa']);
    expect(claims.acr).to.equal(ACR.mfa);
    await s.context.close();

    // The same code again, in its step, from another browser: rejected like a wrong one.
    s = await fresh();
    const again = await rp.authorizationUrl();
    await goto(s.page, again.url.href);
    await passwordStep(s.page, user.email, user.password);
    await s.page.getByLabel('Code from your authenticator app').fill(valid);
    await s.page.getByRole('button', { name: 'Verify' }).click();
    expect(await s.page.getByRole('alert').textContent()).to.contain('That code did not work');
    expect(s.callbacks).to.have.length(0);
  });

  it('recovery code login works once', async function () {
    const user = await createTestUser(servers.deps);
    let s = await fresh();
    await accountSignIn(s, user.email, user.password);
    const { recoveryCodes } = await enrollTotpOnAccountPage(s);
    await s.context.close();
    const recoveryCode = recoveryCodes[0] ?? '';

    s = await fresh();
    const flow = await rp.authorizationUrl();
    await goto(s.page, flow.url.href);
    await passwordStep(s.page, user.email, user.password);
    await s.page.getByRole('link', { name: 'Recovery code' }).click();
    await s.page.getByLabel('Recovery code').fill(recoveryCode.toLowerCase());
    await s.page.getByRole('button', { name: 'Use recovery code' }).click();
    const claims = await finishAtRp(s, flow, { consent: true });
    expect(claims.acr).to.equal(ACR.mfa);
    await s.context.close();

    s = await fresh();
    const again = await rp.authorizationUrl();
    await goto(s.page, again.url.href);
    await passwordStep(s.page, user.email, user.password);
    await s.page.getByRole('link', { name: 'Recovery code' }).click();
    await s.page.getByLabel('Recovery code').fill(recoveryCode);
    await s.page.getByRole('button', { name: 'Use recovery code' }).click();
    expect(await s.page.getByRole('alert').textContent()).to.contain('did not work');
  });

  it('passkey: registration on the account page, passwordless sign-in, and use as second factor', async function () {
    const user = await createTestUser(servers.deps);
    const s = await fresh();
    const authenticator = await addVirtualAuthenticator(s.page);
    await accountSignIn(s, user.email, user.password);
    await s.page.getByLabel('Name for a new passkey').fill('Laptop');
    await s.page.getByRole('button', { name: 'Add a passkey' }).click();
    await s.page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    await s.page.getByRole('link', { name: 'Back to your account' }).click();
    expect(await s.page.locator('.items strong').first().textContent()).to.equal('Laptop');

    // Passwordless: prompt=login shows the login page although a session exists. Chromium
    // offers the passkey through conditional UI at once (the virtual authenticator approves
    // immediately); otherwise the button starts the same ceremony.
    const flow = await rp.authorizationUrl({ prompt: 'login' });
    await goto(s.page, flow.url.href);
    const before = s.callbacks.length;
    const button = s.page.getByRole('button', { name: 'Sign in with a passkey' });
    const left = await button.waitFor({ state: 'detached', timeout: 3000 }).then(
      () => true,
      () => false,
    );
    if (!left) await button.click();
    const claims = await finishAtRp(s, flow, { consent: true });
    expect(s.callbacks.length).to.equal(before + 1);
    expect(claims.acr).to.equal(ACR.passkey);
    expect(claims.amr).to.include.members(['user', 'mfa']);
    expect(claims.amr).to.not.include('pwd');

    // Second factor after the password (presence off meanwhile, so autofill waits).
    await authenticator.cdp.send('WebAuthn.setAutomaticPresenceSimulation', {
      authenticatorId: authenticator.authenticatorId,
      enabled: false,
    });
    const second = await rp.authorizationUrl({ prompt: 'login' });
    await goto(s.page, second.url.href);
    await passwordStep(s.page, user.email, user.password);
    await s.page.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
    await authenticator.cdp.send('WebAuthn.setAutomaticPresenceSimulation', {
      authenticatorId: authenticator.authenticatorId,
      enabled: true,
    });
    await s.page.getByRole('button', { name: 'Use passkey' }).click();
    const claims2 = await finishAtRp(s, second, { consent: false });
    // The virtual authenticator verifies the user: a passkey assertion with UV is loa:passkey,
    // after a password too (presence alone would be loa:2).
    expect(claims2.acr).to.equal(ACR.passkey);
    expect(claims2.amr).to.include.members(['pwd', 'user', 'mfa']);
    // Chromium's virtual authenticator makes credentials that are not backup eligible: a
    // single-device key, "hwk" (RFC 8176; a synced passkey would be "swk").
    expect(claims2.amr).to.include('hwk').and.not.include('swk');
  });

  it('an admin without a second factor is taken through enrollment before the login completes', async function () {
    const admin = await createTestUser(servers.deps, { roles: ['admin'] });
    const s = await fresh();
    const flow = await rp.authorizationUrl();
    await goto(s.page, flow.url.href);
    await passwordStep(s.page, admin.email, admin.password);
    await s.page.getByRole('heading', { name: 'Set up two-step sign-in' }).waitFor();
    expect(s.callbacks).to.have.length(0);
    const secret = ((await s.page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    await s.page.getByLabel('Enter the 6-digit code the app shows').fill(await code(secret));
    await s.page.getByRole('button', { name: 'Verify and turn on' }).click();
    await s.page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    await s.page.getByRole('button', { name: 'Continue' }).click();
    const claims = await finishAtRp(s, flow, { consent: true });
    expect(claims.acr).to.equal(ACR.mfa);
    expect(claims.amr).to.include.members(['pwd', 'otp', 'mfa']);
  });

  it('acr_values=loa:2 steps a password session up by asking only for the second factor', async function () {
    const user = await createTestUser(servers.deps);
    const s = await fresh();
    const first = await rp.authorizationUrl();
    await goto(s.page, first.url.href);
    await passwordStep(s.page, user.email, user.password);
    expect((await finishAtRp(s, first, { consent: true })).acr).to.equal(ACR.password);

    // The user turns on TOTP meanwhile (their session is still loa:1)…
    await goto(s.page, `${servers.issuer}/account`);
    const { secret } = await enrollTotpOnAccountPage(s);
    // …and the application asks for MFA: no password form, only the code.
    const stepUp = await rp.authorizationUrl({ acr_values: ACR.mfa });
    await goto(s.page, stepUp.url.href);
    await s.page.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
    expect(await s.page.getByLabel('Password', { exact: true }).count()).to.equal(0);
    await s.page.getByLabel('Code from your authenticator app').fill(await code(secret, 1));
    await s.page.getByRole('button', { name: 'Verify' }).click();
    const claims = await finishAtRp(s, stepUp, { consent: false });
    expect(claims.acr).to.equal(ACR.mfa);
    expect(claims.amr).to.include.members(['pwd', 'otp', 'mfa']);
  });
});
