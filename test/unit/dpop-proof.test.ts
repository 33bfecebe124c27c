import { createHash, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';
import { checkDpopProof, DPOP_IAT_WINDOW, type DpopProofRequest } from '../../src/api/dpop-proof.ts';

const URL_ = 'https://api.example.test/v1/records';
const TOKEN = 'header.payload.signature';
const ath = (token: string): string => createHash('sha256').update(token, 'ascii').digest('base64url');

type Signer = { privateKey: CryptoKey; jwk: JWK; jkt: string };

async function signer(): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

/** A proof as a client makes it; `claims` and `header` override the good values. */
async function proof(key: Signer, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ jti: randomUUID(), htm: 'GET', htu: URL_, ath: ath(TOKEN), iat: Math.floor(Date.now() / 1000), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

const check = (key: Signer, value: DpopProofRequest['proof'], extra: Partial<DpopProofRequest> = {}) =>
  checkDpopProof({ proof: value, method: 'GET', url: URL_, accessToken: TOKEN, jkt: key.jkt, ...extra });

/** RFC 9449 §4.3, checked without HTTP or storage (the middleware adds the jti replay check). */
describe('issue 18 DPoP proof checking is a pure module (src/api/dpop-proof.ts)', function () {
  let key: Signer;
  before(async function () {
    key = await signer();
  });

  it('accepts a proof for this method, URL, token and bound key, and returns its jti to claim', async function () {
    const jti = randomUUID();
    expect(await check(key, await proof(key, { jti }))).to.deep.equal({ ok: true, jti });
    // A query string or fragment on the proof's htu is ignored (§4.3 check 9).
    expect((await check(key, await proof(key, { htu: `${URL_}?a=1#f` }))).ok).to.equal(true);
  });

  it('refuses a missing, repeated or malformed proof', async function () {
    const good = await proof(key);
    expect(await check(key, undefined)).to.include({ ok: false, error: 'invalid_dpop_proof' });
    expect(await check(key, [good, good])).to.deep.equal({
      ok: false,
      error: 'invalid_dpop_proof',
      detail: 'Send exactly one DPoP proof.',
    });
    expect(await check(key, `${good},${good}`)).to.include({ detail: 'Send exactly one DPoP proof.' });
    expect(await check(key, 'not-a-jws')).to.include({ detail: 'The DPoP proof is not a JWS.' });
  });

  it('refuses a wrong typ, a symmetric algorithm, a private or missing jwk, and a bad signature', async function () {
    expect(await check(key, await proof(key, {}, { typ: 'JWT' }))).to.include({ detail: 'The DPoP proof must have typ dpop+jwt.' });
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt' }).sign(new Uint8Array(32));
    expect(await check(key, hs)).to.include({ detail: 'The DPoP proof must use an asymmetric algorithm.' });
    expect(await check(key, await proof(key, {}, { jwk: { ...key.jwk, d: 'x' } }))).to.include({
      detail: 'The DPoP proof must carry the public key in its jwk header.',
    });
    const other = await signer();
    expect(await check(key, await proof(key, {}, { jwk: other.jwk }))).to.include({
      detail: 'The DPoP proof signature or claims are not valid.',
    });
  });

  it('refuses a stale or future iat, another method, URL or access token', async function () {
    const now = Math.floor(Date.now() / 1000);
    expect(await check(key, await proof(key, { iat: now - DPOP_IAT_WINDOW - 5 }))).to.include({
      detail: 'The DPoP proof is not fresh (iat).',
    });
    expect(await check(key, await proof(key, { iat: now + DPOP_IAT_WINDOW + 5 }))).to.include({
      detail: 'The DPoP proof is not fresh (iat).',
    });
    expect(await check(key, await proof(key, { htm: 'POST' }))).to.include({
      detail: 'The DPoP proof was made for another HTTP method (htm).',
    });
    expect(await check(key, await proof(key, { htu: 'https://api.example.test/v1/other' }))).to.include({
      detail: 'The DPoP proof was made for another URL (htu).',
    });
    expect(await check(key, await proof(key, { htu: 'no url' }))).to.include({ detail: 'The DPoP proof has an invalid htu.' });
    expect(await check(key, await proof(key, { ath: ath('another.token.value') }))).to.include({
      detail: 'The DPoP proof was made for another access token (ath).',
    });
  });

  it('answers invalid_token for a good proof made with a key the token is not bound to', async function () {
    const other = await signer();
    expect(await check(key, await proof(other))).to.deep.equal({
      ok: false,
      error: 'invalid_token',
      detail: 'The DPoP proof key is not the key this token is bound to.',
    });
  });

  it('refuses an overlong jti', async function () {
    expect(await check(key, await proof(key, { jti: 'j'.repeat(257) }))).to.include({ detail: 'The DPoP proof has an invalid jti.' });
  });
});
