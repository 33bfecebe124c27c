import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { isApiScope } from '../shared/scopes.ts';

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
 * The OpenID part of a consent: its OpenID scopes are granted, the API scopes among what the
 * consent prompt calls missing OpenID scopes are recorded as rejected there (so the prompt's
 * check is satisfied) and are granted, if at all, only for the API resource.
 */
export function splitOpenIdScopes(scopes: Iterable<string>): { granted: string[]; rejected: string[] } {
  const all = [...scopes];
  return { granted: all.filter((scope) => !isApiScope(scope)), rejected: all.filter(isApiScope) };
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
