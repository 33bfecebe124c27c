import { expect } from 'chai';
import { createTestClient } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { formBody, rawRequest, type RawReply } from '../helpers/raw-http.ts';
import { freePort, startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const EVIL = 'evil.example';

/** Every absolute http(s) URL in a body or header value. */
const urlsIn = (text: string): string[] => text.match(/https?:\/\/[^\s"'<>,]+/g) ?? [];

/** The ways a request can name a host other than the issuer's. */
const foreignHosts = (issuer: string): { name: string; target: (path: string) => string; headers: Record<string, string> }[] => [
  { name: 'Host', target: (path) => path, headers: { Host: EVIL } },
  {
    name: 'X-Forwarded-Host/Proto',
    target: (path) => path,
    headers: { 'X-Forwarded-Host': EVIL, 'X-Forwarded-Proto': 'https', Forwarded: `host=${EVIL};proto=https` },
  },
  { name: 'absolute-form target', target: (path) => `http://${EVIL}${path}`, headers: {} },
  {
    name: 'all at once',
    target: (path) => `https://${EVIL}${path}`,
    headers: { Host: EVIL, 'X-Forwarded-Host': EVIL, 'X-Forwarded-Proto': 'https' },
  },
  {
    name: 'a second Host-like header',
    target: (path) => path,
    headers: { Host: new URL(issuer).host, 'X-Host': EVIL, 'X-Original-Host': EVIL },
  },
];

/**
 * R2 (issue 19): every URL the server emits is built from ISSUER (the API: API_URL), never from
 * Host, X-Forwarded-Host or an absolute-form request target. Before the fix, one discovery
 * request with `Host: evil.example` on a fresh instance made every later caller get endpoints on
 * http://evil.example (the metadata cache keeps the first answer).
 */
describe('R2 emitted URLs come from ISSUER, never from the request', function () {
  this.timeout(60_000);

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    for (const trustProxy of [false, true]) {
      describe(`${storage} storage, TRUST_PROXY=${trustProxy}`, function () {
        let servers: TestServers;

        before(async function () {
          servers = await startTestServers({ storage, env: { TRUST_PROXY: String(trustProxy) } });
        });

        after(async function () {
          await servers.stop();
        });

        const expectIssuerUrls = (reply: RawReply, what: string): void => {
          const text = `${reply.body} ${reply.headers.location ?? ''} ${reply.headers['www-authenticate'] ?? ''}`;
          expect(text, what).not.to.include(EVIL);
          for (const url of urlsIn(text).filter((u) => !u.startsWith('https://rp.example.test'))) {
            expect(
              url.startsWith(`${servers.issuer}/`) || url === servers.issuer || url.startsWith(servers.apiUrl),
              `${what}: ${url}`,
            ).to.equal(true);
          }
        };

        it('R2 first requests naming another host (Host, X-Forwarded-Host, absolute-form) get ISSUER URLs, and so does every later caller', async function () {
          for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/jwks']) {
            for (const foreign of foreignHosts(servers.issuer)) {
              const reply = await rawRequest(servers.issuer, { target: foreign.target(path), headers: foreign.headers });
              expect(reply.status, `${path} with ${foreign.name}`).to.equal(200);
              expectIssuerUrls(reply, `${path} with ${foreign.name}`);
            }
          }
          const discovery = (await (await fetch(`${servers.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
          expect(discovery.issuer).to.equal(servers.issuer);
          for (const key of [
            'authorization_endpoint',
            'token_endpoint',
            'jwks_uri',
            'registration_endpoint',
            'device_authorization_endpoint',
            'userinfo_endpoint',
            'end_session_endpoint',
            'introspection_endpoint',
            'revocation_endpoint',
          ]) {
            expect(String(discovery[key]), key).to.match(new RegExp(`^${servers.issuer.replace(/[.]/g, '\\.')}/`));
          }
          expect(JSON.stringify(discovery)).not.to.include(EVIL);
        });

        it('R2 device verification_uri(_complete), registration_client_uri and the interaction redirect use ISSUER whatever the request names', async function () {
          const device = await createTestClient(servers.deps, {
            token_endpoint_auth_method: 'none',
            grant_types: [DEVICE_GRANT],
            redirect_uris: [],
            post_logout_redirect_uris: [],
            scope: 'openid',
          });
          const web = await createTestClient(servers.deps, { token_endpoint_auth_method: 'none' });
          for (const foreign of foreignHosts(servers.issuer)) {
            const started = await rawRequest(servers.issuer, {
              method: 'POST',
              target: foreign.target('/device/auth'),
              headers: { ...foreign.headers, 'Content-Type': 'application/x-www-form-urlencoded' },
              body: formBody({ client_id: device.client_id, scope: 'openid' }),
            });
            expect(started.status, `${foreign.name}: ${started.body}`).to.equal(200);
            const body = JSON.parse(started.body) as { verification_uri: string; verification_uri_complete: string };
            expect(body.verification_uri, foreign.name).to.equal(`${servers.issuer}/device`);
            expect(body.verification_uri_complete, foreign.name).to.match(
              new RegExp(`^${servers.issuer.replace(/[.]/g, '\\.')}/device\\?user_code=`),
            );

            const { token } = await servers.deps.stores.initialAccessTokens.create({});
            const registered = await rawRequest(servers.issuer, {
              method: 'POST',
              target: foreign.target('/reg'),
              headers: { ...foreign.headers, 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
              body: JSON.stringify({ client_name: 'R2', redirect_uris: ['https://rp.example.test/cb'] }),
            });
            expect(registered.status, registered.body).to.equal(201);
            const client = JSON.parse(registered.body) as {
              client_id: string;
              registration_client_uri: string;
              registration_access_token: string;
            };
            expect(client.registration_client_uri, foreign.name).to.equal(`${servers.issuer}/reg/${client.client_id}`);
            const read = await rawRequest(servers.issuer, {
              target: foreign.target(`/reg/${client.client_id}`),
              headers: { ...foreign.headers, Authorization: `Bearer ${client.registration_access_token}` },
            });
            expect(read.status, read.body).to.equal(200);
            expect((JSON.parse(read.body) as { registration_client_uri: string }).registration_client_uri, foreign.name).to.equal(
              `${servers.issuer}/reg/${client.client_id}`,
            );

            const { url } = authorizationRequestTo(servers.issuer, web.client_id);
            const auth = await rawRequest(servers.issuer, {
              target: foreign.target(`${url.pathname}${url.search}`),
              headers: foreign.headers,
            });
            expect(auth.status, `${foreign.name}: ${auth.body}`).to.equal(303);
            expect(auth.headers.location, foreign.name).to.match(
              new RegExp(`^${servers.issuer.replace(/[.]/g, '\\.')}/interaction/[\\w-]+$`),
            );
            expectIssuerUrls(auth, `/auth with ${foreign.name}`);
          }
        });

        it('R2 pages post to ISSUER: the sign-out page and the device code page', async function () {
          for (const foreign of foreignHosts(servers.issuer)) {
            const logout = await rawRequest(servers.issuer, {
              target: foreign.target('/session/end'),
              headers: { ...foreign.headers, Accept: 'text/html' },
            });
            expect(logout.status, logout.body).to.equal(200);
            // Without a session the provider's own page posts the sign-out straight to its confirm endpoint.
            expect(logout.body, foreign.name).to.include(`action="${servers.issuer}/session/end/confirm"`);
            expectIssuerUrls(logout, `/session/end with ${foreign.name}`);
            const devicePage = await rawRequest(servers.issuer, {
              target: foreign.target('/device'),
              headers: { ...foreign.headers, Accept: 'text/html' },
            });
            expect(devicePage.status, devicePage.body).to.equal(200);
            expect(devicePage.body, foreign.name).to.include(`action="${servers.issuer}/device"`);
            expectIssuerUrls(devicePage, `/device with ${foreign.name}`);
          }
        });

        it('R2 the API: protected-resource metadata and the 401 challenge name API_URL whatever the request names', async function () {
          for (const foreign of foreignHosts(servers.apiUrl)) {
            const metadata = await rawRequest(servers.apiUrl, {
              target: foreign.target('/.well-known/oauth-protected-resource'),
              headers: foreign.headers,
            });
            expect(metadata.status).to.equal(200);
            expect(JSON.parse(metadata.body)).to.include({ resource: servers.apiUrl });
            expectIssuerUrls(metadata, `API metadata with ${foreign.name}`);
            const challenge = await rawRequest(servers.apiUrl, { target: foreign.target('/v1/me'), headers: foreign.headers });
            expect(challenge.status).to.equal(401);
            expect(challenge.headers['www-authenticate']).to.include(
              `resource_metadata="${servers.apiUrl}/.well-known/oauth-protected-resource"`,
            );
            expectIssuerUrls(challenge, `API 401 with ${foreign.name}`);
          }
        });

        it('R2 internal callers by another name keep working: the JWKS at http://auth:3000/jwks, health checks by address', async function () {
          const jwks = await rawRequest(servers.issuer, { target: '/jwks', headers: { Host: 'auth:3000' } });
          expect(jwks.status).to.equal(200);
          expect((JSON.parse(jwks.body) as { keys: unknown[] }).keys.length).to.be.greaterThan(0);
          for (const path of ['/healthz', '/readyz']) {
            expect((await rawRequest(servers.issuer, { target: path, headers: { Host: '10.1.2.3:3000' } })).status, path).to.equal(200);
          }
        });
      });
    }
  }

  it('R2 an https ISSUER behind a TLS-offloading proxy: Secure cookies and https URLs, with or without TRUST_PROXY, whatever X-Forwarded-Proto says', async function () {
    for (const trustProxy of [false, true]) {
      const port = await freePort();
      const https = await startTestServers({
        env: { TRUST_PROXY: String(trustProxy), ISSUER: 'https://auth.example.test', AUTH_PORT: String(port) },
      });
      try {
        const web = await createTestClient(https.deps, { token_endpoint_auth_method: 'none' });
        const { url } = authorizationRequestTo('https://auth.example.test', web.client_id);
        const origin = `http://127.0.0.1:${port}`;
        for (const proto of [undefined, 'http']) {
          const auth = await rawRequest(origin, {
            target: `${url.pathname}${url.search}`,
            headers: { Host: 'auth.example.test', ...(proto ? { 'X-Forwarded-Proto': proto } : {}) },
          });
          expect(auth.status, `TRUST_PROXY=${trustProxy} X-Forwarded-Proto=${proto}: ${auth.body}`).to.equal(303);
          expect(auth.headers.location).to.match(/^https:\/\/auth\.example\.test\/interaction\//);
          const cookies = auth.headers['set-cookie'] ?? [];
          expect(cookies.length).to.be.greaterThan(0);
          for (const cookie of cookies) expect(cookie, cookie).to.match(/;\s*secure/i);
        }
      } finally {
        await https.stop();
      }
    }
  });
});
