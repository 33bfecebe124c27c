import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Middleware } from 'koa';
import { invalidToken, missingToken, serviceUnavailable } from '../shared/problem.ts';

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

/**
 * RFC 6750 bearer authentication with RFC 9068 JWT access tokens: signature against the
 * issuer's JWKS (cached; refetched on an unknown kid, rate-limited by jose), iss, aud = this
 * API, exp/nbf with 5 s leeway, typ at+jwt (so an ID token is refused), asymmetric algs only.
 * Keys named by jku/x5u/jwk headers are never used: jose only consults our JWKS.
 */
export function bearerAuth({ issuer, audience, jwksUrl }: { issuer: string; audience: string; jwksUrl: string }): Middleware {
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 5_000 });

  return async function bearerAuthMiddleware(ctx, next) {
    // RFC 9700 §4.3.2 / B24: tokens in the query string are not accepted.
    if (ctx.query.access_token !== undefined) throw invalidToken('Send the access token in the Authorization header, not the URL.');
    const header = ctx.get('Authorization');
    if (!header) throw missingToken();
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header);
    if (!match) throw invalidToken('The Authorization header is not a Bearer token.');
    let token: AccessTokenClaims;
    try {
      const { payload } = await jwtVerify<AccessTokenClaims>(match[1] as string, jwks, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ACCEPTED_ALGS,
        clockTolerance: 5,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
      });
      token = payload;
    } catch (error) {
      // The issuer's JWKS being unreachable is our outage, not the caller's bad token.
      if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) throw serviceUnavailable(error);
      throw invalidToken(error instanceof joseErrors.JWTExpired ? 'The access token has expired.' : 'The access token is not valid.');
    }
    ctx.state.auth = { token, scopes: new Set((token.scope ?? '').split(' ').filter(Boolean)) } satisfies AuthState;
    await next();
  };
}
