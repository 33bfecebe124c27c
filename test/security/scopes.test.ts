import { expect } from 'chai';
import * as client from 'openid-client';
import { call, createRp, signedInUser, userTokens } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, authorizationRequestTo, RP_REDIRECT } from '../helpers/oidc.ts';
import { oauthErrorOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

/** What a client may hold when an operator granted it the account scopes (never the default). */
const WITH_ACCOUNT_SCOPES = 'openid offline_access profile email records:read records:write account:export account:erase';
const DEFAULT_SCOPE = 'openid offline_access profile email records:read records:write';

const claimsOf = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

/** The parameters of a WWW-Authenticate challenge. */
const challengeOf = (header: string | null): Record<string, string> =>
  Object.fromEntries([...(header ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));

/**
 * R4 (issue 19): scopes that allowed too much. Export and erasure have their own scopes
 * (account:export, account:erase) that no client gets by default and that only an operator can
 * grant; `admin` is never a default anywhere; the consent page words the dangerous scopes
 * plainly and asks for account:erase on every request. Both storage modes: grants, consents and
 * registration access tokens live in the adapter.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R4 scopes that allow too much (${storage} storage)`, function () {
    this.timeout(90_000);
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({ storage });
    });
    after(async function () {
      await servers.stop();
    });

    /** Login through the real pages; returns the first page that is not the login page (HTML). */
    async function loginUntilConsent(browser: Browserless, url: URL, user: { email: string; password: string }) {
      let { response, url: at } = await browser.follow(url);
      let html = await response.text();
      if (html.includes('name="password"')) {
        const form = formOf(html, '/login');
        ({ response, url: at } = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password }));
        html = at.origin === browser.origin ? await response.text() : '';
      }
      return { response, url: at, html };
    }

    const register = async (metadata: Record<string, unknown>, initialAccessToken: string) => {
      const response = await fetch(`${servers.issuer}/reg`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${initialAccessToken}` },
        body: JSON.stringify(metadata),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const update = async (registered: Record<string, unknown>, metadata: Record<string, unknown>) => {
      const response = await fetch(registered.registration_client_uri as string, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${registered.registration_access_token as string}` },
        body: JSON.stringify({ client_id: registered.client_id, ...metadata }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const web = { client_name: 'Partner app', redirect_uris: [RP_REDIRECT], grant_types: ['authorization_code', 'refresh_token'] };

    it('R4 a token with only records:read and records:write can neither export nor erase: 403 insufficient_scope naming the account scope', async function () {
      const rp = await createRp(servers, { scope: DEFAULT_SCOPE });
      const user = await signedInUser(servers, rp, { scopes: 'records:read records:write' });
      // A fresh sign-in, so only the scope can stop the erasure.
      expect(Date.now() / 1000 - Number(claimsOf(user.token).auth_time)).to.be.below(60);

      const exported = await call(servers, 'GET', '/v1/me/export', user.token);
      expect(exported.status, exported.text.slice(0, 200)).to.equal(403);
      expect(challengeOf(exported.headers.get('WWW-Authenticate'))).to.include({ error: 'insufficient_scope', scope: 'account:export' });

      const erased = await call(servers, 'DELETE', '/v1/me', user.token);
      expect(erased.status, erased.text).to.equal(403);
      expect(challengeOf(erased.headers.get('WWW-Authenticate'))).to.include({ error: 'insufficient_scope', scope: 'account:erase' });
      expect(await servers.deps.knex('users').where({ id: user.id }).first()).to.not.equal(undefined);
    });

    it('R4 with account:export the export is served; with account:erase and a recent sign-in the account is erased', async function () {
      const rp = await createRp(servers, { scope: WITH_ACCOUNT_SCOPES });
      const user = await signedInUser(servers, rp, { scopes: 'account:export' });
      expect(claimsOf(user.token).scope).to.equal('account:export');
      expect((await call(servers, 'GET', '/v1/me/export', user.token)).status).to.equal(200);
      // One account scope does not carry the other.
      const notErase = await call(servers, 'DELETE', '/v1/me', user.token);
      expect(notErase.status).to.equal(403);
      expect(challengeOf(notErase.headers.get('WWW-Authenticate'))).to.include({ scope: 'account:erase' });

      const eraser = await signedInUser(servers, rp, { scopes: 'account:erase' });
      expect(claimsOf(eraser.token).scope).to.equal('account:erase');
      expect((await call(servers, 'GET', '/v1/me/export', eraser.token)).status).to.equal(403);
      const erased = await call(servers, 'DELETE', '/v1/me', eraser.token);
      expect(erased.status, erased.text).to.equal(204);
      expect(await servers.deps.knex('users').where({ id: eraser.id }).first()).to.equal(undefined);
    });

    it('R4 registration: account:export, account:erase and admin are refused unless an operator granted them; an initial access token may grant the account scopes, never admin', async function () {
      const { token: plain } = await servers.deps.stores.initialAccessTokens.create({ note: 'plain' });
      for (const scope of ['openid account:erase', 'openid records:read account:export', 'openid admin']) {
        const refused = await register({ ...web, scope }, plain);
        expect(refused.status, scope).to.equal(400);
        expect(refused.body.error, scope).to.equal('invalid_client_metadata');
        // admin is never self-registered; the account scopes need an operator's initial access token.
        expect(refused.body.error_description, scope).to.include(
          scope.endsWith('admin') ? 'cannot be self-registered' : "needs an operator's grant",
        );
      }
      // Without a scope: the default set, which holds neither admin nor the account scopes.
      const defaulted = await register(web, plain);
      expect(defaulted.status).to.equal(201);
      expect(defaulted.body.scope).to.equal(DEFAULT_SCOPE);

      const { token: granting } = await servers.deps.stores.initialAccessTokens.create({
        note: 'account app',
        allowedScopes: ['account:export', 'account:erase'],
      });
      const accountApp = await register({ ...web, scope: 'openid records:read account:export account:erase' }, granting);
      expect(accountApp.status, JSON.stringify(accountApp.body)).to.equal(201);
      expect(accountApp.body.scope).to.equal('openid records:read account:export account:erase');
      // Even that token gives nothing by default, and never admin.
      const grantingDefault = await register(web, granting);
      expect(grantingDefault.body.scope).to.equal(DEFAULT_SCOPE);
      const admin = await register({ ...web, scope: 'openid admin' }, granting);
      expect(admin.status).to.equal(400);
      expect(admin.body.error_description).to.match(/"admin" cannot be self-registered/);
      // A token granting only account:export does not grant account:erase.
      const { token: exportOnly } = await servers.deps.stores.initialAccessTokens.create({ allowedScopes: ['account:export'] });
      expect((await register({ ...web, scope: 'openid account:export' }, exportOnly)).status).to.equal(201);
      expect((await register({ ...web, scope: 'openid account:erase' }, exportOnly)).status).to.equal(400);
    });

    it('R4 an initial access token grants only the account scopes: a row edited to say admin still registers no admin client', async function () {
      const { token, record } = await servers.deps.stores.initialAccessTokens.create({ allowedScopes: ['account:erase'] });
      await servers.deps.knex('initial_access_tokens').where({ id: record.id }).update({ allowed_scope: 'account:erase admin bogus' });
      const admin = await register({ ...web, scope: 'openid admin' }, token);
      expect(admin.status, JSON.stringify(admin.body)).to.equal(400);
      expect(admin.body.error_description).to.match(/"admin" cannot be self-registered/);
      // What it may grant still works; the unknown word is ignored, not a 500.
      const erase = await register({ ...web, scope: 'openid account:erase' }, token);
      expect(erase.status, JSON.stringify(erase.body)).to.equal(201);
    });

    it('R4 RFC 7592: a client cannot add admin or account:erase to itself by PUT; one an operator granted keeps it', async function () {
      const { token: plain } = await servers.deps.stores.initialAccessTokens.create({});
      let registered = (await register(web, plain)).body;
      for (const scope of ['openid admin', 'openid account:erase', 'openid account:export']) {
        const refused = await update(registered, { ...web, scope });
        expect(refused.status, scope).to.equal(400);
        expect(refused.body.error, scope).to.equal('invalid_client_metadata');
      }
      // A valid update still works (so the refusals are the policy's doing), and keeps the default set.
      const renamed = await update(registered, { ...web, client_name: 'Renamed' });
      expect(renamed.status, JSON.stringify(renamed.body)).to.equal(200);
      expect(renamed.body.scope).to.equal(DEFAULT_SCOPE);
      registered = { ...registered, ...renamed.body };
      expect((await servers.deps.stores.clients.find(registered.client_id as string))?.scope).to.equal(DEFAULT_SCOPE);

      // Granted at registration by the operator's token: kept through updates, still no admin.
      const { token: granting } = await servers.deps.stores.initialAccessTokens.create({ allowedScopes: ['account:erase'] });
      let granted = (await register({ ...web, scope: 'openid account:erase' }, granting)).body;
      const kept = await update(granted, { ...web, client_name: 'Still erasing', scope: 'openid account:erase' });
      expect(kept.status, JSON.stringify(kept.body)).to.equal(200);
      expect(kept.body.scope).to.equal('openid account:erase');
      granted = { ...granted, ...kept.body };
      expect((await update(granted, { ...web, scope: 'openid account:erase admin' })).status).to.equal(400);
      expect((await update(granted, { ...web, scope: 'openid account:erase account:export' })).status).to.equal(400);
    });

    it('R4 clients create without scope: the default set, no admin (client_credentials asking for admin → invalid_scope, /auth → invalid_scope)', async function () {
      const service = await createTestClient(servers.deps, {
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
      });
      expect(service.scope).to.equal(DEFAULT_SCOPE);
      const rp = await client.discovery(new URL(servers.issuer), service.client_id, service.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      for (const scope of ['admin', 'records:read admin', 'account:erase', 'account:export']) {
        expect(await oauthErrorOf(() => client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope })), scope).to.equal(
          'invalid_scope',
        );
      }
      const allowed = await client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope: 'records:read records:write' });
      expect(claimsOf(allowed.access_token).scope).to.equal('records:read records:write');

      const webClient = await createTestClient(servers.deps);
      expect(webClient.scope).to.equal(DEFAULT_SCOPE);
      const { url } = authorizationRequestTo(servers.issuer, webClient.client_id, {
        scope: 'openid records:read admin',
        resource: servers.apiUrl,
      });
      const response = await fetch(url, { redirect: 'manual' });
      const location = new URL(response.headers.get('Location') ?? '', servers.issuer);
      expect(`${location.origin}${location.pathname}`).to.equal(RP_REDIRECT);
      expect(location.searchParams.get('error')).to.equal('invalid_scope');
    });

    it('R4 a client stored without any scope metadata gets the default set: never admin or the account scopes', async function () {
      const clientId = `legacy-${storage}-${Date.now()}`;
      const secret = 'legacy-secret-that-is-long-enough-0123456789';
      await servers.deps.stores.clients.upsert({
        client_id: clientId,
        client_secret: secret,
        client_name: 'Legacy service',
        grant_types: ['client_credentials', 'authorization_code'],
        response_types: ['code'],
        redirect_uris: [RP_REDIRECT],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      const rp = await client.discovery(new URL(servers.issuer), clientId, secret, undefined, { execute: [client.allowInsecureRequests] });
      for (const scope of ['admin', 'account:erase', 'account:export']) {
        expect(await oauthErrorOf(() => client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope })), scope).to.equal(
          'invalid_scope',
        );
      }
      const allowed = await client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope: 'records:read' });
      expect(claimsOf(allowed.access_token).scope).to.equal('records:read');

      // The same at /auth, and the API scopes a user could consent to are the default ones only.
      const user = await createTestUser(servers.deps);
      const refused = authorizationRequestTo(servers.issuer, clientId, { scope: 'openid admin', resource: servers.apiUrl });
      const location = new URL((await fetch(refused.url, { redirect: 'manual' })).headers.get('Location') ?? '', servers.issuer);
      expect(location.searchParams.get('error')).to.equal('invalid_scope');
      const { html } = await loginUntilConsent(
        new Browserless(servers.issuer),
        (await authorizationRequest(rp, { scope: 'openid records:read records:write', resource: servers.apiUrl })).url,
        user,
      );
      expect(html).to.include('Read your records').and.include('records:write');
      // Everyday scopes only: nothing is marked, and Allow has the focus as usual.
      expect(html).to.not.include('scope-danger');
      expect(/<button[^>]*class="primary"[^>]*>Allow</.exec(html)?.[0]).to.include('autofocus');
    });

    it('R4 client_credentials never carries account:export or account:erase, even for a client that holds them', async function () {
      const service = await createTestClient(servers.deps, {
        grant_types: ['client_credentials', 'authorization_code'],
        post_logout_redirect_uris: [],
        scope: 'records:read account:export account:erase',
      });
      expect(service.scope).to.equal('records:read account:export account:erase');
      const rp = await client.discovery(new URL(servers.issuer), service.client_id, service.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      for (const scope of ['account:erase', 'records:read account:export']) {
        expect(await oauthErrorOf(() => client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope })), scope).to.equal(
          'invalid_scope',
        );
      }
      // The client's other scopes still work, so the refusals above are about the account scopes.
      const plain = await client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope: 'records:read' });
      expect(claimsOf(plain.access_token).scope).to.equal('records:read');
    });

    it('R4 the consent page words the account scopes plainly and marks them as dangerous, first', async function () {
      const rp = await createRp(servers, { scope: WITH_ACCOUNT_SCOPES });
      const user = await createTestUser(servers.deps);
      const { url } = await authorizationRequest(rp, {
        scope: 'openid records:read account:export account:erase',
        resource: servers.apiUrl,
      });
      const { html } = await loginUntilConsent(new Browserless(servers.issuer), url, user);
      const items = [...html.matchAll(/<li[^>]*>[\s\S]*?<\/li>/g)].map((m) => m[0]);
      const erase = items.find((li) => li.includes('account:erase'));
      const exportItem = items.find((li) => li.includes('account:export'));
      expect(erase, html).to.be.a('string');
      expect(erase).to.include('Permanently delete your account and all your records');
      expect(erase).to.match(/class="[^"]*scope-danger/);
      // Not colour alone: the warning is words a screen reader reads out.
      expect(erase).to.include('Cannot be undone');
      expect(exportItem).to.include('Download a copy of all your data');
      expect(exportItem).to.match(/class="[^"]*scope-danger/);
      const readItem = items.find((li) => li.includes('Read your records'));
      expect(readItem).to.not.match(/scope-danger/);
      // The dangerous ones come first, the erasure first of all; Enter does not allow them (no autofocus).
      expect(items.indexOf(erase!)).to.equal(0);
      expect(items.indexOf(exportItem!)).to.be.below(items.indexOf(readItem!));
      expect(/<button[^>]*class="primary"[^>]*>Allow</.exec(html)?.[0]).to.not.include('autofocus');
    });

    it('R4 account:erase is asked for on every authorization, even when the grant already holds it (prompt=none → consent_required)', async function () {
      const rp = await createRp(servers, { scope: WITH_ACCOUNT_SCOPES });
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      await userTokens(servers, rp, user, 'records:read account:erase', undefined, { browser });

      // Control: the session and the grant are good for what does not include account:erase.
      const quiet = await authorizationRequest(rp, { scope: 'openid records:read', resource: servers.apiUrl, prompt: 'none' });
      const control = await browser.follow(quiet.url);
      expect(control.url.searchParams.get('error'), control.url.href).to.equal(null);
      expect(control.url.searchParams.get('code')).to.be.a('string');

      const silent = await authorizationRequest(rp, {
        scope: 'openid records:read account:erase',
        resource: servers.apiUrl,
        prompt: 'none',
      });
      const refused = await browser.follow(silent.url);
      expect(`${refused.url.origin}${refused.url.pathname}`).to.equal(RP_REDIRECT);
      expect(refused.url.searchParams.get('error')).to.equal('consent_required');
      expect(refused.url.searchParams.get('code')).to.equal(null);

      // Without prompt=none: the consent page again, naming the erasure in plain words.
      const again = await authorizationRequest(rp, { scope: 'openid records:read account:erase', resource: servers.apiUrl });
      const { response, url } = await browser.follow(again.url);
      expect(url.pathname).to.match(/^\/interaction\//);
      const html = await response.text();
      expect(html).to.include('Permanently delete your account and all your records');
      // Allowing it finishes the request: a code, and a token with the scope.
      const form = formOf(html, '/confirm');
      const done = await browser.submit(form.action, { csrf: form.csrf });
      const tokens = await client.authorizationCodeGrant(
        rp,
        done.url,
        { pkceCodeVerifier: again.verifier, expectedState: again.state },
        { resource: servers.apiUrl },
      );
      expect(String(claimsOf(tokens.access_token).scope).split(' ')).to.include('account:erase');
    });
  });
}
