import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { requiredRank } from '../services/mfa-policy.ts';

/**
 * The claims a relying party may ask for through the `claims` request parameter (OIDC Core §5.5):
 * those every ID token already carries with the `openid` scope. Anything else (email, name, …)
 * comes with its scope, which the consent page names; asked for through `claims` it would be
 * added to the grant without the consent page saying so (our consent page lists scopes), so it is
 * dropped from the request — OIDC Core §5.5 lets a server leave out requested claims, essential
 * ones included, except `acr` (§5.5.1.1), which we honour.
 */
export const REQUESTABLE_CLAIMS: ReadonlySet<string> = new Set(['sub', 'acr', 'amr', 'auth_time']);

type ClaimRequest = { essential?: unknown; value?: unknown; values?: unknown } | null;
type ClaimsParameter = { id_token?: Record<string, ClaimRequest>; userinfo?: Record<string, ClaimRequest> };

/**
 * The acr values asked for as essential in `claims.id_token.acr`, or undefined when no essential
 * acr is asked for. With both `value` and `values` the provider checks both (its essential_acr and
 * essential_acrs checks): only a value in both meets them, so that is what is returned — possibly
 * nothing, a request no sign-in can meet (R14).
 */
export function essentialAcrValues(claims: unknown): string[] | undefined {
  const acr = (claims as ClaimsParameter | undefined)?.id_token?.acr;
  if (!acr || acr.essential !== true || (acr.value === undefined && acr.values === undefined)) return undefined;
  const strings = (values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string');
  const listed = Array.isArray(acr.values) ? strings(acr.values) : undefined;
  const single = acr.value === undefined ? undefined : strings([acr.value]);
  if (listed && single) return listed.filter((v) => single.includes(v));
  return listed ?? single ?? [];
}

/**
 * oidc-provider's `claimsParameter.assertClaimsParameter`, after its own shape checks
 * (`checkClaims`): keeps only REQUESTABLE_CLAIMS, by rewriting the request's `claims` (which the
 * provider parses again, stores with the interaction, the device code and a pushed request, and
 * every later step reads), and refuses an essential `acr` none of whose values we can meet with
 * `unmet_authentication_requirements` (OpenID Connect Unmet Authentication Requirements 1.0;
 * OIDC Core §5.5.1.1 treats it as a failed authentication). oidc-provider itself would ask for
 * the login again and again: its essential_acr check never passes for a value nobody issues.
 */
/** One container's members (null or objects, as OIDC Core §5.5 says), keeping only REQUESTABLE_CLAIMS. */
function requestable(container: string, requested: unknown): Record<string, ClaimRequest> {
  const members = Object.entries(requested as Record<string, unknown>);
  for (const [, value] of members) {
    if (value !== null && (typeof value !== 'object' || Array.isArray(value)))
      throw new errors.InvalidRequest(`claims.${container} members must be null or objects`);
  }
  return Object.fromEntries(members.filter(([name]) => REQUESTABLE_CLAIMS.has(name))) as Record<string, ClaimRequest>;
}

export function assertClaimsParameter(ctx: KoaContextWithOIDC, claims: { id_token?: unknown; userinfo?: unknown }, client?: unknown): void {
  const { id_token: idToken, userinfo } = claims;
  const kept: ClaimsParameter = {
    ...(idToken === undefined ? {} : { id_token: requestable('id_token', idToken) }),
    ...(userinfo === undefined ? {} : { userinfo: requestable('userinfo', userinfo) }),
  };
  // No value of ours, value and values that disagree, or none at the client's floor (require_mfa
  // with only loa:1): no sign-in can meet it, and the provider would ask again for ever (R14).
  const essentialAcrs = essentialAcrValues(kept);
  const clientRequiresMfa = (client as { metadata?: () => { require_mfa?: unknown } } | undefined)?.metadata?.().require_mfa === true;
  if (essentialAcrs !== undefined && requiredRank({ essentialAcrs, clientRequiresMfa }) === Number.POSITIVE_INFINITY) {
    throw new errors.UnmetAuthenticationRequirements('none of the essential acr values requested can be met');
  }
  (ctx.oidc.params as { claims?: string }).claims = JSON.stringify(kept);
}
