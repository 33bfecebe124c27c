import { expect } from 'chai';
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { softAuthenticator } from '../helpers/soft-authenticator.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

const CROSS_SITE_LINK = { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' };
const CROSS_SITE_POST = { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' };

/**
 * R14 (the second adversarial review): the passkey options endpoints (GET
 * /interaction/:uid/passkey/options on the login page, GET /account/passkeys/options on the
 * account page) answered any GET, so a page on another site could start ceremonies for the
 * victim's session — a top-level link sends the SameSite=Lax session cookie — and replace the
 * challenge of a registration the owner had begun. They are POSTs now, with the page's form
 * token and the cross-site check every form has; the page's script sends both.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R14: passkey options only for the page's own script (${storage})`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let clientId: string;

    before(async function () {
      servers = await startTestServers({ storage });
      clientId = (await createTestClient(servers.deps)).client_id;
    });

    after(async function () {
      await servers.stop();
    });

    const challengeRows = async (binding: string): Promise<number> =>
      Number(
        (
          await servers.deps
            .knex('webauthn_challenges')
            .where({ binding: servers.deps.mfaBindingKey(binding) })
            .count<{ n: string }[]>({ n: '*' })
        )[0]?.n ?? 0,
      );

    const postForm = (browser: Browserless, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
      browser.request(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Origin: servers.issuer, ...headers },
        body: new URLSearchParams(fields).toString(),
      });

    it("R14 account page: a cross-site GET of the passkey options starts no ceremony; only a same-site POST with the page's token does, and its passkey is added", async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const page = await signInToAccount(browser, user);
      const binding = `account:${browser.sessionId}`;

      // A link on another site (SameSite=Lax sends the session cookie with it).
      const linked = await browser.request('/account/passkeys/options', { headers: CROSS_SITE_LINK });
      expect(linked.status, 'cross-site GET').to.equal(405);
      expect(await challengeRows(binding)).to.equal(0);

      const form = formOf(page, '/account/passkeys');
      expect(page).to.contain('data-options-url="/account/passkeys/options"');
      expect(
        (await postForm(browser, '/account/passkeys/options', { csrf: form.csrf }, CROSS_SITE_POST)).status,
        'cross-site POST',
      ).to.equal(403);
      expect((await postForm(browser, '/account/passkeys/options', {})).status, 'POST without the token').to.equal(403);
      expect(await challengeRows(binding)).to.equal(0);

      const answer = await postForm(browser, '/account/passkeys/options', { csrf: form.csrf });
      expect(answer.status).to.equal(200);
      expect(answer.headers.get('Cache-Control')).to.equal('no-store');
      expect(await challengeRows(binding)).to.equal(1);
      const options = (await answer.json()) as PublicKeyCredentialCreationOptionsJSON;
      const soft = softAuthenticator({ origin: servers.issuer });
      const added = await browser.submit('/account/passkeys', {
        csrf: form.csrf,
        name: 'Key',
        response: JSON.stringify(soft.register(options)),
      });
      // The first factor: its recovery codes are shown once.
      expect(await added.response.text()).to.contain('Save your recovery codes');
      expect(await servers.deps.mfa.webauthn.hasCredentials(user.id)).to.equal(true);
    });

    it("R14 login page: the passwordless options are a POST with the page's token; a GET, a cross-site POST and a POST without the token are refused", async function () {
      const browser = new Browserless(servers.issuer);
      const { response, url } = await browser.follow(authorizationRequestTo(servers.issuer, clientId).url);
      const html = await response.text();
      const uid = url.pathname.split('/')[2] ?? '';
      const optionsUrl = `/interaction/${uid}/passkey/options`;
      expect(html).to.contain(`data-options-url="${optionsUrl}"`);
      const { csrf } = formOf(html, '/passkey');

      expect((await browser.request(optionsUrl, { headers: CROSS_SITE_LINK })).status, 'GET').to.equal(405);
      expect((await postForm(browser, optionsUrl, { csrf }, CROSS_SITE_POST)).status, 'cross-site POST').to.equal(403);
      expect((await postForm(browser, optionsUrl, {})).status, 'POST without the token').to.equal(403);
      const answer = await postForm(browser, optionsUrl, { csrf });
      expect(answer.status).to.equal(200);
      expect(answer.headers.get('Cache-Control')).to.equal('no-store');
      expect(((await answer.json()) as PublicKeyCredentialRequestOptionsJSON).challenge).to.be.a('string');
    });
  });
}
