import { expect } from 'chai';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { Browserless, formOf, passkeyOptionsOf } from '../helpers/browserless.ts';
import { createTestClient } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { passkeyLoginPage, userWithPasskey } from '../helpers/passkeys.ts';

/**
 * R13 (the review's further findings), WebAuthn challenge rows: the login page's passkey
 * options are served to anyone who opened a sign-in request, and each wrote a challenge row.
 * Within one interaction the row was already replaced (one per interaction and purpose), but
 * every new /auth request is a new interaction: 1,000 anonymous requests left 1,000 rows. The
 * passwordless challenge now carries its own binding (sealed: interaction, purpose, expiry) and
 * nothing is stored until an answer verifies; its single use is then claimed once.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13: WebAuthn challenges are bounded (${storage})`, function () {
    let servers: TestServers;
    let clientId: string;

    before(async function () {
      servers = await startTestServers({ storage });
      clientId = (await createTestClient(servers.deps)).client_id;
    });

    after(async function () {
      await servers.stop();
    });

    const rows = async (): Promise<number> =>
      Number((await servers.deps.knex('webauthn_challenges').count<{ n: string }[]>({ n: '*' }))[0]?.n ?? 0);

    /** A new sign-in request (its login page, whose form token the options need: R14) and its passkey options. */
    async function anonymousOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const browser = new Browserless(servers.issuer);
      const { response, url } = await browser.follow(authorizationRequestTo(servers.issuer, clientId).url);
      const { csrf } = formOf(await response.text(), '/passkey');
      return passkeyOptionsOf<PublicKeyCredentialRequestOptionsJSON>(
        browser,
        `/interaction/${url.pathname.split('/')[2] ?? ''}/passkey/options`,
        csrf,
      );
    }

    it('R13 1,000 passkey option requests, each on a new sign-in request, leave at most a constant number of challenge rows', async function () {
      this.timeout(300_000);
      const before = await rows();
      for (let batch = 0; batch < 50; batch++) await Promise.all(Array.from({ length: 20 }, anonymousOptions));
      expect((await rows()) - before).to.be.at.most(0);
    });

    it('R13 a passwordless challenge is still single use: the same signed answer is accepted once, and never in another sign-in request', async function () {
      const { soft } = await userWithPasskey(servers);

      const browser = new Browserless(servers.issuer);
      const { login, options } = await passkeyLoginPage(browser, authorizationRequestTo(servers.issuer, clientId).url);
      // Counter 0, as many passkeys keep: the counter cannot tell a replay apart, the challenge must.
      const answer = JSON.stringify(soft.assert(options, { counter: 0 }));
      const post = (target: Browserless, action: string, csrf: string) =>
        target.request(action, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
          body: new URLSearchParams({ csrf, response: answer }).toString(),
        });

      // Posted into another sign-in request: that request's binding does not match.
      const other = new Browserless(servers.issuer);
      const otherPage = await other.follow(authorizationRequestTo(servers.issuer, clientId).url);
      const otherLogin = formOf(await otherPage.response.text(), '/passkey');
      const moved = await post(other, otherLogin.action, otherLogin.csrf);
      expect(moved.status).to.equal(200);
      expect(await moved.text()).to.contain('The passkey could not be used');

      const accepted = await post(browser, login.action, login.csrf);
      expect(accepted.status).to.equal(303);
      // The same answer again, before the browser resumes: the challenge was used.
      const replayed = await post(browser, login.action, login.csrf);
      expect(replayed.status).to.equal(200);
      expect(await replayed.text()).to.contain('The passkey could not be used');
    });

    it("one interaction's second-factor page asked 1,000 times keeps one challenge row", async function () {
      this.timeout(120_000);
      const { user } = await userWithPasskey(servers);
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow(authorizationRequestTo(servers.issuer, clientId).url);
      const login = formOf(await first.response.text(), '/login');
      const { url } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      const uid = url.pathname.split('/')[2] ?? '';
      for (let batch = 0; batch < 50; batch++) {
        await Promise.all(
          Array.from({ length: 20 }, async () =>
            expect((await browser.request(`/interaction/${uid}?method=webauthn`)).status).to.equal(200),
          ),
        );
      }
      expect(await servers.deps.knex('webauthn_challenges').where({ binding: servers.deps.mfaBindingKey(uid) })).to.have.length(1);
    });
  });
}
