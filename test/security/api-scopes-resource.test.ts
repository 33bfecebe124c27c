import { expect } from 'chai';
import * as client from 'openid-client';
import { createRp } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { oauthErrorOf, rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

const WITH_ACCOUNT_SCOPES = 'openid offline_access profile email records:read records:write account:export account:erase';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const isJwt = (token: string) => token.split('.').length === 3;
const claimsOf = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

/**
 * R13 (issue 19, adversarial review of R4): API scopes listed as provider scopes were treated
 * as OpenID scopes when no `resource` was named: `/auth?scope=openid account:erase` → consent →
 * an opaque access token with scope `openid account:erase` (introspection: active, no aud), and
 * client_credentials with `scope=account:erase` got one too. API scopes are granted only for the
 * API resource (aud = API_URL): without `resource` they are dropped from authorization and
 * device requests (RFC 6749 §3.3: the answer's `scope` says what was granted) and refused with
 * invalid_scope at client_credentials; a grant never yields them as OpenID scopes, also a grant
 * stored before this rule. Both storage modes: grants and tokens live in the adapter.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13 API scopes only for the API resource (${storage} storage)`, function () {
    this.timeout(90_000);
    let servers: TestServers;
    let rp: client.Configuration;

    before(async function () {
      servers = await startTestServers({ storage });
      rp = await createRp(servers, { scope: WITH_ACCOUNT_SCOPES });
    });
    after(async function () {
      await servers.stop();
    });

    const introspect = (token: string) => client.tokenIntrospection(rp, token);

    /** Sign-in and consent through the real pages; returns the callback and the consent page's HTML. */
    async function consentTo(url: URL) {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      let { response, url: at } = await browser.follow(url);
      let consentPage = '';
      for (let step = 0; step < 4 && at.origin === browser.origin; step++) {
        const html = await response.text();
        if (html.includes('name="password"')) {
          const form = formOf(html, '/login');
          ({ response, url: at } = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password }));
        } else {
          consentPage = html;
          const form = formOf(html, '/confirm');
          ({ response, url: at } = await browser.submit(form.action, { csrf: form.csrf }));
        }
      }
      return { callback: at, consentPage, user };
    }

    it('R13 /auth without resource: the API scopes are dropped before consent; the token is opaque with the OpenID scopes only, and so is its refresh', async function () {
      const request = await authorizationRequest(rp, { scope: 'openid offline_access account:erase account:export', prompt: 'consent' });
      const { callback, consentPage } = await consentTo(request.url);
      expect(consentPage).to.include('Stay connected');
      expect(consentPage).not.to.include('Permanently delete');
      expect(consentPage).not.to.include('Download a copy');
      const tokens = await client.authorizationCodeGrant(rp, callback, {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
      });
      expect(tokens.scope).to.equal('openid offline_access');
      expect(isJwt(tokens.access_token)).to.equal(false);
      const introspected = await introspect(tokens.access_token);
      expect(introspected).to.include({ active: true, scope: 'openid offline_access' });
      expect(introspected).not.to.have.property('aud');

      const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token ?? '');
      expect(refreshed.scope).to.equal('openid offline_access');
      expect((await introspect(refreshed.access_token)).scope).to.equal('openid offline_access');
      // Nothing was granted to widen into.
      expect(
        await oauthErrorOf(() => client.refreshTokenGrant(rp, refreshed.refresh_token ?? '', { scope: 'openid account:erase' })),
      ).to.equal('invalid_scope');
      expect(
        await oauthErrorOf(() =>
          client.refreshTokenGrant(rp, refreshed.refresh_token ?? '', { scope: 'account:erase', resource: servers.apiUrl }),
        ),
      ).to.equal('invalid_scope');

      // Only API scopes and no resource: nothing would be granted, so it is refused before any sign-in.
      const only = await authorizationRequest(rp, { scope: 'account:erase records:read' });
      const { url: answered } = await new Browserless(servers.issuer).follow(only.url);
      expect(answered.origin).to.equal(new URL(RP_REDIRECT).origin);
      expect(Object.fromEntries(answered.searchParams)).to.include({ error: 'invalid_scope', state: only.state, iss: servers.issuer });
      expect(answered.searchParams.get('error_description')).to.include('resource');
    });

    it('R13 granted for the API at /auth: a token request without resource gets an opaque token without them; with resource a JWT with them (code and refresh)', async function () {
      const request = await authorizationRequest(rp, {
        scope: 'openid offline_access records:read account:export',
        resource: servers.apiUrl,
        prompt: 'consent',
      });
      const { callback, consentPage } = await consentTo(request.url);
      expect(consentPage).to.include('Download a copy').and.to.include('Read your records');
      const opaque = await client.authorizationCodeGrant(rp, callback, {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
      });
      expect(isJwt(opaque.access_token)).to.equal(false);
      expect(opaque.scope).to.equal('openid offline_access');
      expect((await introspect(opaque.access_token)).scope).to.equal('openid offline_access');

      const forApi = await client.refreshTokenGrant(rp, opaque.refresh_token ?? '', { resource: servers.apiUrl });
      expect(isJwt(forApi.access_token)).to.equal(true);
      expect(claimsOf(forApi.access_token)).to.include({ aud: servers.apiUrl, scope: 'records:read account:export' });

      const again = await client.refreshTokenGrant(rp, forApi.refresh_token ?? '');
      expect(isJwt(again.access_token)).to.equal(false);
      expect(again.scope).to.equal('openid offline_access');
      const asked = await client.refreshTokenGrant(rp, again.refresh_token ?? '', { scope: 'openid records:read' });
      expect(isJwt(asked.access_token)).to.equal(false);
      expect((await introspect(asked.access_token)).scope).to.equal('openid');
    });

    it('R13 a grant stored before this rule, holding API scopes as OpenID scopes, gives no opaque token with them', async function () {
      const request = await authorizationRequest(rp, {
        scope: 'openid offline_access records:read',
        resource: servers.apiUrl,
        prompt: 'consent',
      });
      const { callback } = await consentTo(request.url);
      const tokens = await client.authorizationCodeGrant(
        rp,
        callback,
        { pkceCodeVerifier: request.verifier, expectedState: request.state },
        { resource: servers.apiUrl },
      );
      // What the old consent route stored: the API scopes in the grant's OpenID part as well.
      const refresh = (await servers.deps.oidcAdapter('RefreshToken').find(tokens.refresh_token ?? '')) as { grantId: string } | undefined;
      expect(refresh?.grantId).to.be.a('string');
      const grants = servers.deps.oidcAdapter('Grant');
      const grant = (await grants.find(refresh?.grantId ?? '')) as { exp: number; openid: { scope: string }; rejected?: unknown };
      grant.openid.scope = `${grant.openid.scope} records:read account:erase`;
      delete grant.rejected;
      await grants.upsert(refresh?.grantId ?? '', grant, grant.exp - Math.floor(Date.now() / 1000));

      const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token ?? '');
      expect(isJwt(refreshed.access_token)).to.equal(false);
      expect(refreshed.scope).to.equal('openid offline_access');
      expect((await introspect(refreshed.access_token)).scope).to.equal('openid offline_access');
    });

    it('R13 device flow without resource: the API scopes are dropped from the confirmation page and the token', async function () {
      const registered = await createTestClient(servers.deps, {
        client_name: 'Device app',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'openid offline_access records:read',
      });
      const device = await client.discovery(new URL(servers.issuer), registered.client_id, undefined, client.None(), {
        execute: [client.allowInsecureRequests],
      });
      const started = await client.initiateDeviceAuthorization(device, { scope: 'openid offline_access records:read' });
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const page = await (await browser.follow(started.verification_uri_complete ?? '')).response.text();
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
      const confirm = await (await browser.submit('/device', { xsrf, user_code: started.user_code })).response.text();
      expect(confirm).to.include('Stay connected');
      expect(confirm).not.to.include('Read your records');
      const allow = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g;
      const forms = [...confirm.matchAll(allow)].find((m) => /Allow<\/button>/.test(m[2] ?? ''));
      const fields = Object.fromEntries(
        [...(forms?.[2] ?? '').matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [
          m[1] ?? '',
          m[2] ?? '',
        ]),
      );
      const allowed = await browser.submit((forms?.[1] ?? '').replaceAll('&amp;', '&'), fields);
      const login = formOf(await allowed.response.text(), '/login');
      const done = await (
        await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password })
      ).response.text();
      expect(done).to.include('Device connected');

      const tokens = await client.pollDeviceAuthorizationGrant(device, { ...started, interval: 0.01 });
      expect(isJwt(tokens.access_token)).to.equal(false);
      expect(tokens.scope).to.equal('openid offline_access');
      // And the resource cannot be added afterwards: nothing was granted for the API.
      const error = await rejectionOf(() => client.refreshTokenGrant(device, tokens.refresh_token ?? '', { resource: servers.apiUrl }));
      expect((error as client.ResponseBodyError | undefined)?.error).to.equal('invalid_target');
    });

    it('R13 client_credentials: an API scope without resource is refused with invalid_scope; no scope gives an opaque token, resource a JWT', async function () {
      const registered = await createTestClient(servers.deps, {
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        response_types: [],
        scope: 'records:read account:erase',
      });
      const service = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      for (const scope of ['account:erase', 'records:read', 'records:read account:erase']) {
        const error = (await rejectionOf(() => client.clientCredentialsGrant(service, { scope }))) as client.ResponseBodyError | undefined;
        expect(error?.error, scope).to.equal('invalid_scope');
        expect(error?.error_description, scope).to.include('resource');
      }
      const plain = await client.clientCredentialsGrant(service);
      expect(isJwt(plain.access_token)).to.equal(false);
      expect(plain.scope).to.equal(undefined);
      expect(await client.tokenIntrospection(service, plain.access_token))
        .to.include({ active: true })
        .and.not.to.have.property('scope');
      const jwt = await client.clientCredentialsGrant(service, { scope: 'records:read', resource: servers.apiUrl });
      expect(claimsOf(jwt.access_token)).to.include({ aud: servers.apiUrl, scope: 'records:read' });
    });
  });
}
