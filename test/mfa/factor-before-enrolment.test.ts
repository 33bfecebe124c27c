import { expect } from 'chai';
import { generate } from 'otplib';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { ACR } from '../../src/services/mfa-policy.ts';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf, passkeyOptionsOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { creationOptionsOf, requestOptionsOf, softAuthenticator } from '../helpers/soft-authenticator.ts';

/**
 * R1 (issue 19): a user who has any second factor passes one of them before any new factor is
 * enrolled — at sign-in, on step-up and on the account page. Request sequences over HTTP with
 * real cookies; passkeys come from a software authenticator (test/helpers/soft-authenticator.ts).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R1: a second factor before any new factor (${storage})`, function () {
    let servers: TestServers;
    let rp: Awaited<ReturnType<typeof relyingParty>>;

    before(async function () {
      servers = await startTestServers({ storage });
      const registered = await createTestClient(servers.deps);
      rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    });

    after(async function () {
      await servers.stop();
    });

    const now = () => Math.floor(Date.now() / 1000);

    /** Turns TOTP on for `userId` with a code of the previous step, so this step and the next are free. */
    async function turnOnTotp(userId: string, email: string): Promise<string> {
      const enrollment = await servers.deps.mfa.totp.begin(userId, email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(
        await servers.deps.mfa.totp.confirm(userId, await generate({ secret: enrollment.secret, epoch: now() - 30 }), 'test'),
      ).to.equal(true);
      return enrollment.secret;
    }

    async function userWithTotp() {
      const user = await createTestUser(servers.deps);
      return { ...user, secret: await turnOnTotp(user.id, user.email) };
    }

    const uidOf = (url: URL): string => url.pathname.split('/')[2] ?? '';

    /** The password step of a new authorization request; the page after it. */
    async function afterPassword(email: string, password: string, extra: Record<string, string> = {}) {
      const browser = new Browserless(servers.issuer);
      const flow = await rp.authorizationUrl(extra);
      const first = await browser.follow(flow.url);
      const login = formOf(await first.response.text(), '/login');
      const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email, password });
      return { browser, flow, html: await response.text(), url, uid: uidOf(url), csrf: login.csrf };
    }

    /** What an attacker holding only the password (or only the cookie) tries on the interaction. */
    async function shortcutsRefused(browser: Browserless, uid: string, csrf: string, userId: string): Promise<void> {
      const forged = softAuthenticator({ origin: servers.issuer }).register({
        challenge: 'not-issued',
        rp: { name: 'Portcullis', id: new URL(servers.issuer).hostname },
        user: { id: 'AAAA', name: 'x', displayName: 'x' },
        pubKeyCredParams: [{ alg: -7, type: 'public-key' }],
      });
      for (const [step, fields] of [
        ['enroll/webauthn', { response: JSON.stringify(forged), name: 'mine' }],
        ['enroll/totp', { code: '123456' }],
        ['continue', {}],
      ] as const) {
        const { response } = await browser.submit(`/interaction/${uid}/${step}`, { csrf, ...fields });
        expect(response.status, step).to.equal(400);
      }
      const other = await browser.follow(`/interaction/${uid}?method=webauthn`);
      expect(await other.response.text()).to.not.contain('Set up two-step sign-in');
      expect(await servers.deps.mfa.webauthn.list(userId)).to.have.length(0);
      expect(await servers.deps.mfa.recovery.remaining(userId)).to.equal(0);
    }

    /** Submits a form of the current page whose action ends in `suffix`. */
    async function submitForm(browser: Browserless, html: string, suffix: string, fields: Record<string, string> = {}) {
      const form = formOf(html, suffix);
      const { response, url } = await browser.submit(form.action, { csrf: form.csrf, ...fields });
      return { html: await response.text(), url, status: response.status };
    }

    /**
     * From the TOTP challenge of a passkey-level request to the RP: code, passkey enrolment,
     * recovery codes, then an assertion with the new passkey; returns the ID token claims.
     */
    async function totpThenPasskey(browser: Browserless, page: string, secret: string, flow: { verifier: string; state: string }) {
      const soft = softAuthenticator({ origin: servers.issuer });
      let step = await submitForm(browser, page, '/mfa/totp', { code: await generate({ secret, epoch: now() + 30 }) });
      expect(step.html).to.contain('Create a passkey');
      step = await submitForm(browser, step.html, '/enroll/webauthn', {
        response: JSON.stringify(soft.register(creationOptionsOf(step.html))),
        name: 'Soft key',
      });
      expect(step.html).to.contain('Save your recovery codes');
      step = await submitForm(browser, step.html, '/continue');
      // Enrolling is not signing in with the passkey: the passkey itself is asked for, with user verification.
      expect(step.url.origin).to.equal(servers.issuer);
      const options = requestOptionsOf(step.html);
      expect(options.userVerification).to.equal('required');
      const presenceOnly = await submitForm(browser, step.html, '/mfa/webauthn', {
        response: JSON.stringify(soft.assert(options, { userVerified: false })),
      });
      expect(presenceOnly.html).to.contain('The passkey could not be used');
      step = await submitForm(browser, presenceOnly.html, '/mfa/webauthn', {
        response: JSON.stringify(soft.assert(requestOptionsOf(presenceOnly.html))),
      });
      if (step.url.origin === servers.issuer) step = await submitForm(browser, step.html, '/confirm');
      expect(step.url.href.startsWith(RP_REDIRECT)).to.equal(true);
      return rp.exchange(step.url, flow.verifier, flow.state);
    }

    it('R1 sign-in: a passkey-level request from a TOTP-only user meets the TOTP challenge after the password, never passkey enrolment', async function () {
      const user = await userWithTotp();
      const { browser, html, uid, csrf } = await afterPassword(user.email, user.password, { acr_values: ACR.passkey });
      expect(html).to.contain('Code from your authenticator app');
      expect(html).to.not.contain('Set up two-step sign-in');
      await shortcutsRefused(browser, uid, csrf, user.id);
    });

    it('R1 sign-in: after the TOTP code a passkey is enrolled and then used; only that assertion makes the ID token loa:passkey', async function () {
      const user = await userWithTotp();
      const { browser, html, flow } = await afterPassword(user.email, user.password, { acr_values: ACR.passkey });
      const claims = await totpThenPasskey(browser, html, user.secret, flow);
      expect(claims.acr).to.equal(ACR.passkey);
      expect(claims.amr).to.have.members(['pwd', 'otp', 'hwk', 'user', 'mfa']);
      expect(await servers.deps.mfa.webauthn.list(user.id)).to.have.length(1);
    });

    it('R1 step-up: a session from a password-only sign-in gets the TOTP challenge, and cannot enrol a passkey or get recovery codes with the cookie alone', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = await rp.authorizationUrl();
      expect((await rp.exchange(await signIn(browser, first.url, user), first.verifier, first.state)).acr).to.equal(ACR.password);
      // TOTP is turned on meanwhile (on another device): this session never passed it.
      const secret = await turnOnTotp(user.id, user.email);
      const stepUp = await rp.authorizationUrl({ acr_values: ACR.passkey });
      const { response, url } = await browser.follow(stepUp.url);
      const html = await response.text();
      expect(html).to.contain('Code from your authenticator app');
      expect(html).to.not.contain('name="password"');
      await shortcutsRefused(browser, uidOf(url), formOf(html, '/mfa/totp').csrf, user.id);
      // The way through: the code first, then the passkey.
      const claims = await totpThenPasskey(browser, html, secret, stepUp);
      expect(claims.acr).to.equal(ACR.passkey);
    });

    it('R1 step-up: a user without factors enrols one only after a recent sign-in; an older session is asked for the password first', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = await rp.authorizationUrl();
      await signIn(browser, first.url, user);
      const sessions = servers.deps.oidcAdapter('Session');
      const sessionId = browser.sessionId;
      const stored = (await sessions.find(sessionId)) as { loginTs: number; exp: number } & Record<string, unknown>;
      await sessions.upsert(sessionId, { ...stored, loginTs: stored.loginTs - servers.config.ttl.recentAuth - 60 }, stored.exp - now());
      const stepUp = await rp.authorizationUrl({ acr_values: ACR.mfa });
      const { response, url } = await browser.follow(stepUp.url);
      const html = await response.text();
      expect(html).to.contain('name="password"');
      expect(html).to.not.contain('Set up two-step sign-in');
      const refused = await browser.submit(`/interaction/${uidOf(url)}/enroll/totp`, { csrf: formOf(html, '/login').csrf, code: '123456' });
      expect(refused.response.status).to.equal(400);
      const afterLogin = await submitForm(browser, html, '/login', { email: user.email, password: user.password });
      expect(afterLogin.html).to.contain('Set up two-step sign-in');
    });

    it('R1 account page: a session that signed in with the password alone cannot add or remove factors or create recovery codes once the user has one', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const start = await browser.follow('/account');
      const signedIn = await submitForm(browser, await start.response.text(), '/login', { email: user.email, password: user.password });
      expect(signedIn.url.pathname).to.equal('/account');
      // The first factor needs no earlier one: the app is set up in this password-only session.
      const setup = (await submitForm(browser, signedIn.html, '/account/totp/begin', {})).html;
      const secret = (/id="totp-secret">([^<]+)</.exec(setup)?.[1] ?? '').replace(/\s/g, '');
      const enrolled = await submitForm(browser, setup, '/account/totp', { code: await generate({ secret }) });
      expect(enrolled.html).to.contain('Save your recovery codes');
      const csrf = formOf(signedIn.html, '/sign-out-everywhere').csrf;

      // Everything else about sign-in methods now needs a sign-in that passed the app.
      expect(
        (
          await browser.request('/account/passkeys/options', {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
            body: new URLSearchParams({ csrf }).toString(),
          })
        ).status,
      ).to.equal(403);
      const soft = softAuthenticator({ origin: servers.issuer });
      const forged = soft.register({
        challenge: 'not-issued',
        rp: { name: 'Portcullis' },
        user: { id: 'AAAA', name: 'x', displayName: 'x' },
        pubKeyCredParams: [],
      });
      for (const [path, fields] of [
        ['/account/passkeys', { response: JSON.stringify(forged), name: 'mine' }],
        ['/account/recovery-codes', {}],
        ['/account/totp/remove', {}],
      ] as const) {
        const answer = await browser.request(path, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
          body: new URLSearchParams({ csrf, ...fields }).toString(),
        });
        expect(answer.status, path).to.equal(303);
        const location = new URL(answer.headers.get('Location') ?? '', servers.issuer);
        expect([location.pathname, location.searchParams.get('prompt')], path).to.deep.equal(['/auth', 'login']);
      }
      expect((await browser.request('/account/totp')).status).to.equal(303);
      expect(await servers.deps.mfa.totp.enabled(user.id)).to.equal(true);
      expect(await servers.deps.mfa.webauthn.list(user.id)).to.have.length(0);

      // Signing in again asks for the app; then the same changes go through.
      // The link on one of our own pages (R14: only a same-origin request starts a re-authentication).
      const again = await browser.follow('/account/login?reauth=1', { headers: { 'Sec-Fetch-Site': 'same-origin' } });
      const challenge = await submitForm(browser, await again.response.text(), '/login', { email: user.email, password: user.password });
      expect(challenge.html).to.contain('Code from your authenticator app');
      const back = await submitForm(browser, challenge.html, '/mfa/totp', { code: await generate({ secret, epoch: now() + 30 }) });
      expect(back.url.pathname).to.equal('/account');
      const options = await passkeyOptionsOf<PublicKeyCredentialCreationOptionsJSON>(
        browser,
        '/account/passkeys/options',
        formOf(back.html, '/account/passkeys').csrf,
      );
      const added = await submitForm(browser, back.html, '/account/passkeys', {
        response: JSON.stringify(soft.register(options)),
        name: 'Soft key',
      });
      expect(added.url.searchParams.get('notice')).to.equal('passkey-added');
      expect(await servers.deps.mfa.webauthn.list(user.id)).to.have.length(1);
      const codes = await submitForm(browser, back.html, '/account/recovery-codes');
      expect(codes.html).to.contain('Save your recovery codes');
    });

    it('R1 account page: a password-only session cannot change the password of a user who has a second factor, even with the current one', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const start = await browser.follow('/account');
      const signedIn = await submitForm(browser, await start.response.text(), '/login', { email: user.email, password: user.password });
      await turnOnTotp(user.id, user.email);
      const form = formOf(signedIn.html, '/password');
      const fields = {
        csrf: form.csrf,
        current_password: user.password,
        new_password: 'a new long passphrase',
        confirm_password: 'a new long passphrase',
        sign_out_others: 'yes',
      };
      const answer = await browser.request(form.action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
        body: new URLSearchParams(fields).toString(),
      });
      expect(answer.status).to.equal(303);
      const location = new URL(answer.headers.get('Location') ?? '', servers.issuer);
      expect([location.pathname, location.searchParams.get('prompt')]).to.deep.equal(['/auth', 'login']);
      expect(await servers.deps.accounts.authenticate(user.email, user.password)).to.not.equal(undefined);
    });
  });
}
