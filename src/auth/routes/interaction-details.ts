import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { UserRow } from '../../services/accounts.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import { essentialAcrValues } from '../claims-parameter.ts';
import { formField } from '../koa-form-body.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import type { SecondFactorSteps } from './second-factor-steps.ts';

/**
 * What every step of a sign-in interaction reads: the provider's interaction, what our steps keep
 * in it between the password and the second factor, what the stored request asks of the sign-in's
 * acr, and the steps' form fields and errors.
 */

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * What the interaction remembers between the password and the second factor. It lives in the
 * provider's Interaction (bound to the interaction cookie), never in the form: the account
 * comes from here, not from anything the browser sends (docs/security.md). It is not a login
 * result, so resuming the authorization early logs nobody in (T32).
 */
export type Pending = SignInStart & {
  accountId: string;
  /** What already passed before the second factor (e.g. ['pwd'], or the session's amr on step-up). */
  amr: string[];
  /**
   * The login result so far, set once a second factor passed (or the first one was enrolled) in
   * THIS interaction; a factor passed in an earlier sign-in never counts here (R1).
   */
  passed?: { amr: string[]; acr: string };
  /** Recovery codes were just shown once: only "continue" is expected now. */
  codesShown?: boolean;
  /**
   * The sign-in is done (`passed` holds its result) but the account's address must be verified
   * first (REQUIRE_VERIFIED_EMAIL): only the address's code is expected now (routes/verify-email.ts).
   */
  verifyEmail?: { stepUpFollows: boolean };
};

/**
 * Holds a finished sign-in of an account whose address is not verified (REQUIRE_VERIFIED_EMAIL):
 * true when it took over the response (the sign-in waits for the address's code).
 */
export type EmailGate = (ctx: Context, details: InteractionDetails, account: UserRow, pending: Pending) => Promise<boolean>;

/**
 * When this sign-in's first step passed: the password or passkey check (epoch ms, taken before
 * the check), or on step-up the session's own sign-in and that session's uid. A sign-in begun
 * before the account's sessions were ended does not finish (R13); a step-up is dated by it.
 */
export type SignInStart = { startedAtMs: number; sessionUid?: string | undefined };

export const interactionProblem = (detail: string): Problem =>
  new Problem({ status: 400, type: problemType('interaction'), title: 'This sign-in request cannot continue', detail });

export const pendingOf = (details: InteractionDetails): Pending | undefined =>
  (details.result as { portcullis?: Pending } | undefined)?.portcullis;

/** acr_values and claims.id_token.acr from the stored authorization request. */
export function requestedAcrs(details: InteractionDetails): string[] {
  const values = typeof details.params.acr_values === 'string' ? details.params.acr_values.split(' ') : [];
  if (typeof details.params.claims === 'string') {
    try {
      const acr = (JSON.parse(details.params.claims) as { id_token?: { acr?: { value?: unknown; values?: unknown } } }).id_token?.acr;
      if (typeof acr?.value === 'string') values.push(acr.value);
      if (Array.isArray(acr?.values)) values.push(...acr.values.filter((v): v is string => typeof v === 'string'));
    } catch {
      // The provider already rejected malformed claims; nothing to add.
    }
  }
  return values;
}

/** The essential acr values of the stored request's `claims` (claims.id_token.acr with essential: true); undefined when none is asked for. */
export function essentialAcrs(details: InteractionDetails): string[] | undefined {
  if (typeof details.params.claims !== 'string') return undefined;
  try {
    return essentialAcrValues(JSON.parse(details.params.claims));
  } catch {
    return undefined;
  }
}

/** What the stored request asks of the sign-in's acr (requiredRank, acrNamed). */
export function acrRequest(details: InteractionDetails, clientRequiresMfa: boolean) {
  return { requestedAcrs: requestedAcrs(details), essentialAcrs: essentialAcrs(details), clientRequiresMfa };
}

/** A single short string form field; anything else (arrays, huge values) is refused. */
export const field = (ctx: Context, name: string, max: number): string => formField(ctx, name, max, interactionProblem);

/** The browser's session as stored now, when its sign-in still counts (interaction.ts liveSession). */
export type LiveSession = { accountId: string; loginTs: number; uid: string; amr: string[]; acr: string };

/** What interaction.ts hands each group of the interaction's routes. */
export type InteractionKit = {
  router: Router;
  csrf: CsrfTokens;
  /** In front of every POST: the login bucket (R14), the cross-site check, the form parser. */
  guard: Middleware[];
  /** The interaction of this request, checked to be the URL's and at the expected prompt (CSRF checked on a POST). */
  load: (ctx: Context, expectedPrompt?: string) => Promise<InteractionDetails>;
  /** A step of the second factor: the login prompt with a pending account. */
  loadPending: (ctx: Context, options?: { codesShown?: boolean }) => Promise<{ details: InteractionDetails; pending: Pending }>;
  liveSession: (details: InteractionDetails) => Promise<LiveSession | undefined>;
  redirectToStep: (ctx: Context, uid: string, query?: string) => void;
  steps: SecondFactorSteps;
};
