import { createRemoteJWKSet, customFetch, errors as joseErrors, type FetchImplementation, jwtVerify, type JWTPayload } from 'jose';
import type { Context, Middleware } from 'koa';
import type { ReplayStore } from '../store/dpop-replay.ts';
import { currentRequestId } from '../shared/koa-request-logger.ts';
import type { TlsFetch } from '../shared/tls.ts';
import type { BearerObserver } from '../shared/metrics.ts';
import { invalidToken, missingToken, Problem, problemType, serviceUnavailable } from '../shared/problem.ts';
import { checkDpopProof, DPOP_ALGS, DPOP_REPLAY_TTL_SECONDS } from './dpop-proof.ts';

export type AccessTokenClaims = JWTPayload & {
  sub: string;
  client_id: string;
  scope?: string;
  auth_time?: number;
  acr?: string;
  amr?: string[];
  cnf?: { jkt?: string };
};

export type AuthState = { token: AccessTokenClaims; scopes: Set<string> };

const ACCEPTED_ALGS = ['ES256', 'EdDSA', 'RS256', 'PS256'];

const TOKEN68 = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i;

/** Seconds of clock skew allowed on exp and nbf. */
const CLOCK_TOLERANCE = 5;

/**
 * True when the (unverified) token says it expired beyond the leeway. Such a token is refused
 * before its signature is checked: the answer is 401 whether or not the signature is good, and
 * refusing must not cost more than accepting (issue 8). A token this does not decode is left to
 * jwtVerify, which also checks exp again on every token it accepts.
 */
function plainlyExpired(token: string): boolean {
  // Only the payload segment, with Node's native base64url decoder: jose's decodeJwt decodes in
  // JavaScript (atob and a byte loop), twice as slow, on every accepted token (issue 8).
  const start = token.indexOf('.') + 1;
  const end = token.indexOf('.', start);
  if (start === 0 || end === -1) return false;
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.slice(start, end), 'base64url').toString('utf8'));
    const exp = typeof claims === 'object' && claims !== null ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && exp + CLOCK_TOLERANCE < Date.now() / 1000;
  } catch {
    return false;
  }
}

type Challenge = Record<string, string>;

const quoted = (params: Challenge): string =>
  Object.entries(params)
    .map(([k, v]) => `${k}="${v.replace(/["\\]/g, '')}"`)
    .join(', ');

/** RFC 9449 §7.1: a DPoP challenge (with the algorithms we accept) for errors about DPoP-bound tokens. */
const dpopProblem = (error: 'invalid_token' | 'invalid_dpop_proof', detail: string, challenge: Challenge): Problem =>
  new Problem({
    status: 401,
    type: problemType(error === 'invalid_dpop_proof' ? 'invalid-dpop-proof' : 'invalid-token'),
    title: error === 'invalid_dpop_proof' ? 'Invalid DPoP proof' : 'Invalid access token',
    detail,
    headers: { 'WWW-Authenticate': `DPoP ${quoted({ ...challenge, error, error_description: detail, algs: DPOP_ALGS.join(' ') })}` },
  });

export type BearerAuthOptions = {
  issuer: string;
  audience: string;
  jwksUrl: string;
  /** jti replay cache for DPoP proofs; without it DPoP-bound tokens are refused (fail closed). */
  dpopReplay?: ReplayStore;
  /** Extra challenge parameters on every 401, e.g. RFC 9728 resource_metadata. */
  challenge?: Challenge;
  /** Public base URL of this API, for the proof's htu (behind a proxy the Host may differ). */
  publicUrl?: string;
  /** fetch for the JWKS: a private CA and client certificate (mTLS, API_CLIENT_CERT_FILE…). */
  fetch?: TlsFetch;
  /** Metrics: JWKS fetches (cache misses) and verification results. */
  observe?: BearerObserver;
};

/**
 * RFC 6750 bearer authentication with RFC 9068 JWT access tokens: signature against the
 * issuer's JWKS (cached; refetched on an unknown kid, rate-limited by jose), iss, aud = this
 * API, exp/nbf with 5 s leeway, typ at+jwt (so an ID token is refused), asymmetric algs only.
 * Keys named by jku/x5u/jwk headers are never used: jose only consults our JWKS.
 * Tokens bound with cnf.jkt (RFC 9449) need `Authorization: DPoP` and a fresh, unreplayed
 * proof for this request made with the bound key.
 */
