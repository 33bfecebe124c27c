import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { oauthErrorOf, rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

/**
 * The whole relying-party journey with openid-client as a real RP: discovery, authorization
 * code + PKCE through our login and consent pages, ID token and userinfo, refresh rotation,
 * a call to the resource API, and RP-initiated logout. Run once per storage backend.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`OIDC flow with openid-client (${storage} storage)`, function () {
    let servers: TestServers;
    let rp: client.Configuration;
    let user: Awaited<ReturnType<typeof createTestUser>>;

    before(async function () {
      servers = await startTestServers({ storage });
      user = await createTestUser(servers.deps, { name: 'Ada Lovelace' });
      const registered = await createTestClient(servers.deps);
      rp = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
    });

    after(async function () {
      await servers.stop();
    });

    async function authorize(extra: Record<string, string> = {}) {
      const nonce = client.randomNonce();
      const { url, verifier, state } = await authorizationRequest(rp, {
        scope: 'openid profile email offline_access records:read',
        nonce,
        // OIDC Core §11: offline_access is honoured only together with prompt=consent.
        prompt: 'consent',
        resource: servers.apiUrl,
        ...extra,
      });
      const browser = new Browserless(servers.issuer);
      const callback = await signIn(browser, url, user);
      return { callback, verifier, state, nonce, browser };
    }

    it('publishes discovery metadata with secure defaults', function () {
      const meta = rp.serverMetadata();
      expect(meta.issuer).to.equal(servers.issuer);
      expect(meta.code_challenge_methods_supported).to.deep.equal(['S256']);
      expect(meta.response_types_supported).to.have.members(['code', 'none']);
      expect(meta.id_token_signing_alg_values_supported).to.include('RS256');
      expect(meta.authorization_response_iss_parameter_supported).to.equal(true);
    });

    it('serves a JWKS of public keys only (ES256, RS256, EdDSA)', async function () {
      const jwks = (await (await fetch(`${servers.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
      expect(jwks.keys.map((k) => k.alg)).to.include.members(['ES256', 'RS256', 'EdDSA']);
      for (const key of jwks.keys) expect(key).to.not.have.any.keys('d', 'p', 'q', 'dp', 'dq', 'qi');
    });

    it('runs code + PKCE, userinfo, API call, refresh rotation and logout', async function () {
      const { callback, verifier, state, nonce, browser } = await authorize();
      expect(callback.origin + callback.pathname).to.equal(RP_REDIRECT);
      expect(callback.searchParams.get('iss')).to.equal(servers.issuer);

      // Code → tokens for the API audience (resource indicator, RFC 8707).
      const tokens = await client.authorizationCodeGrant(
        rp,
        callback,
        {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
          idTokenExpected: true,
        },
        { resource: servers.apiUrl },
      );
      const claims = tokens.claims();
      expect(claims?.sub).to.equal(user.id);
      expect(claims?.email).to.equal(user.email);
      expect(claims?.amr).to.deep.equal(['pwd']);
      expect(claims?.acr).to.equal('urn:portcullis:loa:1');
      expect(tokens.refresh_token).to.be.a('string');

      // The access token is an RFC 9068 JWT for the API, and the API accepts it.
      const [headerPart] = tokens.access_token.split('.');
      expect(JSON.parse(Buffer.from(headerPart!, 'base64url').toString())).to.include({ typ: 'at+jwt', alg: 'ES256' });
      const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
      expect(me.status).to.equal(200);
      expect(await me.json()).to.deep.include({ sub: user.id, scope: 'records:read', roles: ['user'] });

      // Refresh without a resource: an opaque token for userinfo.
      const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token!);
      expect(refreshed.refresh_token).to.be.a('string').and.not.equal(tokens.refresh_token);
      const info = await client.fetchUserInfo(rp, refreshed.access_token, user.id);
      expect(info).to.deep.include({ sub: user.id, email: user.email, email_verified: false, name: 'Ada Lovelace' });

      // Rotation: the old refresh token is dead, and reusing it revokes the grant.
      const reuse = await rejectionOf(() => client.refreshTokenGrant(rp, tokens.refresh_token!));
      expect(reuse).to.be.instanceOf(client.ResponseBodyError);
      expect((reuse as client.ResponseBodyError).error).to.equal('invalid_grant');
      expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, refreshed.refresh_token!))).to.equal('invalid_grant');

      // RP-initiated logout: confirmation page, then back to the registered URI.
      const logoutUrl = client.buildEndSessionUrl(rp, {
        id_token_hint: tokens.id_token!,
        post_logout_redirect_uri: 'https://rp.example.test/bye',
        state: 'bye-state',
      });
      const { response: confirm, url: confirmUrl } = await browser.follow(logoutUrl);
      expect(confirmUrl.pathname).to.equal('/session/end');
      const page = await confirm.text();
      expect(page).to.include('Sign out');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)?.[1];
      expect(xsrf).to.be.a('string');
      const { url: landed } = await browser.submit('/session/end/confirm', { xsrf: xsrf!, logout: 'yes' });
      expect(landed.origin + landed.pathname).to.equal('https://rp.example.test/bye');
      expect(landed.searchParams.get('state')).to.equal('bye-state');

      // The session is gone: prompt=none now needs a login.
      const silent = await authorizationRequest(rp, { prompt: 'none', state: 's' });
      const { url: silentResult } = await browser.follow(silent.url);
      expect(silentResult.searchParams.get('error')).to.equal('login_required');
    });

    it('keeps the session: a second authorization needs neither password nor consent', async function () {
      const first = await authorize();
      const { url } = await authorizationRequest(rp, {
        scope: 'openid profile email offline_access records:read',
        state: 'again',
        resource: servers.apiUrl,
      });
      const { url: callback } = await first.browser.follow(url);
      expect(callback.origin + callback.pathname).to.equal(RP_REDIRECT);
      expect(callback.searchParams.get('code')).to.be.a('string');
    });

    it('rejects a redeemed authorization code and revokes what it issued (T15)', async function () {
      const { callback, verifier, state, nonce } = await authorize({ scope: 'openid offline_access' });
      const checks = { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce };
      const tokens = await client.authorizationCodeGrant(rp, callback, checks);
      expect(await oauthErrorOf(() => client.authorizationCodeGrant(rp, callback, checks))).to.equal('invalid_grant');
      expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, tokens.refresh_token!))).to.equal('invalid_grant');
    });
  });
}
