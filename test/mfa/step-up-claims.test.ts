import { expect } from 'chai';
import { generate } from 'otplib';
import { ACR } from '../../src/services/mfa-policy.ts';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { ageStored } from '../helpers/aging.ts';
import { waitUntil } from '../helpers/wait.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

/**
 * R13 (the review's further findings), step-up claims: after a step-up the ID token said
 * auth_time = the step-up, with amr ["pwd", "otp", "mfa"], as if the password had been typed
 * then; it was typed at the earlier sign-in. OIDC Core §2: auth_time is "the time when the
 * End-User authentication occurred", amr the methods "used in the authentication". A step-up
 * completes the session's sign-in rather than starting a new one, so the token keeps that
 * sign-in's auth_time, and its amr/acr describe everything that sign-in has passed
 * (docs/mfa.md, "Step-up"). A relying party asking for a recent sign-in (max_age) gets a full one.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13: what the ID token says after a step-up (${storage})`, function () {
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

    it('R13 step-up with the app code: auth_time stays at the password sign-in, amr and acr describe password and code', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = await rp.authorizationUrl();
      const signedIn = await rp.exchange(await signIn(browser, first.url, user), first.verifier, first.state);
      expect(signedIn.acr).to.equal(ACR.password);
      expect(signedIn.amr).to.deep.equal(['pwd']);
      expect(signedIn.auth_time).to.be.greaterThan(0);
      // The password sign-in moves 5 s into the past (auth_time is whole seconds): a step-up that
      // dated the sign-in anew would show a later one.
      await ageStored(servers.deps.oidcAdapter('Session'), browser.sessionId, 5);
      const signedInAt = (signedIn.auth_time ?? 0) - 5;

      // The app is set up elsewhere meanwhile; the session signed in with the password alone.
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(
        await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret, epoch: now() - 30 }), 'test'),
      ).to.equal(true);

      const stepUp = await rp.authorizationUrl({ acr_values: ACR.mfa });
      const challenge = await browser.follow(stepUp.url);
      const html = await challenge.response.text();
      expect(html).to.contain('Code from your authenticator app');
      const form = formOf(html, '/mfa/totp');
      const { url } = await browser.submit(form.action, {
        csrf: form.csrf,
        code: await generate({ secret: enrollment.secret, epoch: now() + 30 }),
      });
      const claims = await rp.exchange(url, stepUp.verifier, stepUp.state);
      expect(claims.acr).to.equal(ACR.mfa);
      expect(claims.amr).to.have.members(['pwd', 'otp', 'mfa']);
      expect(claims.auth_time, 'the password was typed at the first sign-in').to.equal(signedInAt);

      // A recent sign-in is asked for with max_age: that is a full one, with a new auth_time.
      const fresh = await rp.authorizationUrl({ max_age: '0' });
      const page = await browser.follow(fresh.url);
      expect(await page.response.text()).to.contain('name="password"');
    });

    it('R13 step-up with max_age: a step-up that would end with an auth_time older than max_age is refused, never issued', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = await rp.authorizationUrl();
      const signedIn = await rp.exchange(await signIn(browser, first.url, user), first.verifier, first.state);
      const signedInAt = signedIn.auth_time ?? 0;
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(
        await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret, epoch: now() - 30 }), 'test'),
      ).to.equal(true);

      // max_age is met when the step-up starts (the provider checks it then) …
      const maxAge = now() - signedInAt + 1;
      const stepUp = await rp.authorizationUrl({ acr_values: ACR.mfa, max_age: String(maxAge) });
      const challenge = await browser.follow(stepUp.url);
      const html = await challenge.response.text();
      expect(html).to.contain('Code from your authenticator app');
      // … but not any more when the code arrives (auth_time is whole seconds: the next one is waited for).
      await waitUntil((signedInAt + maxAge + 1) * 1000);
      const form = formOf(html, '/mfa/totp');
      const { response, url } = await browser.submit(form.action, {
        csrf: form.csrf,
        code: await generate({ secret: enrollment.secret, epoch: now() + 30 }),
      });
      expect(url.searchParams.get('code'), 'no code with a stale auth_time').to.equal(null);
      expect(response.status).to.equal(400);
      expect(await response.text()).to.contain('took longer than the application allows');
    });
  });
}
