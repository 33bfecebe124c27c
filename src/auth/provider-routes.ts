import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import type { BucketName } from '../shared/koa-rate-limit.ts';

/**
 * Every oidc-provider route name and the rate-limit bucket it spends (R11: no endpoint is
 * unlimited). test/security/every-route-limited.test.ts lists the routes the provider registers
 * and fails on one missing here. A route of a later oidc-provider that is not listed still
 * counts, in the browser bucket (providerRouteBuckets).
 */
export const PROVIDER_ROUTE_BUCKETS: Readonly<Record<string, BucketName>> = {
  // Back channel, client-authenticated (per IP and per client): each may write a stored row.
  token: 'token',
  introspection: 'token',
  revocation: 'token',
  device_authorization: 'token',
  pushed_authorization_request: 'token',
  backchannel_authentication: 'token',
  challenge: 'token',
  credential: 'token',
  // RFC 7591/7592.
  registration: 'registration',
  client: 'registration',
  client_update: 'registration',
  client_delete: 'registration',
  // Front channel: pages and redirects a browser follows (an /auth request stores an interaction).
  authorization: 'browser',
  resume: 'browser',
  end_session: 'browser',
  end_session_confirm: 'browser',
  end_session_success: 'browser',
  code_verification: 'browser',
  device_resume: 'browser',
  // Documents and reads every relying party makes (discovery and the JWKS are served from memory).
  discovery: 'metadata',
  jwks: 'metadata',
  openid_credential_issuer: 'metadata',
  userinfo: 'metadata',
};

/** CORS preflights (`cors.token`, …) are answered by the provider without work: metadata budget. */
export function bucketOfProviderRoute(name: string): BucketName {
  // eslint-disable-next-line security/detect-object-injection -- name is oidc-provider's own route name (its router's), never request text
  return PROVIDER_ROUTE_BUCKETS[name] ?? (name.startsWith('cors.') ? 'metadata' : 'browser');
}

export type ProviderRouteMatch = { name: string; params: Record<string, string> };
export type ProviderRouteOf = (method: string, path: string) => ProviderRouteMatch | undefined;

/**
 * The provider's own name for a request, from its own matcher, before the request runs (R3): the
 * matcher folds case, takes one trailing slash and decodes parameters, so a guard keyed on the
 * name applies to every spelling the provider would serve; a guard on `ctx.path ===` does not.
 * oidc-provider keeps the matcher in its private state (lib/helpers/weak_cache.js); boot fails
 * loudly when that moves.
 */
export function providerRouteOf(provider: Provider): ProviderRouteOf {
  const router = instance(provider)?.router;
  if (typeof router?.match !== 'function') {
    throw new Error(
      'oidc-provider internals moved: weak_cache(provider).router.match is gone (package.json pins the version this was written for)',
    );
  }
  return (method, path) => {
    const match = router.match(method, path);
    return match && { name: match.route.name, params: match.params };
  };
}

/** Sets ctx.state.providerRoute (the route oidc-provider would run for this request, if any). */
export function nameProviderRoute(routeOf: ProviderRouteOf): Middleware {
  return async function nameProviderRouteMiddleware(ctx, next) {
    ctx.state.providerRoute = routeOf(ctx.method, ctx.path)?.name;
    await next();
  };
}

export const providerRouteIn = (ctx: Context): string | undefined => ctx.state.providerRoute as string | undefined;
