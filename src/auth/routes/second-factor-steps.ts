import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService, RequestContext } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import {
  acrNamed,
  acrRank,
  addStep,
  authenticationContext,
  decideSecondFactor,
  requiredRank,
  type MfaDecision,
} from '../../services/mfa-policy.ts';
import { essentialAcrValues } from '../claims-parameter.ts';
import { findClientDisplay } from '../client-display.ts';
import { signInTime } from '../../services/session-validity.ts';
import type { UserRow } from '../../services/accounts.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';

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
};

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
function acrRequest(details: InteractionDetails, clientRequiresMfa: boolean) {
  return { requestedAcrs: requestedAcrs(details), essentialAcrs: essentialAcrs(details), clientRequiresMfa };
}

/**
 * The second-factor part of the login prompt: who must pass which factor (the MFA policy), the
 * challenge and enrollment pages, recovery codes after a first enrollment, and finishing the
 * login with the resulting amr/acr.
 */
export function secondFactorSteps({
  provider,
  accounts,
  mfa,
  csrf,
}: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  csrf: CsrfTokens;
}) {
  const requestContext = (ctx: Context, details: InteractionDetails): RequestContext => ({
    ip: ctx.ip,
    userAgent: ctx.get('User-Agent'),
    clientId: String(details.params.client_id),
  });

  /** The client the sign-in is for, as the pages show it (and whether it requires a second factor). */
  const clientOf = (details: InteractionDetails) => findClientDisplay(provider, String(details.params.client_id));

  async function decide(details: InteractionDetails, pending: Pending): Promise<MfaDecision> {
    const client = await clientOf(details);
    const promptRank = (details.prompt.details as { required_rank?: number }).required_rank ?? 0;
    const needed = Math.max(promptRank, requiredRank(acrRequest(details, client.requireMfa)));
    // A request no sign-in can meet (refused at /auth already, unless the client changed since):
    // no step is asked for, and finish() ends the request with unmet_authentication_requirements (R14).
    if (needed === Number.POSITIVE_INFINITY) return { kind: 'done' };
    const { enrolled, roleRequiresMfa, recoveryCodesLeft } = await mfa.policyInputs(pending.accountId);
    return decideSecondFactor({
      enrolled,
      recoveryCodesLeft,
      roleRequiresMfa,
      requiredRank: needed,
      passedRank: acrRank(pending.passed?.acr),
    });
  }

  const savePending = (ctx: Context, pending: Pending) =>
    provider.interactionResult(ctx.req, ctx.res, { portcullis: pending }, { mergeWithLastSubmission: false });

  /**
   * Ends the login prompt, dating the sign-in (`ts`, the ID token's auth_time) here rather than
   * when the browser comes back to the provider (R13): a sign-in finished before the account's
   * sessions were ended (sign out everywhere, a password change that signed out the others, an
   * MFA reset) stays older than that however late it resumes, and one whose first step came
   * before it does not finish at all. A full sign-in is dated when it completes; a step-up
   * completes the session's sign-in and keeps its time (docs/mfa.md, "Step-up"), so the request's
   * max_age, checked by the provider against that time when the step-up began, is checked again.
   */
  async function finish(
    ctx: Context,
    details: InteractionDetails,
    accountId: string,
    result: { amr: string[]; acr: string },
    start: SignInStart,
    options: { stepUpFollows?: boolean } = {},
  ): Promise<void> {
    const account = await accounts.findActive(accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    // An essential acr is answered with one of its values (OIDC Core §5.5.1.1); the policy met
    // it. A sign-in that cannot be named so that the request is met ends the request with
    // unmet_authentication_requirements: the provider would otherwise ask for it again, for ever
    // (R14). Only a passwordless sign-in may end short of it: a step-up then asks for the rest.
    const named = acrNamed(acrRequest(details, (await clientOf(details)).requireMfa), result.acr);
    if (named === undefined && !options.stepUpFollows) {
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        {
          error: 'unmet_authentication_requirements',
          error_description: 'the sign-in cannot meet the authentication context the request requires',
        },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    const now = Date.now();
    const stepUp = start.sessionUid !== undefined;
    const time =
      typeof start.startedAtMs === 'number'
        ? signInTime(
            account,
            { startedAtMs: start.startedAtMs, datedAtMs: stepUp ? start.startedAtMs : now, sessionUid: start.sessionUid },
            now,
          )
        : undefined;
    if (!time) throw interactionProblem('Your sessions were ended while you were signing in. Start again.');
    const maxAge = Number(details.params.max_age);
    if (details.params.max_age !== undefined && Number.isInteger(maxAge) && Math.floor(now / 1000) - time.ts > maxAge) {
      throw interactionProblem('This sign-in took longer than the application allows. Go back to it and start again.');
    }
    if (time.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, time.waitMs));
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId, amr: result.amr, acr: named ?? result.acr, remember: true, ts: time.ts } },
      { mergeWithLastSubmission: false },
    );
  }

  /**
   * One more step passed: it joins what passed before in this sign-in (on step-up the session's
   * own sign-in, e.g. its password), and the sign-in keeps its first step's time (addStep).
   */
  function withPassed(pending: Pending, result: { amr: string[]; acr: string }): Pending {
    return { ...pending, passed: addStep(pending.passed ?? { amr: pending.amr, acr: '' }, result) };
  }

  /** The login result to finish with: what passed, or the password alone when nothing had to. */
  function resultOf(pending: Pending): { amr: string[]; acr: string } {
    return pending.passed ?? authenticationContext({ first: 'password' });
  }

  /** After a step: finish when the policy is met, otherwise remember it and show the next step. */
  async function proceed(ctx: Context, details: InteractionDetails, pending: Pending): Promise<void> {
    const decision = await decide(details, pending);
    if (decision.kind === 'done') return finish(ctx, details, pending.accountId, resultOf(pending), pending);
    await savePending(ctx, pending);
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
  }

  /** The second-factor page: the chosen (or first) method, with links to the others. */
  async function showSecondFactor(
    ctx: Context,
    details: InteractionDetails,
    pending: Pending,
    extra: { error?: string; method?: string } = {},
  ): Promise<void> {
    const decision = await decide(details, pending);
    const account = await accounts.findActive(pending.accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    if (decision.kind === 'enroll') return showEnrollment(ctx, details, pending, account, decision.factors, extra);
    if (decision.kind === 'done') {
      // What passed is enough (or factors were removed meanwhile and nothing requires one).
      return finish(ctx, details, pending.accountId, resultOf(pending), pending);
    }
    const methods = [...decision.factors, ...(decision.recovery ? (['recovery'] as const) : [])];
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : extra.method;
    const method = methods.find((m) => m === requested) ?? methods[0];
    const webauthnOptions =
      method === 'webauthn'
        ? JSON.stringify(
            await mfa.webauthn.authenticationOptions({
              binding: details.uid,
              purpose: 'second-factor',
              userId: pending.accountId,
              userVerification: decision.userVerification,
            }),
          )
        : '';
    render(ctx, 'mfa', {
      clientName: (await clientOf(details)).name,
      email: account.email,
      method,
      others: methods.filter((m) => m !== method).map((m) => ({ method: m, href: `/interaction/${details.uid}?method=${m}` })),
      error: extra.error,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/mfa/${method ?? 'totp'}`,
      webauthnOptions,
      abortAction: `/interaction/${details.uid}/abort`,
    });
  }

  /** Required but not enrolled: set up an authenticator app or a passkey before going on. */
  async function showEnrollment(
    ctx: Context,
    details: InteractionDetails,
    pending: Pending,
    account: UserRow,
    factors: string[],
    extra: { error?: string; method?: string } = {},
  ): Promise<void> {
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : extra.method;
    const method = factors.find((f) => f === requested) ?? factors[0];
    // The secret belongs to this interaction: one begun elsewhere is never shown here (R13). A
    // GET only shows it, never begins one (R14): a link from another site through /auth reaches
    // this page with a recent session, and beginning here would replace the setup the owner is
    // scanning on the account page. Beginning is a POST with the page's token (beginTotp).
    const totp = method === 'totp' ? await mfa.totp.pending(pending.accountId, account.email, details.uid) : undefined;
    const registration =
      method === 'webauthn'
        ? JSON.stringify(
            await mfa.webauthn.registrationOptions({
              binding: details.uid,
              userId: account.id,
              email: account.email,
              displayName: account.name ?? account.email,
            }),
          )
        : '';
    render(ctx, 'mfa-enroll', {
      email: account.email,
      method,
      others: factors.filter((f) => f !== method).map((f) => ({ method: f, href: `/interaction/${details.uid}?method=${f}` })),
      totp,
      registration,
      error: extra.error,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/enroll/${method ?? 'totp'}`,
      beginAction: `/interaction/${details.uid}/enroll/totp/begin`,
      abortAction: `/interaction/${details.uid}/abort`,
    });
  }

  /**
   * Begins this interaction's TOTP setup when an authenticator app is the enrolment shown next
   * (only ever from a POST: R14), keeping one this interaction already began.
   */
  async function beginTotpIfNext(details: InteractionDetails, pending: Pending, decision: MfaDecision): Promise<void> {
    if (decision.kind !== 'enroll' || decision.factors[0] !== 'totp') return;
    const account = await accounts.findActive(pending.accountId);
    if (!account || (await mfa.totp.pending(account.id, account.email, details.uid))) return;
    await mfa.totp.begin(account.id, account.email, details.uid);
  }

  /**
   * After an enrollment: the recovery codes when the account has none left (shown once), then
   * on. `pending.passed` already holds the login result (the factor passed earlier in this
   * interaction, or the first factor just enrolled).
   */
  async function afterEnrollment(ctx: Context, details: InteractionDetails, pending: Pending): Promise<void> {
    const context = requestContext(ctx, details);
    const codes =
      (await mfa.recovery.remaining(pending.accountId)) === 0 ? await mfa.regenerateRecoveryCodes(pending.accountId, context) : undefined;
    if (!codes) return proceed(ctx, details, pending);
    await savePending(ctx, { ...pending, codesShown: true });
    render(ctx, 'mfa-recovery-codes', {
      codes,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/continue`,
      continueLabel: 'Continue',
    });
  }

  return {
    requestContext,
    clientOf,
    decide,
    savePending,
    finish,
    withPassed,
    proceed,
    showSecondFactor,
    showEnrollment,
    beginTotpIfNext,
    afterEnrollment,
  };
}
