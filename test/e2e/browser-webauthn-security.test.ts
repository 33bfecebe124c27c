import { createHash } from 'node:crypto';
import { expect } from 'chai';
import type { Page, Route } from 'playwright-core';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { addVirtualAuthenticator, goto, passwordStep, relyingParty, useChromium, type BrowserSession } from '../helpers/browser.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { withTimeout } from '../helpers/wait.ts';

type Captured = { csrf: string; response: string; action: string };

/**
 * T36: WebAuthn assertions that must be refused. Real assertions come from Chromium's virtual
 * authenticator; each is then replayed, moved or tampered with, through the login page and
 * directly against the service (with the original challenge put back, so exactly one check
 * fails at a time).
 */
describe('browser: WebAuthn negative tests (T36)', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  let servers: TestServers;
  let rp: Awaited<ReturnType<typeof relyingParty>>;

  before(async function () {
    servers = await startTestServers({ issuerHost: 'localhost' });
    const registered = await createTestClient(servers.deps);
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
  });

  after(async function () {
    await servers.stop();
  });

  /** A user with one passkey, registered on the account page; the registration POST is kept. */
  async function userWithPasskey(s: BrowserSession) {
    const user = await createTestUser(servers.deps);
    const authenticator = await addVirtualAuthenticator(s.page);
    await goto(s.page, `${servers.issuer}/account`);
    await passwordStep(s.page, user.email, user.password);
    await s.page.waitForURL(`${servers.issuer}/account`);
    const registration = capture(s.page, '**/account/passkeys');
    await s.page.getByRole('button', { name: 'Add a passkey' }).click();
    const reg = await registration;
    await s.page.request.post(`${servers.issuer}/account/passkeys`, {
      form: { csrf: reg.csrf, response: reg.response, name: 'Key' },
      headers: { Origin: servers.issuer },
    });
    return { user, authenticator, registration: reg };
  }

  /** Holds back the next form POST matching `pattern` and returns its fields. */
  function capture(page: Page, pattern: string): Promise<Captured> {
    let taken = false;
    return new Promise((resolve) => {
      void page.route(pattern, async (route: Route) => {
        // One capture per call; later requests go on to the next handler (or the network).
        if (taken || route.request().method() !== 'POST') return route.fallback();
        taken = true;
        const form = new URLSearchParams(route.request().postData() ?? '');
        await route.abort();
        resolve({ csrf: form.get('csrf') ?? '', response: form.get('response') ?? '', action: route.request().url() });
      });
    });
  }

  /** An assertion from the login page's passkey sign-in (conditional UI answers at once). */
  async function passkeyAssertion(s: BrowserSession): Promise<Captured> {
    const flow = await rp.authorizationUrl({ prompt: 'login' });
    const captured = capture(s.page, '**/passkey');
    await goto(s.page, flow.url.href);
    // Conditional UI (passkeys in the email field's autofill) answers by itself with the virtual
    // authenticator; pressing the button as well would start a second ceremony with a fresh challenge.
    return withTimeout(captured, 15_000, 'the login page did not post a passkey assertion (conditional UI)');
  }

  const post = (s: BrowserSession, c: Captured, response = c.response) =>
    s.page.request.post(c.action, { form: { csrf: c.csrf, response }, headers: { Origin: servers.issuer }, maxRedirects: 0 });

  const challengeOf = (response: AuthenticationResponseJSON | RegistrationResponseJSON): string =>
    (JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString()) as { challenge: string }).challenge;

  function tamperClientData(response: AuthenticationResponseJSON, change: Record<string, unknown>): AuthenticationResponseJSON {
    const data = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString()) as Record<string, unknown>;
    return {
      ...response,
      response: { ...response.response, clientDataJSON: Buffer.from(JSON.stringify({ ...data, ...change })).toString('base64url') },
    };
  }

  function tamperAuthData(response: AuthenticationResponseJSON, edit: (data: Buffer) => void): AuthenticationResponseJSON {
    const data = Buffer.from(response.response.authenticatorData, 'base64url');
    edit(data);
    return { ...response, response: { ...response.response, authenticatorData: data.toString('base64url') } };
  }

  it('(c) an assertion made for another interaction and (d) a replayed assertion are refused', async function () {
    const s = await chromium.open();
    await userWithPasskey(s);
    const a = await passkeyAssertion(s);
    const b = await passkeyAssertion(s);
    // A's answer posted into B's interaction: B's challenge does not match.
    const moved = await post(s, b, a.response);
    expect(moved.status()).to.equal(200);
    expect(await moved.text()).to.contain('The passkey could not be used');
    // A's answer in A: accepted once…
    const accepted = await post(s, a);
    expect(accepted.status()).to.equal(303);
    // …and never again (the challenge was single use): the login page again, as for B above.
    const replayed = await post(s, a);
    expect(replayed.status()).to.equal(200);
    expect(await replayed.text()).to.contain('The passkey could not be used');
    expect(replayed.headers().location).to.equal(undefined);
  });

  it('(a) origin, (b) RP ID hash, (e) type, (f) UP=0 and (g) UV=0 are each refused by the verifier', async function () {
    const s = await chromium.open();
    await userWithPasskey(s);
    const captured = await passkeyAssertion(s);
    const original = JSON.parse(captured.response) as AuthenticationResponseJSON;
    const store = servers.deps.mfa.webauthn;
    // The captured assertion was never posted, so its challenge (sealed for its sign-in request,
    // never stored) is still unused: each attempt differs from it only by the tampering.
    const binding = new URL(captured.action).pathname.split('/')[2] ?? '';
    const attempt = (response: AuthenticationResponseJSON) => store.verifyAuthentication({ binding, purpose: 'passwordless', response });
    const rpIdHash = (data: Buffer) => createHash('sha256').update('evil.test').digest().copy(data, 0);
    expect((await attempt(tamperClientData(original, { origin: 'https://evil.test' }))).ok, 'origin').to.equal(false);
    expect((await attempt(tamperAuthData(original, rpIdHash))).ok, 'rpIdHash').to.equal(false);
    expect((await attempt(tamperClientData(original, { type: 'webauthn.create' }))).ok, 'type').to.equal(false);
    expect(
      (
        await attempt(
          tamperAuthData(original, (d) => {
            d[32] = (d[32] as number) & ~0x01;
          }),
        )
      ).ok,
      'UP',
    ).to.equal(false);
    expect(
      (
        await attempt(
          tamperAuthData(original, (d) => {
            d[32] = (d[32] as number) & ~0x04;
          }),
        )
      ).ok,
      'UV',
    ).to.equal(false);
    // The untouched assertion passes the same way, so each refusal above is the tampering's.
    expect((await attempt(original)).ok, 'control').to.equal(true);
  });

  it("(h) user B's passkey as user A's second factor is refused; a credential id cannot be registered twice", async function () {
    const s = await chromium.open();
    const { user: b, registration } = await userWithPasskey(s);
    const captured = await passkeyAssertion(s);
    const a = await createTestUser(servers.deps);
    const response = JSON.parse(captured.response) as AuthenticationResponseJSON;
    await servers.deps.knex('webauthn_challenges').insert({
      binding: servers.deps.mfaBindingKey('T36h'),
      purpose: 'second-factor',
      challenge: challengeOf(response),
      user_id: a.id,
      expires_at: new Date(Date.now() + 60_000),
    });
    const result = await servers.deps.mfa.webauthn.verifyAuthentication({
      binding: 'T36h',
      purpose: 'second-factor',
      response,
      expectedUserId: a.id,
    });
    expect(result).to.include({ ok: false, reason: 'wrong_user' });

    const regResponse = JSON.parse(registration.response) as RegistrationResponseJSON;
    await servers.deps.knex('webauthn_challenges').insert({
      binding: servers.deps.mfaBindingKey('T36dup'),
      purpose: 'register',
      challenge: challengeOf(regResponse),
      user_id: a.id,
      expires_at: new Date(Date.now() + 60_000),
    });
    const duplicate = await servers.deps.mfa.webauthn.finishRegistration({
      binding: 'T36dup',
      userId: a.id,
      response: regResponse,
      name: 'stolen',
    });
    expect(duplicate).to.include({ ok: false, reason: 'duplicate_credential' });
    expect((await servers.deps.mfa.webauthn.list(b.id)).map((c) => c.user_id)).to.deep.equal([b.id]);
  });

  it('(i) a signature counter going backwards is refused, flags the credential and is audited', async function () {
    const s = await chromium.open();
    const { user, authenticator } = await userWithPasskey(s);
    const { cdp, authenticatorId } = authenticator;
    for (let i = 0; i < 2; i++) {
      const ok = await post(s, await passkeyAssertion(s));
      expect(ok.status()).to.equal(303);
    }
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    const credential = credentials[0];
    if (!credential) throw new Error('no credential');
    // A clone that starts over at a low counter.
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: credential.credentialId });
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...credential, signCount: 0 } });
    const cloned = await post(s, await passkeyAssertion(s));
    expect(cloned.status()).to.equal(200);
    expect(await cloned.text()).to.contain('The passkey could not be used');
    const [stored] = await servers.deps.mfa.webauthn.list(user.id);
    expect(stored?.flagged_at).to.be.instanceOf(Date);
    const events = await servers.deps.knex('audit_events').where({ actor_id: user.id, type: 'mfa.webauthn.counter_regression' });
    expect(events).to.have.length(1);
    // Flagged stays refused, even with a counter that moves forward again.
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: credential.credentialId });
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...credential, signCount: 1000 } });
    const again = await post(s, await passkeyAssertion(s));
    expect(again.status()).to.equal(200);
  });
});
