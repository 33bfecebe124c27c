import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as client from 'openid-client';
import { createTestClient } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * private_key_jwt client authentication (RFC 7523) for a service, with docs/security.md T24:
 * replayed assertions (sequential and concurrent), alg none, HS256 keyed with the public key,
 * wrong audience, expired, and missing jti are all invalid_client. Both storage modes, since
 * the replay guard is atomic in each.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`private_key_jwt clients (${storage})`, function () {
    let servers: TestServers;
    let clientId: string;
    let privateKey: CryptoKey;
    let publicJwk: JWK;

    before(async function () {
      servers = await startTestServers({ storage });
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateKey = pair.privateKey;
      publicJwk = { ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' };
      const registered = await createTestClient(servers.deps, {
        client_name: 'Key-authenticated job',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [publicJwk] },
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'records:read',
      });
      clientId = registered.client_id;
      expect(registered).to.not.have.property('client_secret');
    });

    after(async function () {
      await servers.stop();
    });

    const assertion = (claims: { aud?: string; exp?: number; jti?: string | null } = {}) => {
      const jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(claims.aud ?? servers.issuer)
        .setIssuedAt()
        .setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 60);
      if (claims.jti !== null) jwt.setJti(claims.jti ?? randomUUID());
      return jwt.sign(privateKey);
    };

    const token = async (clientAssertion: string) => {
      const response = await fetch(`${servers.issuer}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: clientAssertion,
          resource: servers.apiUrl,
          scope: 'records:read',
        }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    it('authenticates with openid-client (PrivateKeyJwt) and calls the API', async function () {
      const rp = await client.discovery(new URL(servers.issuer), clientId, undefined, client.PrivateKeyJwt(privateKey), {
        execute: [client.allowInsecureRequests],
      });
      const tokens = await client.clientCredentialsGrant(rp, { resource: servers.apiUrl, scope: 'records:read' });
      const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
      expect(me.status).to.equal(200);
    });

    it('T24: a replayed assertion is refused', async function () {
      const once = await assertion();
      expect((await token(once)).status).to.equal(200);
      const replay = await token(once);
      expect(replay.status).to.equal(401);
      expect(replay.body.error).to.equal('invalid_client');
    });

    it('T24: the same assertion sent concurrently is accepted exactly once', async function () {
      const burst = await assertion();
      const results = await Promise.all(Array.from({ length: 10 }, () => token(burst)));
      expect(results.filter((r) => r.status === 200)).to.have.length(1);
      expect(results.filter((r) => r.body.error === 'invalid_client')).to.have.length(9);
    });

    it('T24: alg none, HS256 keyed with the public key, wrong aud, expired and jti-less assertions are refused', async function () {
      const [, payload] = (await assertion()).split('.');
      const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload!}.`;
      const hs256 = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(servers.issuer)
        .setIssuedAt()
        .setExpirationTime('1m')
        .setJti(randomUUID())
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
      const cases: [string, string][] = [
        ['alg none', none],
        ['HS256 with the public key', hs256],
        ['aud is another server', await assertion({ aud: 'https://other.example' })],
        ['expired', await assertion({ exp: Math.floor(Date.now() / 1000) - 120 })],
        ['no jti', await assertion({ jti: null })],
      ];
      for (const [name, value] of cases) {
        const result = await token(value);
        expect(result.status, name).to.equal(401);
        expect(result.body.error, name).to.equal('invalid_client');
      }
    });
  });
}
