import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService, RequestContext } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { acrRank, addStep, authenticationContext, decideSecondFactor, requiredRank, type MfaDecision } from '../../services/mfa-policy.ts';
import { findClientDisplay } from '../client-display.ts';
import type { UserRow } from '../../services/accounts.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';
import { acrRequest, interactionProblem, type EmailGate, type InteractionDetails, type Pending } from './interaction-details.ts';
import { signInFinish } from './sign-in-finish.ts';

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
  emailGate,
}: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  csrf: CsrfTokens;
  /** Asks for the address's code before a sign-in of an unverified account finishes (REQUIRE_VERIFIED_EMAIL). */
  emailGate?: EmailGate | undefined;
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

  const finish = signInFinish({ provider, accounts, clientOf, emailGate });

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

export type SecondFactorSteps = ReturnType<typeof secondFactorSteps>;
