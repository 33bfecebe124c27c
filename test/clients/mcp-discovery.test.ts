import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/** The parameters of the first challenge in a WWW-Authenticate header. */
function challengeParams(header: string): Record<string, string> {
  return Object.fromEntries([...header.matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

/**
 * What an MCP-style client does with nothing but the API's URL and an initial access token:
 * bare 401 → RFC 9728 protected-resource metadata → RFC 8414 AS metadata → RFC 7591
 * registration → authorization code + PKCE on a loopback redirect (RFC 8252) → a token for
 * that resource (RFC 8707) → 200.
 */
describe('MCP-style discovery walk from a bare 401', function () {
  let servers: TestServers;
  let user: Awaited<ReturnType<typeof createTestUser>>;
  let initialAccessToken: string;

  before(async function () {
    servers = await startTestServers();
    user = await createTestUser(servers.deps);
    ({ token: initialAccessToken } = await servers.deps.stores.initialAccessTokens.create({ note: 'mcp test', maxUses: 1 }));
  });

  after(async function () {
    await servers.stop();
  });

  it('serves RFC 9728 metadata for the API', async function () {
    const response = await fetch(`${servers.apiUrl}/.well-known/oauth-protected-resource`);
    expect(response.status).to.equal(200);
    expect(await response.json()).to.deep.include({
      resource: servers.apiUrl,
      authorization_servers: [servers.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['records:read', 'records:write', 'account:export', 'account:erase', 'admin'],
    });
  });

  it('points every 401 and 403 challenge at the metadata', async function () {
    const metadata = `${servers.apiUrl}/.well-known/oauth-protected-resource`;
    const bad = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: 'Bearer nope' } });
    expect(bad.status).to.equal(401);
    expect(challengeParams(bad.headers.get('WWW-Authenticate') ?? '')).to.include({ error: 'invalid_token', resource_metadata: metadata });

    // A valid token without the route's scope: 403 insufficient_scope, raised by the API's routes.
    const service = await createTestClient(servers.deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      scope: 'records:read',
    });
    const rp = await client.discovery(new URL(servers.issuer), service.client_id, service.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const { access_token: noScope } = await client.clientCredentialsGrant(rp, { resource: servers.apiUrl });
    const forbidden = await fetch(`${servers.apiUrl}/v1/records`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${noScope}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(forbidden.status).to.equal(403);
    expect(challengeParams(forbidden.headers.get('WWW-Authenticate') ?? '')).to.include({
      error: 'insufficient_scope',
      resource_metadata: metadata,
    });
  });

  it('walks from the 401 to a working token, unaided', async function () {
    this.timeout(30_000);
    // 1. A bare request: 401 with resource_metadata (RFC 9728 §5.1), no error code (RFC 6750 §3.1).
    const bare = await fetch(`${servers.apiUrl}/v1/me`);
    expect(bare.status).to.equal(401);
    const challenge = bare.headers.get('WWW-Authenticate') ?? '';
    expect(challenge).to.match(/^Bearer /);
    expect(challenge).to.not.include('error=');
    const metadataUrl = challengeParams(challenge).resource_metadata!;

    // 2. Protected-resource metadata names the authorization server.
    const resource = (await (await fetch(metadataUrl)).json()) as { resource: string; authorization_servers: string[] };
    expect(resource.resource).to.equal(servers.apiUrl);
    const issuer = new URL(resource.authorization_servers[0]!);

    // 3 + 4. AS metadata, then dynamic registration with the initial access token.
    const port = 50_000 + Math.floor(Math.random() * 10_000);
    const rp = await client.dynamicClientRegistration(
      issuer,
      {
        client_name: 'MCP client',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid records:read',
      },
      client.None(),
      { initialAccessToken, execute: [client.allowInsecureRequests] },
    );
    expect(rp.serverMetadata().registration_endpoint).to.equal(`${servers.issuer}/reg`);
    expect(rp.clientMetadata()).to.not.have.property('client_secret');

    // 5. Authorization code + PKCE on an ephemeral loopback port (RFC 8252 §7.3), for the API.
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const { url, verifier } = await authorizationRequest(rp, {
      redirect_uri: redirectUri,
      scope: 'openid records:read',
      resource: resource.resource,
      state: 'mcp',
    });
    const callback = await signIn(new Browserless(servers.issuer), url, user);
    expect(`${callback.origin}${callback.pathname}`).to.equal(redirectUri);

    // 6. The token is for the resource, and the resource accepts it.
    const tokens = await client.authorizationCodeGrant(
      rp,
      callback,
      { pkceCodeVerifier: verifier, expectedState: 'mcp' },
      { resource: resource.resource },
    );
    const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).to.equal(200);
    expect(await me.json()).to.deep.include({ sub: user.id, scope: 'records:read' });

    // T4: only the registered loopback path on 127.0.0.1 with any port.
    for (const wrong of [
      `http://127.0.0.1:${port}/callback?x=1`,
      `http://127.0.0.1:${port}/other`,
      `http://localhost:${port}/callback`,
      `http://127.0.0.2:${port}/callback`,
    ]) {
      const attempt = await authorizationRequest(rp, { redirect_uri: wrong });
      const response = await fetch(attempt.url, { redirect: 'manual' });
      expect(response.status, wrong).to.equal(400);
      expect(response.headers.get('Location'), wrong).to.equal(null);
    }

    // The initial access token was single-use.
    const again = await rejectionOf(() =>
      client.dynamicClientRegistration(issuer, { redirect_uris: ['https://x.example/cb'] }, undefined, {
        initialAccessToken,
        execute: [client.allowInsecureRequests],
      }),
    );
    expect(again).to.be.instanceOf(Error);
  });
});
