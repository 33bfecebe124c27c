import { expect } from 'chai';
import { generate } from 'otplib';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { loadConfig } from '../../src/config/load.ts';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestClient } from '../helpers/factories.ts';
import { RP_REDIRECT } from '../helpers/oidc.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { startTestServers, testSettingsEnv, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { softAuthenticator, type SoftAuthenticator } from '../helpers/soft-authenticator.ts';
import { passkeyLoginPage, passkeySignIn, userWithPasskey } from '../helpers/passkeys.ts';

/** LOCKOUT_SECOND_FACTOR_MAX_FAILURES as configured (default 5). */
const MFA_MAX_FAILURES = loadConfig({ ...testSettingsEnv }).lockout.secondFactorMaxFailures;
const PASSKEY_ERROR = 'The passkey could not be used.';

/**
 * R13 (the review's further findings): a passkey answer that does not verify spent the
 * account's second-factor lockout budget. The login page's passkey path needs no password, so
 * anyone who once saw a victim's credential id (it is in every assertion the victim's browser
 * sends, and in the second-factor options after the password) could post made-up answers naming
 * it — five of them locked the victim out of their passkey and their second step for 15 minutes,
 * doubling each time, for as long as the attacker kept going; a password change did not help.
 * A signature cannot be guessed, so such answers now spend the sender's address budget
 * (LOCKOUT_PASSWORD_IP_MAX_FAILURES, an IPv6 /64 per client), never the account's; wrong codes
 * (real guesses at the account's secrets) still spend the account's budget.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13: unsigned passkey answers do not lock the account (${storage})`, function () {
    this.timeout(120_000);
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

    /** What someone without the private key sends: their own key's answer, relabelled with the victim's credential id. */
    function forged(victim: SoftAuthenticator, options: PublicKeyCredentialRequestOptionsJSON): AuthenticationResponseJSON {
      const answer = softAuthenticator({ origin: servers.issuer }).assert(options);
      return { ...answer, id: victim.credentialId, rawId: victim.credentialId };
    }

    /** Opens a sign-in request in a fresh browser at the login page's passkey form and options. */
    async function passkeyPage() {
      const browser = new Browserless(servers.issuer);
      return { browser, ...(await passkeyLoginPage(browser, (await rp.authorizationUrl()).url)) };
    }

    /** Posts a passkey answer from a chosen loopback address: 303 onwards, or 200 with the login page again. */
    async function postAnswer(page: Awaited<ReturnType<typeof passkeyPage>>, answer: AuthenticationResponseJSON, from = '127.0.0.1') {
      const action = new URL(page.login.action, servers.issuer);
      return rawRequest(servers.issuer, {
        method: 'POST',
        target: action.pathname,
        from,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer, Cookie: page.browser.jar.header(action) },
        body: new URLSearchParams({ csrf: page.login.csrf, response: JSON.stringify(answer) }).toString(),
      });
    }

    /** The owner's own passkey sign-in from a fresh browser: true when it reached the RP. */
    async function ownerSignsIn(soft: SoftAuthenticator): Promise<boolean> {
      const { url } = await passkeySignIn(new Browserless(servers.issuer), (await rp.authorizationUrl()).url, (options) =>
        soft.assert(options),
      );
      return url.href.startsWith(RP_REDIRECT);
    }

    it("R13 more unsigned passkey answers naming the victim's credential id than the second-factor budget allows leave the victim unlocked: their passkey still signs them in", async function () {
      const { user, soft } = await userWithPasskey(servers);
      expect(await ownerSignsIn(soft)).to.equal(true);
      for (let i = 0; i <= MFA_MAX_FAILURES; i++) {
        const page = await passkeyPage();
        const reply = await postAnswer(page, forged(soft, page.options));
        // Each is refused like any failed passkey (a made-up answer is never accepted).
        expect(reply.status).to.equal(200);
        expect(reply.body).to.include(PASSKEY_ERROR);
      }
      expect(await servers.deps.mfa.lockout.isLocked(user.id)).to.equal(false);
      expect(await ownerSignsIn(soft)).to.equal(true);
    });

    it('R13 a second-factor passkey answer that does not verify spends no account budget, while wrong app codes still lock the second step', async function () {
      const { user, soft } = await userWithPasskey(servers);
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test')).to.equal(true);
      const binding = `second-factor:${user.id}`;
      for (let i = 0; i <= MFA_MAX_FAILURES; i++) {
        const options = await servers.deps.mfa.webauthn.authenticationOptions({ binding, purpose: 'second-factor', userId: user.id });
        const outcome = await servers.deps.mfa.verifyWebAuthn(user.id, binding, forged(soft, options), { ip: '127.0.0.1' });
        expect(outcome.ok).to.equal(false);
      }
      expect(await servers.deps.mfa.lockout.isLocked(user.id)).to.equal(false);
      // Real guesses at the account's secrets spend its budget as before (T35).
      const right = await generate({ secret: enrollment.secret, epoch: Math.floor(Date.now() / 1000) + 60 });
      const wrong = right === '000000' ? '111111' : '000000';
      let last;
      for (let i = 0; i < MFA_MAX_FAILURES; i++) last = await servers.deps.mfa.verifyTotp(user.id, wrong, { ip: '127.0.0.1' });
      expect(last).to.deep.equal({ ok: false, locked: true });
      expect(await servers.deps.mfa.lockout.isLocked(user.id)).to.equal(true);
    });

    it("R13 unsigned passkey answers spend the sender's address budget: once it is spent that address signs in with no passkey, another address still does", async function () {
      const limited = await startTestServers({ storage, env: { LOCKOUT_PASSWORD_IP_MAX_FAILURES: '3' } });
      const saved = { servers, rp };
      try {
        servers = limited;
        const registered = await createTestClient(limited.deps);
        rp = await relyingParty(limited.issuer, registered.client_id, registered.client_secret);
        const { soft } = await userWithPasskey(servers);
        for (let i = 0; i < 3; i++) {
          const page = await passkeyPage();
          expect((await postAnswer(page, forged(soft, page.options), '127.0.0.4')).body).to.include(PASSKEY_ERROR);
        }
        // The owner's genuine answer from that address is refused before it is checked…
        const fromSpent = await passkeyPage();
        const refused = await postAnswer(fromSpent, soft.assert(fromSpent.options), '127.0.0.4');
        expect(refused.status).to.equal(200);
        expect(refused.body).to.include(PASSKEY_ERROR);
        // …and from another address it signs in (on to the provider).
        const elsewhere = await passkeyPage();
        expect((await postAnswer(elsewhere, soft.assert(elsewhere.options), '127.0.0.5')).status).to.equal(303);
      } finally {
        ({ servers, rp } = saved);
        await limited.stop();
      }
    });
  });
}
