import { expect } from 'chai';
import { generate } from 'otplib';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

/**
 * R13 (the review's further findings), shared pending TOTP secret: enrolment at sign-in showed
 * the pending secret of the account whichever flow had started it. Someone who knows the
 * password of an account without a factor could start an enrolment, keep the secret, and let the
 * owner confirm it later (or read the secret the owner was just setting up on the account page):
 * the owner's "second factor" would then be known to them. A pending secret now belongs to the
 * flow that began it (the interaction, or the account page's session).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13: a pending TOTP secret belongs to the flow that began it (${storage})`, function () {
    let servers: TestServers;
    let mfaClient: string;

    before(async function () {
      servers = await startTestServers({ storage });
      // Every sign-in to this client passes a second factor: a user with none enrols one.
      mfaClient = (await createTestClient(servers.deps, { require_mfa: true })).client_id;
    });

    after(async function () {
      await servers.stop();
    });

    const now = () => Math.floor(Date.now() / 1000);
    const secretIn = (html: string): string => (/id="totp-secret">([^<]+)</.exec(html)?.[1] ?? '').replace(/\s/g, '');

    /** Password step of a sign-in to the MFA client: the enrolment page with its secret. */
    async function enrolmentAfterPassword(email: string, password: string) {
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow(authorizationRequestTo(servers.issuer, mfaClient).url);
      const login = formOf(await first.response.text(), '/login');
      const { response } = await browser.submit(login.action, { csrf: login.csrf, email, password });
      const html = await response.text();
      expect(html).to.contain('Set up two-step sign-in');
      const secret = secretIn(html);
      expect(secret).to.match(/^[A-Z2-7]{32}$/);
      return { browser, html, secret };
    }

    /** "Set up an authenticator app" on the account page (a POST with the page's token): the setup page with its secret. */
    async function beginOnAccountPage(browser: Browserless, accountHtml: string): Promise<string> {
      const begin = formOf(accountHtml, '/account/totp/begin');
      const { response, url } = await browser.submit(begin.action, { csrf: begin.csrf });
      expect(url.pathname).to.equal('/account/totp');
      return response.text();
    }

    /** The account page, signed in with the password (a recent sign-in, no factor yet). */
    async function accountPageSignedIn(email: string, password: string) {
      const browser = new Browserless(servers.issuer);
      return { browser, html: await signInToAccount(browser, { email, password }) };
    }

    /** A later sign-in with the password and a code made from `secret`: did the code pass? */
    async function codeSignsIn(email: string, password: string, secret: string): Promise<boolean> {
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow(authorizationRequestTo(servers.issuer, mfaClient).url);
      const login = formOf(await first.response.text(), '/login');
      const { response } = await browser.submit(login.action, { csrf: login.csrf, email, password });
      const html = await response.text();
      expect(html).to.contain('Code from your authenticator app');
      const form = formOf(html, '/mfa/totp');
      // The next step's code: the owner's enrolment used this one.
      const after = await browser.submit(form.action, { csrf: form.csrf, code: await generate({ secret, epoch: now() + 30 }) });
      return !(await after.response.text()).includes('That code did not work');
    }

    it('R13 sign-in: the owner enrolling in their own sign-in gets a new secret, not the one an attacker began in theirs', async function () {
      const user = await createTestUser(servers.deps);
      const attacker = await enrolmentAfterPassword(user.email, user.password);
      const owner = await enrolmentAfterPassword(user.email, user.password);
      expect(owner.secret).to.not.equal(attacker.secret);

      // The owner confirms their own secret; the attacker's never becomes the account's.
      const form = formOf(owner.html, '/enroll/totp');
      const confirmed = await owner.browser.submit(form.action, { csrf: form.csrf, code: await generate({ secret: owner.secret }) });
      expect(await confirmed.response.text()).to.contain('Save your recovery codes');
      const planted = formOf(attacker.html, '/enroll/totp');
      const refused = await attacker.browser.submit(planted.action, {
        csrf: planted.csrf,
        code: await generate({ secret: attacker.secret }),
      });
      expect(await refused.response.text()).to.not.contain('Save your recovery codes');
      expect(await codeSignsIn(user.email, user.password, attacker.secret)).to.equal(false);
      expect(await codeSignsIn(user.email, user.password, owner.secret)).to.equal(true);
    });

    it("R13 account page: a sign-in elsewhere neither shows nor confirms the secret the owner is setting up, and the owner's retry never shows the other flow's secret", async function () {
      const user = await createTestUser(servers.deps);
      const owner = new Browserless(servers.issuer);
      const setup = await beginOnAccountPage(owner, await signInToAccount(owner, user));
      const ownerSecret = secretIn(setup);
      expect(ownerSecret).to.match(/^[A-Z2-7]{32}$/);

      // Meanwhile someone with the password signs in to the MFA client: a secret of their own.
      const attacker = await enrolmentAfterPassword(user.email, user.password);
      expect(attacker.secret).to.not.equal(ownerSecret);

      // The owner's next try (a typo, then the right code) never shows the attacker's secret.
      const retry = await owner.submit('/account/totp', { csrf: formOf(setup, '/account/totp').csrf, code: '000000' });
      const retryHtml = await retry.response.text();
      expect(retryHtml).to.not.contain(attacker.secret.replace(/(.{4})/g, '$1 ').trim());
      // The attacker's own code confirms nothing on the account page's flow either.
      const planted = await owner.submit('/account/totp', {
        csrf: formOf(setup, '/account/totp').csrf,
        code: await generate({ secret: attacker.secret }),
      });
      expect(await planted.response.text()).to.not.contain('Save your recovery codes');
      expect(await servers.deps.mfa.totp.enabled(user.id)).to.equal(false);
    });

    it("R13 account page: a cross-site GET /account/totp neither begins nor replaces a setup; only a same-site POST with the page's token begins one", async function () {
      const user = await createTestUser(servers.deps);
      const owner = await accountPageSignedIn(user.email, user.password);
      const sessionId = owner.browser.sessionId;
      expect(sessionId).to.not.equal('');
      // The owner has begun a setup on the account page and is scanning its QR code.
      const began = await servers.deps.mfa.totp.begin(user.id, user.email, `account:${sessionId}`);
      const ownerSecret = began?.secret ?? '';
      expect(ownerSecret).to.match(/^[A-Z2-7]{32}$/);

      // A link on another site opens the setup page in the owner's browser (SameSite=Lax sends the cookie).
      const crossSite = { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' };
      const linked = await owner.browser.follow('/account/totp', { headers: crossSite });
      expect(linked.url.pathname).to.equal('/account/totp');
      expect(secretIn(await linked.response.text())).to.equal(ownerSecret);
      // The owner's code still turns on the secret they scanned.
      const setup = await (await owner.browser.follow('/account/totp')).response.text();
      const confirmed = await owner.browser.submit('/account/totp', {
        csrf: formOf(setup, '/account/totp').csrf,
        code: await generate({ secret: ownerSecret }),
      });
      expect(await confirmed.response.text()).to.contain('Save your recovery codes');
      expect(await servers.deps.mfa.totp.enabled(user.id)).to.equal(true);

      // Without a setup in progress the page only offers to begin one: a GET creates no secret.
      const other = await createTestUser(servers.deps);
      const fresh = await accountPageSignedIn(other.email, other.password);
      const offered = await (await fresh.browser.follow('/account/totp', { headers: crossSite })).response.text();
      expect(secretIn(offered)).to.equal('');
      expect(offered).to.contain('action="/account/totp/begin"');
      expect(await servers.deps.mfa.totp.pending(other.id, other.email, `account:${fresh.browser.sessionId}`)).to.equal(undefined);
      // Beginning refuses a cross-site POST and a POST without the page's token.
      const begin = formOf(fresh.html, '/account/totp/begin');
      expect(
        (await fresh.browser.submit(begin.action, { csrf: begin.csrf }, { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' }))
          .response.status,
      ).to.equal(403);
      expect((await fresh.browser.submit(begin.action, {})).response.status).to.equal(403);
      // The page's own form begins it.
      expect(secretIn(await beginOnAccountPage(fresh.browser, fresh.html))).to.match(/^[A-Z2-7]{32}$/);
    });

    it("R14 sign-in enrolment: a cross-site link through /auth to the enrolment page neither begins nor replaces a setup; only a same-site POST with the page's token begins one", async function () {
      const user = await createTestUser(servers.deps);
      const owner = await accountPageSignedIn(user.email, user.password);
      const sessionId = owner.browser.sessionId;
      // The owner is setting up an app on the account page.
      const ownerSecret = secretIn(await beginOnAccountPage(owner.browser, owner.html));
      expect(ownerSecret).to.match(/^[A-Z2-7]{32}$/);

      // Another site links the owner's browser to a sign-in with an app that requires a second
      // step: with the recent session the provider goes straight to the enrolment page (step-up).
      const crossSite = { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' };
      const linked = await owner.browser.follow(authorizationRequestTo(servers.issuer, mfaClient).url, { headers: crossSite });
      const page = await linked.response.text();
      expect(page).to.contain('Set up two-step sign-in');
      const uid = linked.url.pathname.split('/')[2] ?? '';
      // Nothing was begun: the page offers to begin, and the owner's setup is untouched.
      expect(secretIn(page)).to.equal('');
      expect(page).to.contain(`action="/interaction/${uid}/enroll/totp/begin"`);
      expect(await servers.deps.mfa.totp.pending(user.id, user.email, uid)).to.equal(undefined);
      expect((await servers.deps.mfa.totp.pending(user.id, user.email, `account:${sessionId}`))?.secret).to.equal(ownerSecret);
      // Asking for the page again (any method) begins nothing either.
      const again = await (await owner.browser.follow(`/interaction/${uid}?method=totp`, { headers: crossSite })).response.text();
      expect(secretIn(again)).to.equal('');
      expect((await servers.deps.mfa.totp.pending(user.id, user.email, `account:${sessionId}`))?.secret).to.equal(ownerSecret);

      // Beginning refuses a cross-site POST and a POST without the page's token…
      const begin = formOf(page, '/enroll/totp/begin');
      expect(
        (await owner.browser.submit(begin.action, { csrf: begin.csrf }, { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' }))
          .response.status,
      ).to.equal(403);
      expect((await owner.browser.submit(begin.action, {})).response.status).to.equal(403);
      expect((await servers.deps.mfa.totp.pending(user.id, user.email, `account:${sessionId}`))?.secret).to.equal(ownerSecret);
      // …the page's own form begins this sign-in's setup, whose code turns it on.
      const begun = await owner.browser.submit(begin.action, { csrf: begin.csrf });
      const setup = await begun.response.text();
      const secret = secretIn(setup);
      expect(secret).to.match(/^[A-Z2-7]{32}$/);
      expect(secret).to.not.equal(ownerSecret);
      const enrol = formOf(setup, '/enroll/totp');
      const confirmed = await owner.browser.submit(enrol.action, { csrf: enrol.csrf, code: await generate({ secret }) });
      expect(await confirmed.response.text()).to.contain('Save your recovery codes');
    });

    it('R14 sign-in enrolment: after the password (a POST) the setup is begun at once, and a reload shows the same secret', async function () {
      const user = await createTestUser(servers.deps);
      const { browser, html, secret } = await enrolmentAfterPassword(user.email, user.password);
      const uid = formOf(html, '/enroll/totp').action.split('/')[2] ?? '';
      const reload = await (await browser.follow(`/interaction/${uid}`)).response.text();
      expect(secretIn(reload)).to.equal(secret);
    });
  });
}
