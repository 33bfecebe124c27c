import { expect } from 'chai';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import type * as client from 'openid-client';
import { call, createRp, openApiChecker, userTokens } from '../helpers/api.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * docs/security.md T44 / ASVS V9: the API accepts only JWT access tokens that our issuer signed with
 * an asymmetric key from its JWKS, for this audience, of type at+jwt, within their lifetime, in
 * the Authorization header. Every forged variant below is refused with 401 invalid_token.
 */
describe('resource API: JWT attacks (T44)', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let rp: client.Configuration;
  let realToken: string;
  let idToken: string;
  let claims: JWTPayload;
  let signingJwk: JWK;
  let conforms: Awaited<ReturnType<typeof openApiChecker>>;

  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

  /** Signs with the issuer's real ES256 key: only the claim or header under test is wrong. */
  async function signWithIssuerKey(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
    const key = await importJWK(signingJwk, 'ES256');
    return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signingJwk.kid as string, ...header }).sign(key);
  }

  before(async function () {
    servers = await startTestServers();
    rp = await createRp(servers);
    conforms = await openApiChecker(servers);
    const user = await createTestUser(servers.deps);
    const tokens = await userTokens(servers, rp, user, 'records:read');
    realToken = tokens.access_token;
    idToken = tokens.id_token as string;
    claims = JSON.parse(Buffer.from(realToken.split('.')[1] as string, 'base64url').toString()) as JWTPayload;
    const { keys } = await servers.deps.keys.privateJwks();
    signingJwk = keys.find((k) => k.alg === 'ES256') as JWK;
  });
  after(async function () {
    await servers.stop();
  });

  async function expectRejected(token: string, path = '/v1/me'): Promise<void> {
    const res = await call(servers, 'GET', path, token);
    expect(res.status, res.text).to.equal(401);
    expect(res.headers.get('WWW-Authenticate')).to.match(/^Bearer .*error="invalid_token"/);
    expect(res.body).to.have.property('type', 'urn:portcullis:problem:invalid-token');
    conforms('GET', '/v1/me', res);
  }

  it('accepts the real token and a correctly re-signed copy (the harness forges faithfully)', async function () {
    expect((await call(servers, 'GET', '/v1/me', realToken)).status).to.equal(200);
    expect((await call(servers, 'GET', '/v1/me', await signWithIssuerKey(claims))).status).to.equal(200);
  });

  it('rejects alg "none"', async function () {
    await expectRejected(`${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`);
    await expectRejected(`${b64({ alg: 'none', typ: 'at+jwt', kid: signingJwk.kid })}.${b64(claims)}.`);
  });

  it('rejects HS256 signed with the issuer public key (key confusion)', async function () {
    const { d: _d, ...publicJwk } = signingJwk;
    const publicKey = await importJWK(publicJwk, 'ES256');
    const pem = await exportSPKI(publicKey as CryptoKey);
    for (const secret of [Buffer.from(pem), Buffer.from(JSON.stringify(publicJwk))]) {
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signingJwk.kid as string })
        .sign(secret);
      await expectRejected(forged);
    }
  });

  it('rejects an unknown kid and attacker keys named by jwk/jku/x5u headers', async function () {
    const attacker = await generateKeyPair('ES256', { extractable: true });
    const attackerJwk = await exportJWK(attacker.publicKey);
    const sign = (header: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...header }).sign(attacker.privateKey);
    await expectRejected(await sign({ kid: 'unknown-kid' }));
    await expectRejected(await sign({ kid: signingJwk.kid }));
    await expectRejected(await sign({ jwk: attackerJwk }));
    await expectRejected(await sign({ kid: 'attacker', jku: 'https://attacker.example/jwks.json' }));
    await expectRejected(await sign({ kid: 'attacker', x5u: 'https://attacker.example/cert.pem' }));
  });

  it('rejects expired and not-yet-valid tokens (beyond the 5 s leeway)', async function () {
    const now = Math.floor(Date.now() / 1000);
    await expectRejected(await signWithIssuerKey({ ...claims, iat: now - 600, exp: now - 60 }));
    await expectRejected(await signWithIssuerKey({ ...claims, nbf: now + 120 }));
  });

  it('refuses an expired token before checking its signature, and still checks exp within the leeway', async function () {
    const now = Math.floor(Date.now() / 1000);
    const detail = async (token: string) => ((await call(servers, 'GET', '/v1/me', token)).body as { detail?: string }).detail;
    // Refusing costs no signature check (issue 8): a forged expired token is refused as expired.
    const [h, , s] = realToken.split('.');
    const forgedExpired = `${h}.${b64({ ...claims, iat: now - 600, exp: now - 60 })}.${s}`;
    await expectRejected(forgedExpired);
    expect(await detail(forgedExpired)).to.equal('The access token has expired.');
    // A forged token that is not expired still fails on its signature.
    const forgedFresh = await call(servers, 'GET', '/v1/me', `${h}.${b64({ ...claims, exp: now + 3000 })}.${s}`);
    expect(forgedFresh.status, forgedFresh.text).to.equal(401);
    expect((forgedFresh.body as { detail?: string }).detail).to.equal('The access token is not valid.');
    // Inside the 5 s leeway the token is accepted; just beyond it, refused.
    expect((await call(servers, 'GET', '/v1/me', await signWithIssuerKey({ ...claims, exp: now - 2 }))).status).to.equal(200);
    expect(await detail(await signWithIssuerKey({ ...claims, iat: now - 600, exp: now - 10 }))).to.equal('The access token has expired.');
  });

  it('rejects a wrong issuer, another audience and a wrong typ', async function () {
    await expectRejected(await signWithIssuerKey({ ...claims, iss: 'https://evil.example' }));
    await expectRejected(await signWithIssuerKey({ ...claims, aud: 'https://other-api.example' }));
    await expectRejected(await signWithIssuerKey(claims, { typ: 'JWT' }));
    await expectRejected(await signWithIssuerKey(claims, { typ: undefined }));
  });

  it('rejects an ID token presented as an access token', async function () {
    await expectRejected(idToken);
  });

  it('rejects a tampered payload and a token in the query string', async function () {
    const [h, , s] = realToken.split('.');
    await expectRejected(`${h}.${b64({ ...claims, scope: 'records:read records:write admin' })}.${s}`);
    const res = await call(servers, 'GET', `/v1/me?access_token=${realToken}`);
    expect(res.status).to.equal(401);
    expect(res.headers.get('WWW-Authenticate')).to.match(/error="invalid_token"/);
  });
});