export function bearerAuth({
  issuer,
  audience,
  jwksUrl,
  dpopReplay,
  challenge = {},
  publicUrl,
  fetch,
  observe,
}: BearerAuthOptions): Middleware {
  const send: TlsFetch = fetch ?? ((url, init) => globalThis.fetch(url, init));
  /** Every real fetch of the JWKS (jose caches it); it carries the id of the request that caused it. */
  const fetchJwks: FetchImplementation = async (url, init) => {
    const requestId = currentRequestId();
    if (requestId) init.headers.set('X-Request-Id', requestId);
    try {
      const response = await send(url, init);
      observe?.jwksFetch(response.status === 200 ? 'ok' : 'error');
      return response;
    } catch (error) {
      observe?.jwksFetch('error');
      throw error;
    }
  };
  const jwks = createRemoteJWKSet(new URL(jwksUrl), {
    cooldownDuration: 30_000,
    cacheMaxAge: 600_000,
    timeoutDuration: 5_000,
    [customFetch]: fetchJwks,
  });
  const base = new URL(publicUrl ?? audience);

  /** htu per RFC 9449 §4.3 check 9: scheme, host and path of this request; no query or fragment. */
  const requestUri = (ctx: Context): string => {
    const url = new URL(base);
    url.pathname = `${base.pathname.replace(/\/$/, '')}${ctx.path}`;
    return url.href;
  };

  /** The proof checks (src/api/dpop-proof.ts), then the proof's single use across instances. */
  async function checkProof(ctx: Context, accessToken: string, jkt: string): Promise<void> {
    const result = await checkDpopProof({ proof: ctx.req.headers.dpop, method: ctx.method, url: requestUri(ctx), accessToken, jkt });
    if (!result.ok) throw dpopProblem(result.error, result.detail, challenge);
    if (!dpopReplay) throw serviceUnavailable(new Error('no DPoP replay store configured'));
    let first: boolean;
    try {
      first = await dpopReplay.firstUse(`${jkt}:${result.jti}`, DPOP_REPLAY_TTL_SECONDS);
    } catch (error) {
      throw serviceUnavailable(error);
    }
    if (!first) throw dpopProblem('invalid_dpop_proof', 'The DPoP proof was already used (jti replay).', challenge);
  }

  return async function bearerAuthMiddleware(ctx, next) {
    // RFC 9700 §4.3.2 / B24: tokens in the query string are not accepted.
    if (ctx.query.access_token !== undefined)
      throw invalidToken('Send the access token in the Authorization header, not the URL.', challenge);
    const header = ctx.get('Authorization');
    if (!header) throw missingToken(challenge);
    const match = TOKEN68.exec(header);
    if (!match) throw invalidToken('The Authorization header is not a Bearer or DPoP token.', challenge);
    const scheme = (match[1] as string).toLowerCase();
    const accessToken = match[2] as string;
    if (plainlyExpired(accessToken)) {
      observe?.verification('invalid');
      throw invalidToken('The access token has expired.', challenge);
    }
    let token: AccessTokenClaims;
    try {
      const { payload } = await jwtVerify<AccessTokenClaims>(accessToken, jwks, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ACCEPTED_ALGS,
        clockTolerance: CLOCK_TOLERANCE,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
      });
      token = payload;
      observe?.verification('valid');
    } catch (error) {
      // The issuer's JWKS being unreachable is our outage, not the caller's bad token.
      if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
        observe?.verification('error');
        throw serviceUnavailable(error);
      }
      observe?.verification('invalid');
      throw invalidToken(
        error instanceof joseErrors.JWTExpired ? 'The access token has expired.' : 'The access token is not valid.',
        challenge,
      );
    }
    const jkt = token.cnf?.jkt;
    if (typeof jkt === 'string') {
      // RFC 9449 §7.1: a DPoP-bound token presented as a plain bearer token is refused.
      if (scheme !== 'dpop')
        throw dpopProblem('invalid_token', 'This access token is DPoP-bound: use the DPoP authorization scheme with a proof.', challenge);
      await checkProof(ctx, accessToken, jkt);
    } else if (scheme === 'dpop') {
      throw invalidToken('This access token is not DPoP-bound: use the Bearer scheme.', challenge);
    }
    ctx.state.auth = { token, scopes: new Set((token.scope ?? '').split(' ').filter(Boolean)) } satisfies AuthState;
    await next();
  };
}
