import { expect } from 'chai';
import * as client from 'openid-client';
import type { Deps } from '../../src/deps.ts';
import { call, createRp, signedInUser, userTokens } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { signedInBrowser, signIn, signInToAccount, silentSignIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, authorizationRequestTo, RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { eventually, waitUntil } from '../helpers/wait.ts';

/**
 * R8 (sessions after "sign out everywhere") and R13: oidc-provider saves a session again at the
 * end of every request that used it, so a request that was already running when "sign out
 * everywhere" ended the session wrote it back afterwards — indexed again, and alive. Deleting
 * sessions cannot win that race; a per-account "sessions not valid before" time can: a session
 * (or a code or refresh token) whose sign-in is older than it is treated as absent wherever it is
 * read. Sign out everywhere, a password change that signs out the others, an MFA reset and
 * disabling the account set it.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R8/R13: sessions not valid before the account's last "sign out everywhere" (${storage})`, function () {
    let servers: TestServers;
    let clientId: string;
    let rp: client.Configuration;

    before(async function () {
      servers = await startTestServers({ storage });
      const registered = await createTestClient(servers.deps);
      clientId = registered.client_id;
      rp = await client.discovery(new URL(servers.issuer), clientId, registered.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
    });

    after(async function () {
      await servers.stop();
    });

    /** What a prompt=none request for the client comes back with: "code" or the error. */
    async function silently(browser: Browserless): Promise<string> {
      return (await silentSignIn(browser, clientId)).outcome;
    }

    /** GET /account: the page (200) or a redirect to sign in. */
    async function accountPage(browser: Browserless): Promise<{ status: number; signIn: boolean }> {
      const response = await browser.request('/account');
      const location = response.headers.get('Location');
      return { status: response.status, signIn: location !== null && new URL(location, servers.issuer).pathname === '/auth' };
    }

    async function signedIn() {
      const user = await createTestUser(servers.deps);
      return { user, ...(await signedInBrowser(servers.issuer, clientId, user)) };
    }

    /**
     * Holds the next account lookup for `userId` after it has read the account (as a slow
     * database would): the request that made it is then in flight, past its account check.
     */
    function holdNextLookup(deps: Deps, userId: string) {
      const { accounts } = deps;
      const real = accounts.findActive.bind(accounts);
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let reached = false;
      accounts.findActive = async (id: string) => {
        const user = await real(id);
        if (id === userId && !reached) {
          reached = true;
          await released;
        }
        return user;
      };
      return {
        reached: () => reached,
        release() {
          accounts.findActive = real;
          release();
        },
      };
    }

    it('R8 a request in flight during "sign out everywhere" saves its session again, and that session no longer works: the account page asks to sign in, prompt=none gets login_required', async function () {
      const { user, browser } = await signedIn();
      const session = browser.sessionId;
      const hold = holdNextLookup(servers.deps, user.id);
      let inFlight: Promise<Response> | undefined;
      try {
        inFlight = browser.request(authorizationRequestTo(servers.issuer, clientId, { prompt: 'none' }).url);
        await eventually(() => expect(hold.reached(), 'the request reached its account lookup').to.equal(true), { timeoutMs: 10_000 });
        await servers.deps.accountSessions.signOutEverywhere(user.id);
        expect(await servers.deps.oidcAdapter('Session').find(session)).to.equal(undefined);
      } finally {
        hold.release();
      }
      await inFlight;
      // The request that was running wrote the session back as it ended: the race is real.
      expect(await servers.deps.oidcAdapter('Session').find(session), 'the in-flight request saved the session again').to.not.equal(
        undefined,
      );
      expect(browser.sessionId).to.equal(session);

      expect(await accountPage(browser)).to.deep.equal({ status: 302, signIn: true });
      expect(await silently(browser)).to.equal('login_required');
      // Signing in again (at once, often within the same second) gives a session that works.
      const again = await signIn(browser, authorizationRequestTo(servers.issuer, clientId).url, user);
      expect(again.searchParams.get('code')).to.be.a('string');
      expect(await silently(browser)).to.equal('code');
      expect((await accountPage(browser)).status).to.equal(200);
    });

    it('R13 a sign-in whose old password was checked before the password change does not become a session when it resumes after it', async function () {
      const user = await createTestUser(servers.deps);
      const owner = new Browserless(servers.issuer);
      const accountHtml = await signInToAccount(owner, user);

      // Someone with the old password passes the password step, and waits before following the redirect.
      const attacker = new Browserless(servers.issuer);
      const page = await attacker.follow(authorizationRequestTo(servers.issuer, clientId).url);
      const form = formOf(await page.response.text(), '/login');
      const posted = await attacker.request(form.action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
        body: new URLSearchParams({ csrf: form.csrf, email: user.email, password: user.password }).toString(),
      });
      expect(posted.status).to.equal(303);
      const resume = new URL(posted.headers.get('Location') ?? '', servers.issuer);
      expect(resume.pathname.startsWith('/auth/')).to.equal(true);

      // The owner changes the password and signs the others out; only then does the attacker resume.
      const change = formOf(accountHtml, '/password');
      const changed = await owner.submit(change.action, {
        csrf: change.csrf,
        current_password: user.password,
        new_password: 'a brand new long passphrase',
        confirm_password: 'a brand new long passphrase',
        sign_out_others: 'yes',
      });
      expect(changed.url.searchParams.get('notice')).to.equal('password-changed-signed-out');
      // Resumed in a later second than the change, so only the sign-in's own time can tell.
      const changedIn = Math.floor(Date.now() / 1000);
      await waitUntil((changedIn + 1) * 1000);
      // The resumed sign-in is no sign-in: the login page again, not the app's consent page.
      const resumed = await attacker.follow(resume);
      expect(await resumed.response.text()).to.contain('name="password"');
      expect(await silently(attacker)).to.equal('login_required');
      // The owner's own session is the one kept.
      expect((await accountPage(owner)).status).to.equal(200);
    });

    it('R13 disabling an account ends its sessions and refresh tokens for good: enabling it again revives none', async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const tokens = await userTokens(servers, rp, user, '', undefined, { browser });
      const refreshToken = tokens.refresh_token ?? '';
      expect(refreshToken).to.not.equal('');
      expect(await silently(browser)).to.equal('code');

      const admin = { userId: '00000000-0000-4000-8000-000000000000', clientId: 'test' };
      await servers.deps.api.userAdmin.update(admin, user.id, { disabled: true });
      expect(await silently(browser)).to.equal('login_required');
      await servers.deps.api.userAdmin.update(admin, user.id, { disabled: false });

      expect(await silently(browser)).to.equal('login_required');
      const refreshed = await client.refreshTokenGrant(rp, refreshToken, { resource: servers.apiUrl }).then(
        () => 'refreshed',
        (error: unknown) => (error as { error?: string }).error ?? String(error),
      );
      expect(refreshed).to.equal('invalid_grant');
    });

    /** An operator-registered client (it may hold `admin`); its users sign in through our pages. */
    const ADMIN_CLIENT_SCOPE = 'openid offline_access profile email records:read admin';

    /**
     * A user signed in to `appRp` in `browser`, with the tokens an app holds: a JWT access token
     * for the API and its refresh token, and an opaque access token for userinfo (no resource).
     */
    async function appTokens(appRp: client.Configuration) {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const forApi = await userTokens(servers, appRp, user, 'records:read', undefined, { browser });
      const flow = await authorizationRequest(appRp, { scope: 'openid email' });
      const callback = await signIn(browser, flow.url, user);
      const opaque = await client.authorizationCodeGrant(appRp, callback, { pkceCodeVerifier: flow.verifier, expectedState: flow.state });
      expect(opaque.access_token.split('.')).to.have.length(1);
      return { user, browser, jwt: forApi.access_token, refreshToken: forApi.refresh_token ?? '', opaque: opaque.access_token };
    }

    /** What whatStillWorks finds for a sign-in that no longer counts: every token and the session refused. */
    const NOTHING_WORKS = { introspection: false, userinfo: 401, api: 401, refresh: 'invalid_grant', session: 'login_required' };

    /** What each holder of an old credential gets now. */
    async function whatStillWorks(appRp: client.Configuration, held: Awaited<ReturnType<typeof appTokens>>) {
      const introspected = await client.tokenIntrospection(appRp, held.opaque);
      const userinfo = await fetch(appRp.serverMetadata().userinfo_endpoint ?? '', { headers: { Authorization: `Bearer ${held.opaque}` } });
      const api = await call(servers, 'GET', '/v1/me', held.jwt);
      const refreshed = await client.refreshTokenGrant(appRp, held.refreshToken, { resource: servers.apiUrl }).then(
        () => 'refreshed',
        (error: unknown) => (error as { error?: string }).error ?? String(error),
      );
      return {
        introspection: introspected.active,
        userinfo: userinfo.status,
        api: api.status,
        refresh: refreshed,
        session: await silentlyTo(appRp, held.browser),
      };
    }

    /** prompt=none for `appRp` in the browser: "code" or the error. */
    async function silentlyTo(appRp: client.Configuration, browser: Browserless): Promise<string> {
      const { url } = await browser.follow((await authorizationRequest(appRp, { prompt: 'none', scope: 'openid' })).url);
      expect(url.href.startsWith(RP_REDIRECT), `stayed on ${url.pathname}`).to.equal(true);
      return url.searchParams.get('code') ? 'code' : (url.searchParams.get('error') ?? 'nothing');
    }

    const storedGrants = async (userId: string) => {
      const rows = await servers.deps.accountIndex.list(userId, 'Grant');
      const found = await Promise.all(rows.map((row) => servers.deps.oidcAdapter('Grant').find(row.id)));
      return found.filter((grant) => grant !== undefined).length;
    };

    it("R13 tokens issued before the account's sessions-not-before are refused while their grant is still stored: introspection inactive, userinfo and the API 401", async function () {
      const appRp = await createRp(servers, { scope: ADMIN_CLIENT_SCOPE });
      const held = await appTokens(appRp);
      expect((await client.tokenIntrospection(appRp, held.opaque)).active).to.equal(true);
      expect((await call(servers, 'GET', '/v1/me', held.jwt)).status).to.equal(200);

      // The cutoff moves, and nothing is deleted (a "sign out everywhere" whose deletions did not
      // run, or a disable the auth server has not swept yet): the grants are all still stored.
      await servers.deps.stores.users.endSessionsBefore(held.user.id, new Date(), null);
      expect(await storedGrants(held.user.id)).to.equal(1);
      // The API reads the account with a cache of a few seconds (src/services/rbac.ts): it refuses
      // the JWT once that expires; the entry is dropped here rather than waited out.
      servers.deps.api.rbac.invalidate(held.user.id);
      expect(await whatStillWorks(appRp, held)).to.deep.equal(NOTHING_WORKS);
    });

    it('R13 disabling over the admin API: the auth server revokes every grant, and once the account is enabled again the old refresh token, opaque and JWT access tokens and session all stay dead', async function () {
      const appRp = await createRp(servers, { scope: ADMIN_CLIENT_SCOPE });
      const admin = await signedInUser(servers, appRp, { roles: ['admin'], scopes: 'admin' });
      const held = await appTokens(appRp);
      expect(await storedGrants(held.user.id)).to.equal(1);

      const setDisabled = (disabled: boolean) => call(servers, 'PATCH', `/v1/admin/users/${held.user.id}`, admin.token, { disabled });
      expect((await setDisabled(true)).status).to.equal(200);
      // The auth server's sweep ends the account's sessions and grants (the API may not hold the keys to).
      await eventually(
        async () => {
          expect(await storedGrants(held.user.id), 'grants still stored').to.equal(0);
          expect(await servers.deps.accountIndex.list(held.user.id, 'Session'), 'sessions still indexed').to.have.length(0);
        },
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      expect(await servers.deps.oidcAdapter('Session').find(held.browser.sessionId)).to.equal(undefined);
      expect((await setDisabled(false)).status).to.equal(200);

      expect(await whatStillWorks(appRp, held)).to.deep.equal(NOTHING_WORKS);
      // A new sign-in works as usual.
      const again = await signIn(held.browser, (await authorizationRequest(appRp, { scope: 'openid' })).url, held.user);
      expect(again.searchParams.get('code')).to.be.a('string');
      expect(await silentlyTo(appRp, held.browser)).to.equal('code');
    });
  });
}
