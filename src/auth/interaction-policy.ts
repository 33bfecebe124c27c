import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { acrRank, requiredRank } from '../services/mfa-policy.ts';
import { CONFIRM_EVERY_TIME_SCOPES } from '../shared/scopes.ts';
import { essentialAcrValues } from './claims-parameter.ts';

const { base, Check } = interactionPolicy;

/** The reason our check adds to the login prompt; the interaction routes read it. */
export const STEP_UP_REASON = 'mfa_step_up';

/** The error of every login check (OIDC Core §3.1.2.6): the End-User must authenticate. */
const LOGIN_REQUIRED = 'login_required';

/** The consent prompt's details key listing the scopes confirmed on every request. */
export const CONFIRM_EVERY_TIME_DETAIL = 'confirmEveryTime';

/** Requested scopes that the user confirms on each authorization request (CONFIRM_EVERY_TIME_SCOPES). */
function confirmEveryTime(ctx: KoaContextWithOIDC): string[] {
  const requested = ctx.oidc.requestParamScopes;
  return CONFIRM_EVERY_TIME_SCOPES.filter((scope) => requested.has(scope));
}

/** Whether the client's registration says its users must pass a second factor. */
export function clientRequiresMfa(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.client?.metadata().require_mfa === true;
}

/** The acr values the request asks for (acr_values or claims.id_token.acr). */
export function requestedAcrs(ctx: KoaContextWithOIDC): string[] {
  const claim = (ctx.oidc.claims as { id_token?: { acr?: { value?: unknown; values?: unknown } } } | undefined)?.id_token?.acr;
  const fromClaims: unknown[] = Array.isArray(claim?.values)
    ? (claim.values as unknown[])
    : typeof claim?.value === 'string'
      ? [claim.value]
      : [];
  const fromParam = typeof ctx.oidc.params?.acr_values === 'string' ? ctx.oidc.params.acr_values.split(' ') : [];
  return [...new Set([...fromParam, ...fromClaims].filter((v): v is string => typeof v === 'string'))];
}

/**
 * The essential acr values of the request's `claims` parameter (undefined when none is asked
 * for), read from the parameter itself: with acr_values beside it, oidc-provider's parsed claims
 * keep acr_values only (its assignClaims), and the essential acr would be lost (R14).
 */
export function essentialAcrs(ctx: KoaContextWithOIDC): string[] | undefined {
  const claims = ctx.oidc.params?.claims;
  if (typeof claims !== 'string') return undefined;
  try {
    return essentialAcrValues(JSON.parse(claims));
  } catch {
    return undefined;
  }
}

/** The rank the request needs (acr_values, an essential acr, require_mfa): requiredRank. */
const neededRank = (ctx: KoaContextWithOIDC): number =>
  requiredRank({ requestedAcrs: requestedAcrs(ctx), essentialAcrs: essentialAcrs(ctx), clientRequiresMfa: clientRequiresMfa(ctx) });

/**
 * oidc-provider's base policy plus one check on the login prompt: when the request (acr_values,
 * claims) or the client (require_mfa) needs more assurance than the session has, ask again.
 * With a session present the interaction only asks for the missing second factor (step-up).
 */
export function buildInteractionPolicy() {
  const policy = base();
  const login = policy.get('login');
  if (!login) throw new Error('the base interaction policy has no login prompt');
  // Checks added after the prompt is built get no error code from it (the provider then answers
  // prompt=none with interaction_required): each names login_required itself, the answer OIDC
  // Core §3.1.2.6 gives when the End-User must authenticate (R13).
  //
  // A session whose account is gone (disabled or erased), or whose sign-in is older than the
  // account's "sessions not valid before" time (findAccount says undefined for both), satisfies
  // the base `no_session` check, and the consent checks then fail on the missing grant (500).
  // Asking for a login instead ends the session's use; the disabled account cannot sign in (T28).
  login.checks.add(
    new Check('account_unavailable', 'End-User authentication is required', LOGIN_REQUIRED, (ctx) =>
      ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
    ),
  );
  login.checks.add(
    new Check(
      STEP_UP_REASON,
      'a stronger authentication is required',
      LOGIN_REQUIRED,
      (ctx) => {
        const { session } = ctx.oidc;
        if (!session?.accountId) return Check.NO_NEED_TO_PROMPT;
        return neededRank(ctx) > acrRank(session.acr) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
      },
      (ctx) => ({ required_rank: neededRank(ctx) }),
    ),
  );
  // account:erase is confirmed on every request, even when the grant already holds it: an app
  // once allowed to erase cannot later force a fresh sign-in (which erasure needs) and erase
  // without the consent page saying so again. `result.consent` is this request's own consent.
  // The device flow's confirmation page already shows every scope, every time.
  const consent = policy.get('consent');
  if (!consent) throw new Error('the base interaction policy has no consent prompt');
  consent.checks.add(
    new Check(
      'scope_confirmed_every_time',
      'the requested scopes are confirmed on every request',
      'consent_required',
      (ctx) => {
        const deviceRoute = ctx.oidc.route === 'code_verification' || ctx.oidc.route === 'device_resume';
        if (deviceRoute || ctx.oidc.result?.consent) return Check.NO_NEED_TO_PROMPT;
        return confirmEveryTime(ctx).length > 0 ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
      },
      (ctx) => ({ [CONFIRM_EVERY_TIME_DETAIL]: confirmEveryTime(ctx) }),
    ),
  );
  return policy;
}
