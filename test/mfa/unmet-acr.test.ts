import { expect } from 'chai';
import * as client from 'openid-client';
import { generate } from 'otplib';
import { ACR } from '../../src/services/mfa-policy.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { creationOptionsOf, requestOptionsOf, softAuthenticator } from '../helpers/soft-authenticator.ts';

type IdClaims = client.IDToken & { acr?: string; amr?: string[] };

const essentialAcr = (acr: { value?: string; values?: string[] }): string =>
  JSON.stringify({ id_token: { acr: { essential: true, ...acr } } });

/**
 * R14 (the second adversarial review): a request whose acr cannot be met sent the browser round
 * the login prompt for ever. A client that requires a second factor asking for the essential acr
 * loa:1 only (OIDC Core §5.5.1.1: the acr returned must be one of the essential values) got the
 * second step, was named loa:1, failed the provider's step-up check and was asked again, and
 * again; so was an essential acr whose `value` and `values` disagree. Such a request is now
 * refused with unmet_authentication_requirements (OpenID Connect Unmet Authentication
 * Requirements 1.0) before any sign-in; one that can be met asks for the factor that meets it;
 * and a sign-in about to end without meeting the request ends with that error instead of going
 * round again. Next to it: with acr_values beside an essential acr, oidc-provider keeps only
 * acr_values (its assignClaims), and the essential acr was ignored.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R14: an acr that cannot be met ends the request, never a loop (${storage})`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let rp: client.Configuration;
    let mfaRp: client.Configuration;

    before(async function () {
      servers = await startTestServers({ storage });
      const discover = async (metadata: Record<string, unknown>) => {
        const registered = await createTestClient(servers.deps, metadata);
        return client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
          execute: [client.allowInsecureRequests],
        });
      };
      rp = await discover({});
      // Every sign-in to this client passes a second factor (require_mfa: loa:2 at least).
      mfaRp = await discover({ require_mfa: true });
    });

    after(async function () {
      await servers.stop();
    });

    async function userWithApp() {
      const user = await createTestUser(servers.deps);
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test')).to.equal(true);
      return { ...user, secret: enrollment.secret };
    }

    // The code of the next time step: the setup used the current one (a code works once, T35).
    const nextCode = (secret: string) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });

    const text = async (landed: { response: Response; url: URL }) => ({
      url: landed.url,
      html: landed.url.origin === servers.issuer ? await landed.response.text() : '',
    });

    it('R14 an essential acr below what the client requires (require_mfa, loa:1 only) is refused with unmet_authentication_requirements before any sign-in, not a loop of second steps', async function () {
      const user = await userWithApp();
      const browser = new Browserless(servers.issuer);
      const flow = await authorizationRequest(mfaRp, { scope: 'openid', claims: essentialAcr({ values: [ACR.password] }) });
      let at = await text(await browser.follow(flow.url));
      // Before the fix: the login page, the app code, and the app code again in a new interaction, for ever.
      for (let round = 0; round < 4 && at.url.origin === servers.issuer; round++) {
        if (at.html.includes('/login"')) {
          const login = formOf(at.html, '/login');
          at = await text(await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password }));
        } else {
          const code = formOf(at.html, '/mfa/totp');
          at = await text(
            await browser.submit(code.action, {
              csrf: code.csrf,
              code: await generate({ secret: user.secret, epoch: Math.floor(Date.now() / 1000) + 30 * (round + 1) }),
            }),
          );
        }
      }
      expect(at.url.href.startsWith(RP_REDIRECT), `still at ${at.url.pathname}`).to.equal(true);
      expect(at.url.searchParams.get('error')).to.equal('unmet_authentication_requirements');
      expect(at.url.searchParams.get('state')).to.equal(flow.state);
    });

    it('R14 a sign-in that can no longer meet the request (its client began to require a second factor after /auth asked for loa:1) ends with unmet_authentication_requirements, not a loop', async function () {
      const registered = await createTestClient(servers.deps);
      const changing = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const user = await userWithApp();
      const browser = new Browserless(servers.issuer);
      const flow = await authorizationRequest(changing, { scope: 'openid', claims: essentialAcr({ values: [ACR.password] }) });
      const first = await text(await browser.follow(flow.url));
      const login = formOf(first.html, '/login');
      // Meanwhile an operator makes the client require a second factor (loa:2 at least).
      const metadata = await servers.deps.stores.clients.find(registered.client_id);
      if (!metadata) throw new Error('client not stored');
      await servers.deps.stores.clients.upsert({ ...metadata, require_mfa: true });
      // The write drops this process's cached copy: the provider's next lookup (the same store) reads it.
      expect((await servers.deps.stores.clients.find(registered.client_id))?.require_mfa).to.equal(true);
      let at = await text(await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password }));
      for (let round = 1; round < 4 && at.url.origin === servers.issuer && at.html.includes('/mfa/totp'); round++) {
        const code = formOf(at.html, '/mfa/totp');
        at = await text(
          await browser.submit(code.action, {
            csrf: code.csrf,
            code: await generate({ secret: user.secret, epoch: Math.floor(Date.now() / 1000) + 30 * round }),
          }),
        );
      }
      expect(at.url.href.startsWith(RP_REDIRECT), `still at ${at.url.pathname}`).to.equal(true);
      expect(at.url.searchParams.get('error')).to.equal('unmet_authentication_requirements');
    });

    it('R14 an essential acr whose value and values disagree is refused with unmet_authentication_requirements before any sign-in', async function () {
      const browser = new Browserless(servers.issuer);
      const flow = await authorizationRequest(rp, { scope: 'openid', claims: essentialAcr({ value: ACR.password, values: [ACR.mfa] }) });
      const { url } = await browser.follow(flow.url);
      expect(url.href.startsWith(RP_REDIRECT), `stayed on ${url.pathname}`).to.equal(true);
      expect(url.searchParams.get('error')).to.equal('unmet_authentication_requirements');
    });

    it('R14 essential acr values [loa:1, loa:passkey] on a client that requires a second factor: the app code, then a passkey, and the ID token names loa:passkey', async function () {
      const user = await userWithApp();
      const soft = softAuthenticator({ origin: servers.issuer });
      const browser = new Browserless(servers.issuer);
      const flow = await authorizationRequest(mfaRp, { scope: 'openid', claims: essentialAcr({ values: [ACR.password, ACR.passkey] }) });
      const first = await text(await browser.follow(flow.url));
      const login = formOf(first.html, '/login');
      const challenge = await text(await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password }));
      const code = formOf(challenge.html, '/mfa/totp');
      const uid = challenge.url.pathname.split('/')[2];
      const enrol = await text(await browser.submit(code.action, { csrf: code.csrf, code: await nextCode(user.secret) }));
      // Loa:1 cannot be named on a client that requires loa:2: loa:passkey is what meets the request.
      expect(enrol.url.pathname, 'the same sign-in goes on').to.equal(`/interaction/${uid}`);
      expect(enrol.html).to.contain('Create a passkey');
      const created = formOf(enrol.html, '/enroll/webauthn');
      let passkey = await text(
        await browser.submit(created.action, {
          csrf: created.csrf,
          name: 'Key',
          response: JSON.stringify(soft.register(creationOptionsOf(enrol.html))),
        }),
      );
      if (passkey.html.includes('/continue')) {
        // The account had no recovery codes yet: they are shown once.
        const next = formOf(passkey.html, '/continue');
        passkey = await text(await browser.submit(next.action, { csrf: next.csrf }));
      }
      const use = formOf(passkey.html, '/mfa/webauthn');
      let done = await text(
        await browser.submit(use.action, { csrf: use.csrf, response: JSON.stringify(soft.assert(requestOptionsOf(passkey.html))) }),
      );
      if (done.html.includes('/confirm')) {
        const consent = formOf(done.html, '/confirm');
        done = await text(await browser.submit(consent.action, { csrf: consent.csrf }));
      }
      expect(done.url.href.startsWith(RP_REDIRECT), `stayed on ${done.url.pathname}`).to.equal(true);
      const tokens = await client.authorizationCodeGrant(mfaRp, done.url, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
      expect((tokens.claims() as IdClaims).acr).to.equal(ACR.passkey);
    });

    it('R14 acr_values beside an essential acr: the essential acr is what the sign-in must meet and what the ID token names', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const flow = await authorizationRequest(rp, {
        scope: 'openid',
        acr_values: ACR.password,
        claims: essentialAcr({ values: [ACR.mfa] }),
      });
      const first = await text(await browser.follow(flow.url));
      const login = formOf(first.html, '/login');
      const after = await text(await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password }));
      // The essential loa:2 needs a second step (set up now), although acr_values would take the password alone.
      expect(after.html, after.url.pathname).to.contain('Set up two-step sign-in');
      const secret = (/id="totp-secret">([^<]+)</.exec(after.html)?.[1] ?? '').replace(/\s/g, '');
      const enrol = formOf(after.html, '/enroll/totp');
      const codes = await text(await browser.submit(enrol.action, { csrf: enrol.csrf, code: await generate({ secret }) }));
      const next = formOf(codes.html, '/continue');
      let done = await text(await browser.submit(next.action, { csrf: next.csrf }));
      if (done.html.includes('/confirm')) {
        const consent = formOf(done.html, '/confirm');
        done = await text(await browser.submit(consent.action, { csrf: consent.csrf }));
      }
      const tokens = await client.authorizationCodeGrant(rp, done.url, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
      expect((tokens.claims() as IdClaims).acr).to.equal(ACR.mfa);
    });
  });
}
