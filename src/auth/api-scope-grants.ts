import { errors, type Client, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { DEFAULT_CLIENT_SCOPE } from '../services/client-policy.ts';
import { API_SCOPES, isApiScope, USER_ONLY_SCOPES } from '../shared/scopes.ts';

/**
 * API scopes exist only at the API resource (R13, docs/security.md). oidc-provider knows them as
 * provider scopes (so a client's registered `scope` can allow or withhold them), and therefore
 * treats them as OpenID scopes whenever a request names no `resource`: they landed in the grant's
 * OpenID part and on opaque userinfo tokens. Three rules keep them with the API.
 */

/**
 * A request naming no resource: the API scopes are dropped from an authorization, PAR or device
 * request (RFC 6749 §3.3 lets the server grant less; the answer's `scope` says what was granted),
 * so neither the consent page nor the grant sees them. A request that would keep nothing (only
 * API scopes), and a client_credentials request for one, is refused with invalid_scope naming
 * `resource`: a token without an audience for them would be useless or misleading. Runs in oidc-provider's defaultResource, its one hook for "no resource named",
 * before any consent.
 */
export function withoutResource(ctx: KoaContextWithOIDC, apiUrl: string): void {
  const requested = typeof ctx.oidc.params?.scope === 'string' ? ctx.oidc.params.scope.split(' ') : [];
  const apiScope = requested.find(isApiScope);
  if (apiScope === undefined) return;
  if (ctx.oidc.params?.grant_type === 'client_credentials') {
    throw new errors.InvalidScope(`${apiScope} is a scope of the API: ask for it with resource=${apiUrl}`, apiScope);
  }
  const kept = requested.filter((scope) => !isApiScope(scope)).join(' ');
  // Nothing left to grant: refused now rather than after a sign-in that grants nothing.
  if (!kept) throw new errors.InvalidScope(`${apiScope} is a scope of the API: ask for it with resource=${apiUrl}`, apiScope);
  (ctx.oidc.params as { scope?: string }).scope = kept;
}

/**
 * The resource server oidc-provider issues access tokens for (resourceIndicators
 * getResourceServerInfo): the API alone, with the API scopes this client may hold, as ES256 JWTs
 * (RFC 9068). Any other resource is invalid_target. A client_credentials token speaks for no
 * person: the account scopes (USER_ONLY_SCOPES) are refused there.
 */
export function apiResourceServer(
  ctx: KoaContextWithOIDC,
  resourceIndicator: string,
  client: Client,
  api: { url: string; accessTokenTtl: number },
): ResourceServer {
  if (resourceIndicator !== api.url) throw new errors.InvalidTarget();
  // The API scopes this client may hold (clientDefaults gives every client a scope; the
  // fallback is the same default set, never "all of them").
  const allowed = new Set((client.scope ?? DEFAULT_CLIENT_SCOPE).split(' '));
  const clientOnly = ctx.oidc.params?.grant_type === 'client_credentials';
  if (clientOnly) {
    const requested = typeof ctx.oidc.params?.scope === 'string' ? ctx.oidc.params.scope.split(' ') : [];
    const userOnly = requested.find((scope) => USER_ONLY_SCOPES.includes(scope));
    if (userOnly) throw new errors.InvalidScope(`${userOnly} is granted by a signed-in user, never to a client alone`, userOnly);
  }
  return {
    scope: API_SCOPES.filter((scope) => allowed.has(scope) && !(clientOnly && USER_ONLY_SCOPES.includes(scope))).join(' '),
    audience: api.url,
    accessTokenTTL: api.accessTokenTtl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  };
}

/**
 * The OpenID part of a consent: its OpenID scopes are granted, the API scopes among what the
 * consent prompt calls missing OpenID scopes are recorded as rejected there (so the prompt's
 * check is satisfied) and are granted, if at all, only for the API resource.
 */
export function splitOpenIdScopes(scopes: Iterable<string>): { granted: string[]; rejected: string[] } {
  const all = [...scopes];
  return { granted: all.filter((scope) => !isApiScope(scope)), rejected: all.filter(isApiScope) };
}

type ScopedGrant = Pick<InstanceType<Provider['Grant']>, 'addOIDCScope' | 'rejectOIDCScope' | 'addResourceScope'>;

/**
 * Adds what the user agreed to a grant (the consent page, or the device flow's confirmation):
 * the OpenID scopes by splitOpenIdScopes, and each resource's scopes (an empty list adds nothing).
 */
export function grantConsented(
  grant: ScopedGrant,
  { openIdScopes, resourceScopes }: { openIdScopes: Iterable<string>; resourceScopes: Iterable<[string, string[]]> },
): void {
  const { granted, rejected } = splitOpenIdScopes(openIdScopes);
  if (granted.length > 0) grant.addOIDCScope(granted.join(' '));
  if (rejected.length > 0) grant.rejectOIDCScope(rejected.join(' '));
  for (const [indicator, scopes] of resourceScopes) if (scopes.length > 0) grant.addResourceScope(indicator, scopes.join(' '));
}

/**
 * Opaque tokens take their scope from the grant's OpenID part (getOIDCScopeFiltered: the code,
 * refresh and device token endpoints, the authorization response, userinfo). A grant stored
 * before these rules may hold API scopes there: they are never read from it.
 */
export function keepApiScopesOutOfOpenIdGrants(provider: Provider): void {
  type GrantScopes = { getOIDCScopeFiltered: (this: GrantScopes, filter: Set<string> | string[]) => string };
  const prototype = provider.Grant.prototype as unknown as GrantScopes;
  const filtered = prototype.getOIDCScopeFiltered;
  prototype.getOIDCScopeFiltered = function getOIDCScopeFiltered(filter) {
    return filtered
      .call(this, filter)
      .split(' ')
      .filter((scope) => scope !== '' && !isApiScope(scope))
      .join(' ');
  };
}
