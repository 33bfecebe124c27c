import { createHash, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as client from 'openid-client';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { eventually } from '../helpers/wait.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { oauthErrorOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

type ProofKey = { privateKey: CryptoKey; jwk: JWK };

const proofKey = async (): Promise<ProofKey> => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: await exportJWK(publicKey) };
};

/** A DPoP proof (RFC 9449 §4.2) with every claim overridable, for the negative cases. */
async function proof(
  key: ProofKey,
  claims: { htm: string; htu: string; accessToken?: string; iat?: number; jti?: string; ath?: string },
  header: Record<string, unknown> = {},
) {
  const ath = claims.ath ?? (claims.accessToken ? createHash('sha256').update(claims.accessToken).digest('base64url') : undefined);
  return new SignJWT({ htm: claims.htm, htu: claims.htu, ...(ath ? { ath } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk, ...header })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .setJti(claims.jti ?? randomUUID())
    .sign(key.privateKey);
}

/**
 * Service-to-service tokens (client_credentials for the API, scopes limited to the client's),
 * introspection (RFC 7662) and revocation (RFC 7009), and DPoP-bound tokens (RFC 9449) as the
 * resource API enforces them. Run in both storage modes (the DPoP jti cache differs).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`service tokens, introspection, revocation and DPoP (${storage})`, function () {
    let servers: TestServers;
    let service: client.Configuration;
    let serviceId: string;
    let me: URL;

    before(async function () {
      servers = await startTestServers({ storage });
      const registered = await createTestClient(servers.deps, {
        client_name: 'Billing service',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'records:read',
      });
      serviceId = registered.client_id;
      service = await client.discovery(new URL(servers.issuer), serviceId, registered.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      me = new URL('/v1/me', servers.apiUrl);
    });

    after(async function () {
      await servers.stop();
    });

    it('client_credentials → JWT for the API → GET /v1/me as the service', async function () {
      const tokens = await client.clientCredentialsGrant(service, { resource: servers.apiUrl, scope: 'records:read' });
      expect(tokens.token_type.toLowerCase()).to.equal('bearer');
      expect(tokens.scope).to.equal('records:read');
      const response = await fetch(me, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
      expect(response.status).to.equal(200);
      expect(await response.json()).to.deep.include({ sub: serviceId, client_id: serviceId, scope: 'records:read', roles: [] });
      // Token issuance is noted (for idle-client disabling), in the background.
      await eventually(async () => {
        const listed = (await servers.deps.stores.clients.list()).find((c) => c.client_id === serviceId);
        expect(listed?.last_used_at, 'last_used_at of the service client').to.be.instanceOf(Date);
      });
    });

    it("limits client_credentials scopes to the client's registered ones (B15)", async function () {
      for (const scope of ['records:write', 'admin', 'records:read admin']) {
        expect(await oauthErrorOf(() => client.clientCredentialsGrant(service, { resource: servers.apiUrl, scope })), scope).to.equal(
          'invalid_scope',
        );
      }
    });

    it('T23: a client without client_credentials gets unauthorized_client', async function () {
      const web = await createTestClient(servers.deps);
      const rp = await client.discovery(new URL(servers.issuer), web.client_id, web.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      expect(await oauthErrorOf(() => client.clientCredentialsGrant(rp, { resource: servers.apiUrl }))).to.equal('unauthorized_client');
    });

    it('introspection: active for a live token, inactive for unknown, revoked or foreign ones', async function () {
      // Without a resource the client_credentials token is opaque, so the server can revoke it (and
      // carries no API scope: those are granted for the API resource only, R13).
      const { access_token: opaque } = await client.clientCredentialsGrant(service);
      const active = await client.tokenIntrospection(service, opaque);
      expect(active).to.include({ active: true, client_id: serviceId, token_type: 'Bearer' });
      expect((await client.tokenIntrospection(service, 'not-a-token')).active).to.equal(false);

      // Another confidential client may not learn about this service's tokens.
      const other = await createTestClient(servers.deps, {
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'records:read',
      });
      const otherRp = await client.discovery(new URL(servers.issuer), other.client_id, other.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      expect((await client.tokenIntrospection(otherRp, opaque)).active).to.equal(false);

      await client.tokenRevocation(service, opaque);
      expect((await client.tokenIntrospection(service, opaque)).active).to.equal(false);
    });

    it('introspection and revocation need client authentication', async function () {
      const response = await fetch(`${servers.issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: 'x', client_id: serviceId }),
      });
      expect(response.status).to.equal(401);
      expect(((await response.json()) as Record<string, unknown>).error).to.equal('invalid_client');
    });

    it('revoking a refresh token revokes its grant: the access tokens of the grant go inactive', async function () {
      this.timeout(30_000);
      const user = await createTestUser(servers.deps);
      const web = await createTestClient(servers.deps);
      const rp = await client.discovery(new URL(servers.issuer), web.client_id, web.client_secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const { url, verifier } = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent', state: 's' });
      const callback = await signIn(new Browserless(servers.issuer), url, user);
      const tokens = await client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: 's' });
      expect((await client.tokenIntrospection(rp, tokens.access_token)).active).to.equal(true);
      await client.tokenRevocation(rp, tokens.refresh_token!, { token_type_hint: 'refresh_token' });
      expect((await client.tokenIntrospection(rp, tokens.refresh_token!)).active).to.equal(false);
      expect((await client.tokenIntrospection(rp, tokens.access_token)).active).to.equal(false);
    });

    describe('DPoP (RFC 9449)', function () {
      let key: ProofKey;
      let bound: string;

      before(async function () {
        const keyPair = await client.randomDPoPKeyPair('ES256', { extractable: true });
        key = { privateKey: keyPair.privateKey, jwk: await exportJWK(keyPair.publicKey) };
        const tokens = await client.clientCredentialsGrant(
          service,
          { resource: servers.apiUrl, scope: 'records:read' },
          { DPoP: client.getDPoPHandle(service, keyPair) },
        );
        expect(tokens.token_type.toLowerCase()).to.equal('dpop');
        bound = tokens.access_token;
        const claims = JSON.parse(Buffer.from(bound.split('.')[1]!, 'base64url').toString()) as { cnf?: { jkt?: string } };
        expect(claims.cnf?.jkt).to.be.a('string');
      });

      const call = async (headers: Record<string, string>) => {
        const response = await fetch(me, { headers });
        return { status: response.status, challenge: response.headers.get('WWW-Authenticate') ?? '' };
      };

      it('accepts the bound token with a proof from openid-client', async function () {
        const keyPair = await client.randomDPoPKeyPair('ES256');
        const handle = client.getDPoPHandle(service, keyPair);
        const tokens = await client.clientCredentialsGrant(service, { resource: servers.apiUrl, scope: 'records:read' }, { DPoP: handle });
        const response = await client.fetchProtectedResource(service, tokens.access_token, me, 'GET', undefined, undefined, {
          DPoP: handle,
        });
        expect(response.status).to.equal(200);
        expect(((await response.json()) as Record<string, unknown>).sub).to.equal(serviceId);
      });

      it('accepts a hand-made valid proof', async function () {
        const result = await call({
          Authorization: `DPoP ${bound}`,
          DPoP: await proof(key, { htm: 'GET', htu: me.href, accessToken: bound }),
        });
        expect(result.status).to.equal(200);
      });

      it('refuses the bound token as a plain Bearer token, or without a proof', async function () {
        const asBearer = await call({ Authorization: `Bearer ${bound}` });
        expect(asBearer.status).to.equal(401);
        expect(asBearer.challenge)
          .to.match(/^DPoP /)
          .and.include('error="invalid_token"')
          .and.include('algs=');
        const noProof = await call({ Authorization: `DPoP ${bound}` });
        expect(noProof.status).to.equal(401);
        expect(noProof.challenge).to.include('error="invalid_dpop_proof"');
      });

      it('refuses proofs made with another key, for another request or token, stale, or unsigned', async function () {
        const other = await proofKey();
        const cases: [string, string][] = [
          ['other key', await proof(other, { htm: 'GET', htu: me.href, accessToken: bound })],
          ['wrong htm', await proof(key, { htm: 'POST', htu: me.href, accessToken: bound })],
          ['wrong htu', await proof(key, { htm: 'GET', htu: `${servers.apiUrl}/v1/other`, accessToken: bound })],
          ['wrong ath', await proof(key, { htm: 'GET', htu: me.href, accessToken: 'another-token' })],
          ['no ath', await proof(key, { htm: 'GET', htu: me.href })],
          ['stale iat', await proof(key, { htm: 'GET', htu: me.href, accessToken: bound, iat: Math.floor(Date.now() / 1000) - 600 })],
          ['future iat', await proof(key, { htm: 'GET', htu: me.href, accessToken: bound, iat: Math.floor(Date.now() / 1000) + 600 })],
          ['wrong typ', await proof(key, { htm: 'GET', htu: me.href, accessToken: bound }, { typ: 'JWT' })],
        ];
        const [h, p] = (await proof(key, { htm: 'GET', htu: me.href, accessToken: bound })).split('.');
        const noneHeader = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(h!, 'base64url').toString()), alg: 'none' })).toString(
          'base64url',
        );
        cases.push(['alg none', `${noneHeader}.${p!}.`]);
        for (const [name, dpop] of cases) {
          const result = await call({ Authorization: `DPoP ${bound}`, DPoP: dpop });
          expect(result.status, name).to.equal(401);
          expect(result.challenge, name).to.match(/^DPoP /);
        }
      });

      it('refuses a replayed proof, also when replayed concurrently', async function () {
        const once = await proof(key, { htm: 'GET', htu: me.href, accessToken: bound });
        expect((await call({ Authorization: `DPoP ${bound}`, DPoP: once })).status).to.equal(200);
        const replay = await call({ Authorization: `DPoP ${bound}`, DPoP: once });
        expect(replay.status).to.equal(401);
        expect(replay.challenge).to.include('invalid_dpop_proof');

        const burst = await proof(key, { htm: 'GET', htu: me.href, accessToken: bound });
        const results = await Promise.all(Array.from({ length: 10 }, () => call({ Authorization: `DPoP ${bound}`, DPoP: burst })));
        expect(results.filter((r) => r.status === 200)).to.have.length(1);
      });

      it('refuses the DPoP scheme for a token that is not bound', async function () {
        const plain = await client.clientCredentialsGrant(service, { resource: servers.apiUrl, scope: 'records:read' });
        const result = await call({
          Authorization: `DPoP ${plain.access_token}`,
          DPoP: await proof(key, { htm: 'GET', htu: me.href, accessToken: plain.access_token }),
        });
        expect(result.status).to.equal(401);
      });
    });
  });
}
