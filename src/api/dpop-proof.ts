import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';

/** DPoP proof algorithms: asymmetric only (RFC 9449 §4.3 check 5); also published in our RFC 9728 metadata. */
export const DPOP_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'];

/** How far a proof's iat may be from now, seconds (RFC 9449 §11.1). */
export const DPOP_IAT_WINDOW = 60;

/** How long a proof's jti is remembered: past both ends of the iat window, plus clock skew. */
export const DPOP_REPLAY_TTL_SECONDS = DPOP_IAT_WINDOW * 2 + 5;

export type DpopProofRequest = {
  /** The request's DPoP header(s), as Node gives them. */
  proof: string | string[] | undefined;
  /** The request's HTTP method (htm). */
  method: string;
  /** This request's URL as the client addressed it: scheme, host and path, no query (htu). */
  url: string;
  /** The access token the proof must be made for (ath). */
  accessToken: string;
  /** The key thumbprint the token is bound to (cnf.jkt). */
  jkt: string;
  /** Seconds since the epoch; the clock by default. */
  now?: number;
};

/**
 * `invalid_dpop_proof`: the proof is missing or wrong. `invalid_token`: a good proof made with a
 * key other than the one the token is bound to (RFC 9449 §7.1).
 */
export type DpopProofResult = { ok: true; jti: string } | { ok: false; error: 'invalid_dpop_proof' | 'invalid_token'; detail: string };

const refused = (detail: string): DpopProofResult => ({ ok: false, error: 'invalid_dpop_proof', detail });
const invalid = (why: string): DpopProofResult => refused(`The DPoP proof ${why}.`);

/** The proof's htu without query and fragment, or undefined when it is not a URL. */
function htuOf(value: unknown): string | undefined {
  try {
    const url = new URL(String(value));
    url.search = '';
    url.hash = '';
    return url.href;
  } catch {
    return undefined;
  }
}

/**
 * RFC 9449 §4.3: checks a DPoP proof for one request and one bound access token, without HTTP
 * or storage. The caller still claims the returned jti once (the replay check, §11.1) before it
 * accepts the request. Checks run in the RFC's order and stop at the first failure.
 */
export async function checkDpopProof(request: DpopProofRequest): Promise<DpopProofResult> {
  const { proof, method, url, accessToken, jkt, now = Math.floor(Date.now() / 1000) } = request;
  if (proof === undefined) return refused('This access token is DPoP-bound: send a DPoP proof header.');
  if (Array.isArray(proof) || proof.includes(',') || proof.length > 8192) return refused('Send exactly one DPoP proof.');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    return invalid('is not a JWS');
  }
  if (header.typ !== 'dpop+jwt') return invalid('must have typ dpop+jwt');
  if (typeof header.alg !== 'string' || !DPOP_ALGS.includes(header.alg)) return invalid('must use an asymmetric algorithm');
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object' || 'd' in jwk || 'k' in jwk) return invalid('must carry the public key in its jwk header');
  let payload: JWTPayload & { htm?: unknown; htu?: unknown; ath?: unknown };
  try {
    const key = await importJWK(jwk, header.alg);
    ({ payload } = await jwtVerify(proof, key, {
      typ: 'dpop+jwt',
      algorithms: DPOP_ALGS,
      requiredClaims: ['jti', 'iat', 'htm', 'htu', 'ath'],
    }));
  } catch {
    return invalid('signature or claims are not valid');
  }
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > DPOP_IAT_WINDOW) return invalid('is not fresh (iat)');
  if (payload.htm !== method) return invalid('was made for another HTTP method (htm)');
  const htu = htuOf(payload.htu);
  if (htu === undefined) return invalid('has an invalid htu');
  if (htu !== url) return invalid('was made for another URL (htu)');
  const ath = createHash('sha256').update(accessToken, 'ascii').digest('base64url');
  if (payload.ath !== ath) return invalid('was made for another access token (ath)');
  if ((await calculateJwkThumbprint(jwk, 'sha256')) !== jkt) {
    return { ok: false, error: 'invalid_token', detail: 'The DPoP proof key is not the key this token is bound to.' };
  }
  if (typeof payload.jti !== 'string' || payload.jti.length > 256) return invalid('has an invalid jti');
  return { ok: true, jti: payload.jti };
}
