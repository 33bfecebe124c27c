import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService, UserRow } from '../../services/accounts.ts';
import type { EmailVerification } from '../../services/email-verification.ts';
import type { MfaService } from '../../services/mfa.ts';
import { formBody } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { codePage, codeProblemText, linkElsewhere, type CodePageExtra } from './email-code-page.ts';
import { field, interactionProblem, pendingOf, type EmailGate, type InteractionDetails, type Pending } from './interaction-details.ts';
import { secondFactorSteps } from './second-factor-steps.ts';

/** The verification's code row is named after its interaction (a keyed digest of this is stored). */
const bindingOf = (uid: string): string => `verify:${uid}`;
const link = (uid: string) => (code: string) => `/interaction/${uid}/verify-email?code=${code}` as const;
const NOT_SENT = {
  busy: 'We sent several messages to this address recently. Wait an hour before asking for another code.',
  unmailable: 'We cannot send mail to this address. Ask your administrator to correct it.',
} as const;

/**
 * REQUIRE_VERIFIED_EMAIL (issue 12): a sign-in of an account whose address is not verified is
 * held when it would finish (every way of signing in finishes in sign-in-finish.ts,
 * after every factor passed): the result waits in the interaction, the address gets a code, and
 * only the right code, entered in this interaction, marks the address verified and finishes the
 * sign-in. Accounts made by self-registration are verified already; this is for accounts made by
 * an administrator without --email-verified, or before verification existed.
 */
export function emailGateFor({ provider, emailVerification }: { provider: Provider; emailVerification: EmailVerification }): EmailGate {
  return async function holdUnverified(ctx, details, account, pending) {
    if (account.email_verified) return false;
    await provider.interactionResult(ctx.req, ctx.res, { portcullis: pending }, { mergeWithLastSubmission: false });
    // A code goes out only from a form (a POST with the page's token), never from a page view.
    if (ctx.method === 'POST' && !(await emailVerification.pendingVerification(bindingOf(details.uid)))) {
      await emailVerification.sendVerification(account, bindingOf(details.uid), link(details.uid), {
        ip: ctx.ip,
        userAgent: ctx.get('User-Agent'),
        clientId: String(details.params.client_id),
      });
    }
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}/verify-email`);
    return true;
  };
}

/** The page of a held sign-in: the code, a new code, or giving up (back to the application). */
export function verifyEmailRoutes({
  provider,
  accounts,
  mfa,
  emailVerification,
  csrf,
  issuerOrigin,
  loginLimit,
  emailGate,
}: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  emailVerification: EmailVerification;
  csrf: CsrfTokens;
  issuerOrigin: string;
  loginLimit: Middleware;
  emailGate: EmailGate;
}): Router {
  const router = new Router({ prefix: '/interaction' });
  const guard = [loginLimit, rejectCrossSite(issuerOrigin), formBody()];
  const steps = secondFactorSteps({ provider, accounts, mfa, csrf, emailGate });

  /** This browser's interaction, holding a finished sign-in for its address's code. */
  async function load(ctx: Context): Promise<{ details: InteractionDetails; pending: Pending; account: UserRow }> {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== (ctx.params as { uid?: string }).uid) throw interactionProblem('This page belongs to another sign-in request.');
    const pending = details.prompt.name === 'login' ? pendingOf(details) : undefined;
    if (!pending?.verifyEmail || !pending.passed) throw interactionProblem('This step is not expected now.');
    if (ctx.method === 'POST') csrf.verify(details.uid, field(ctx, 'csrf', 128));
    const account = await accounts.findActive(pending.accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    return { details, pending, account };
  }

  async function show(ctx: Context, details: InteractionDetails, account: UserRow, extra: CodePageExtra = {}): Promise<void> {
    const sent = await emailVerification.pendingVerification(bindingOf(details.uid));
    codePage(ctx, {
      purpose: 'verify',
      email: account.email,
      sent: sent !== undefined,
      minutes: emailVerification.minutes,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/verify-email`,
      resendAction: `/interaction/${details.uid}/verify-email/send`,
      abortAction: `/interaction/${details.uid}/abort`,
      abortLabel: 'Cancel and return to the application',
      ...extra,
    });
  }

  /** Verified: the held sign-in finishes as it would have (finish() passes the gate now). */
  async function release(ctx: Context, details: InteractionDetails, pending: Pending): Promise<void> {
    const { verifyEmail, passed } = pending;
    if (!verifyEmail || !passed) throw interactionProblem('This step is not expected now.');
    await steps.finish(ctx, details, pending.accountId, passed, pending, { stepUpFollows: verifyEmail.stepUpFollows });
  }

  router.get('/:uid/verify-email', async function showVerifyEmail(ctx) {
    let loaded: Awaited<ReturnType<typeof load>>;
    try {
      loaded = await load(ctx);
    } catch (error) {
      linkElsewhere(ctx, error);
      return;
    }
    // Verified meanwhile (in another tab): nothing to ask.
    if (loaded.account.email_verified) return release(ctx, loaded.details, loaded.pending);
    const code = typeof ctx.query.code === 'string' ? ctx.query.code.slice(0, 12) : '';
    await show(ctx, loaded.details, loaded.account, { code });
  });

  router.post('/:uid/verify-email', ...guard, async function submitVerifyEmail(ctx) {
    const { details, pending, account } = await load(ctx);
    if (account.email_verified) return release(ctx, details, pending);
    const code = field(ctx, 'code', 32);
    const outcome = await emailVerification.confirmVerification(account, bindingOf(details.uid), code, steps.requestContext(ctx, details));
    if (!outcome.ok) return show(ctx, details, account, { code, error: codeProblemText(outcome) });
    await release(ctx, details, pending);
  });

  router.post('/:uid/verify-email/send', ...guard, async function sendVerifyEmail(ctx) {
    const { details, account } = await load(ctx);
    const sent = await emailVerification.sendVerification(
      account,
      bindingOf(details.uid),
      link(details.uid),
      steps.requestContext(ctx, details),
    );
    await show(
      ctx,
      details,
      account,
      sent.ok ? { notice: 'We sent a new code. Only the newest code works.' } : { error: NOT_SENT[sent.error] },
    );
  });

  return router;
}
