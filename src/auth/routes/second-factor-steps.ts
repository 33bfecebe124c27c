import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService, RequestContext } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { authenticationContext, decideSecondFactor, requiredRank, type MfaDecision } from '../../services/mfa-policy.ts';
import type { UserRow } from '../../store/users.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * What the interaction remembers between the password and the second factor. It lives in the
 * provider's Interaction (bound to the interaction cookie), never in the form: the account
 * comes from here, not from anything the browser sends (SECURITY.md §1.4). It is not a login
 * result, so resuming the authorization early logs nobody in (T32).
 */
export type Pending = {
  accountId: string;
  /** What already passed (e.g. ['pwd'], or the session's amr on step-up). */
  amr: string[];
  /** Set once the second factor (or enrollment) passed: the login result to finish with. */
  passed?: { amr: string[]; acr: string };
};

export const interactionProblem = (detail: string): Problem =>
  new Problem({ status: 400, type: problemType('interaction'), title: 'This sign-in request cannot continue', detail });

export const pendingOf = (details: InteractionDetails): Pending | undefined => (details.result as { portcullis?: Pending } | undefined)?.portcullis;

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

/**
 * The second-factor part of the login prompt: who must pass which factor (the MFA policy), the
 * challenge and enrollment pages, recovery codes after a first enrollment, and finishing the
 * login with the resulting amr/acr.
 */
export function secondFactorSteps({ provider, accounts, mfa, csrf }: {
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

  async function clientOf(details: InteractionDetails) {
    const client = await provider.Client.find(String(details.params.client_id));
    return { name: client?.clientName ?? String(details.params.client_id), requireMfa: client?.metadata().require_mfa === true };
  }

  async function decide(details: InteractionDetails, accountId: string): Promise<MfaDecision> {
    const client = await clientOf(details);
    const promptRank = (details.prompt.details as { required_rank?: number }).required_rank ?? 0;
    const { enrolled, roleRequiresMfa, recoveryCodesLeft } = await mfa.policyInputs(accountId);
    return decideSecondFactor({
      enrolled,
      recoveryCodesLeft,
      roleRequiresMfa,
      requiredRank: Math.max(promptRank, requiredRank({ requestedAcrs: requestedAcrs(details), clientRequiresMfa: client.requireMfa })),
    });
  }

  const savePending = (ctx: Context, pending: Pending) =>
    provider.interactionResult(ctx.req, ctx.res, { portcullis: pending }, { mergeWithLastSubmission: false });

  async function finish(ctx: Context, accountId: string, result: { amr: string[]; acr: string }): Promise<void> {
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId, amr: result.amr, acr: result.acr, remember: true } },
      { mergeWithLastSubmission: false },
    );
  }

  /** The second-factor page: the chosen (or first) method, with links to the others. */
  async function showSecondFactor(ctx: Context, details: InteractionDetails, pending: Pending, extra: { error?: string; method?: string } = {}): Promise<void> {
    const decision = await decide(details, pending.accountId);
    const account = await accounts.findActive(pending.accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    if (decision.kind === 'enroll') return showEnrollment(ctx, details, pending, account, decision.factors, extra);
    if (decision.kind === 'done') {
      // Factors were removed meanwhile and nothing requires one: the password alone is enough.
      return finish(ctx, pending.accountId, authenticationContext({ first: 'password' }));
    }
    const methods = [...decision.factors, ...(decision.recovery ? (['recovery'] as const) : [])];
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : extra.method;
    const method = methods.find((m) => m === requested) ?? methods[0];
    const webauthnOptions = method === 'webauthn'
      ? JSON.stringify(await mfa.webauthn.authenticationOptions({ binding: details.uid, purpose: 'second-factor', userId: pending.accountId }))
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
  async function showEnrollment(ctx: Context, details: InteractionDetails, pending: Pending, account: UserRow, factors: string[], extra: { error?: string; method?: string } = {}): Promise<void> {
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : extra.method;
    const method = factors.find((f) => f === requested) ?? factors[0];
    const totp = method === 'totp'
      ? ((await mfa.totp.pending(pending.accountId, account.email)) ?? (await mfa.totp.begin(pending.accountId, account.email)))
      : undefined;
    const registration = method === 'webauthn'
      ? JSON.stringify(await mfa.webauthn.registrationOptions({ binding: details.uid, userId: account.id, email: account.email, displayName: account.name ?? account.email }))
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
      abortAction: `/interaction/${details.uid}/abort`,
    });
  }

  /** After a first enrollment: the recovery codes, shown once, then continue. */
  async function afterEnrollment(ctx: Context, details: InteractionDetails, pending: Pending, passed: { amr: string[]; acr: string }): Promise<void> {
    const context = requestContext(ctx, details);
    const codes = (await mfa.recovery.remaining(pending.accountId)) === 0 ? await mfa.regenerateRecoveryCodes(pending.accountId, context) : undefined;
    if (!codes) return finish(ctx, pending.accountId, passed);
    await savePending(ctx, { ...pending, passed });
    render(ctx, 'mfa-recovery-codes', { codes, csrf: csrf.issue(details.uid), action: `/interaction/${details.uid}/continue`, continueLabel: 'Continue' });
  }

  return { requestContext, clientOf, decide, savePending, finish, showSecondFactor, showEnrollment, afterEnrollment };
}
