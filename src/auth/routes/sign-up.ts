import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import type { SignUpService } from '../../services/sign-up.ts';
import { formBody } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';
import { codePage, codeProblemText, linkElsewhere, type CodePageExtra } from './email-code-page.ts';
import { field, interactionProblem, pendingOf, type EmailGate, type InteractionDetails } from './interaction-details.ts';
import { secondFactorSteps } from './second-factor-steps.ts';

/** The sign-up flow's code row is named after its interaction (a keyed digest of this is stored). */
const bindingOf = (uid: string): string => `sign-up:${uid}`;

const ERRORS = {
  email: 'Enter an email address like name@example.com.',
  // Says nothing about which domains are allowed, or whether the address has an account.
  domain: 'This email address cannot be used to create an account here. Use your work or school address, or ask your administrator.',
  mismatch: 'The passwords do not match.',
  busy: 'We sent several messages to this address recently. Wait an hour before trying again.',
} as const;

/**
 * Self-registration (SELF_REGISTRATION, issue 12): "Create an account" from the login page of an
 * interaction, the address and a password (the password rules of every other form), then the code
 * mailed to the address; the right code makes the account (verified) and signs it in, so the
 * relying party that sent the user gets a signed-in user back. The flow is the interaction: its
 * cookie is what makes this browser the one that asked, so a code works only where it was asked
 * for. Registered only when the setting is on: otherwise these paths do not exist (404).
 *
 * Every answer is the same whether or not the address has an account (its owner is mailed a
 * notice instead of a code); docs/security.md SU1–SU9.
 */
export function signUpRoutes({
  provider,
  accounts,
  mfa,
  signUp,
  csrf,
  issuerOrigin,
  loginLimit,
  emailGate,
  passwordMinLength,
}: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  signUp: SignUpService;
  csrf: CsrfTokens;
  issuerOrigin: string;
  /** The login bucket: every POST spends it, as the login form's do (R14). */
  loginLimit: Middleware;
  emailGate?: EmailGate | undefined;
  passwordMinLength: number;
}): Router {
  const router = new Router({ prefix: '/interaction' });
  const guard = [loginLimit, rejectCrossSite(issuerOrigin), formBody()];
  const steps = secondFactorSteps({ provider, accounts, mfa, csrf, emailGate });

  /** This browser's interaction, at its login prompt with nobody signed in yet; a POST carries the page's token. */
  async function load(ctx: Context): Promise<InteractionDetails> {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== (ctx.params as { uid?: string }).uid) throw interactionProblem('This page belongs to another sign-in request.');
    if (details.prompt.name !== 'login' || pendingOf(details)) throw interactionProblem('This step is not expected now.');
    if (ctx.method === 'POST') csrf.verify(details.uid, field(ctx, 'csrf', 128));
    return details;
  }

  const paths = (uid: string) => ({
    form: `/interaction/${uid}/sign-up`,
    verify: `/interaction/${uid}/sign-up/verify`,
    resend: `/interaction/${uid}/sign-up/resend`,
    signIn: `/interaction/${uid}`,
    abort: `/interaction/${uid}/abort`,
  });
  const link = (uid: string) => (code: string) => `/interaction/${uid}/sign-up/verify?code=${code}` as const;

  async function showForm(
    ctx: Context,
    details: InteractionDetails,
    extra: { email?: string; error?: string; errorField?: 'email' | 'password' } = {},
  ): Promise<void> {
    const to = paths(details.uid);
    render(
      ctx,
      'sign-up',
      {
        clientName: (await steps.clientOf(details)).name,
        email: extra.email ?? '',
        error: extra.error,
        errorField: extra.errorField,
        minLength: passwordMinLength,
        csrf: csrf.issue(details.uid),
        action: to.form,
        signInHref: to.signIn,
        abortAction: to.abort,
      },
      extra.error ? 400 : 200,
    );
  }

  /** The "check your mail" page; back to the form when the flow has no code (expired, or never started). */
  async function showCode(ctx: Context, details: InteractionDetails, extra: CodePageExtra = {}): Promise<void> {
    const pending = await signUp.pending(bindingOf(details.uid));
    if (!pending) return showForm(ctx, details, { error: 'This code has expired. Enter your details again to get a new one.' });
    const to = paths(details.uid);
    codePage(ctx, {
      purpose: 'sign-up',
      email: pending.email,
      sent: true,
      minutes: signUp.minutes,
      csrf: csrf.issue(details.uid),
      action: to.verify,
      resendAction: to.resend,
      back: { href: to.form, label: 'Use another email address' },
      abortAction: to.abort,
      abortLabel: 'Cancel and return to the application',
      ...extra,
    });
  }

  router.get('/:uid/sign-up', async function showSignUp(ctx) {
    await showForm(ctx, await load(ctx));
  });

  router.post('/:uid/sign-up', ...guard, async function submitSignUp(ctx) {
    const details = await load(ctx);
    const email = field(ctx, 'email', 320).trim();
    // The password is used exactly as typed: no trimming (ASVS 6.2.8).
    const password = field(ctx, 'password', 4096);
    // eslint-disable-next-line security/detect-possible-timing-attacks -- the user's own two entries, no stored secret
    if (password !== field(ctx, 'confirm_password', 4096))
      return showForm(ctx, details, { email, error: ERRORS.mismatch, errorField: 'password' });
    const result = await signUp.start({
      email,
      credential: { kind: 'password', password },
      binding: bindingOf(details.uid),
      link: link(details.uid),
      context: steps.requestContext(ctx, details),
    });
    if (!result.ok) {
      const error = result.error === 'password' ? result.description : ERRORS[result.error];
      return showForm(ctx, details, { email, error, errorField: result.error === 'password' ? 'password' : 'email' });
    }
    // POST → 303 → GET: a reload of the next page sends nothing again.
    ctx.status = 303;
    ctx.redirect(paths(details.uid).verify);
  });

  router.get('/:uid/sign-up/verify', async function showSignUpCode(ctx) {
    let details: InteractionDetails;
    try {
      details = await load(ctx);
    } catch (error) {
      // The mail's link opened in another browser (or after the sign-in request ended): it cannot
      // work there, and says so instead of a bare error.
      linkElsewhere(ctx, error);
      return;
    }
    const code = typeof ctx.query.code === 'string' ? ctx.query.code.slice(0, 12) : '';
    await showCode(ctx, details, { code });
  });

  router.post('/:uid/sign-up/verify', ...guard, async function submitSignUpCode(ctx) {
    const details = await load(ctx);
    const code = field(ctx, 'code', 32);
    // Taken before the check, as a password sign-in's: the account is new, so nothing ended its sessions meanwhile.
    const startedAtMs = Date.now();
    const context = steps.requestContext(ctx, details);
    const outcome = await signUp.verify(bindingOf(details.uid), code, context);
    if (!outcome.ok) {
      if (outcome.reason === 'exists') {
        // Only after the address was proven (the right code): saying so tells nobody anything new.
        return showForm(ctx, details, {
          error: 'This email address already has an account. Sign in with it instead.',
          errorField: 'email',
        });
      }
      return showCode(ctx, details, { code, error: codeProblemText(outcome) });
    }
    // Signed in as the new account; a second factor the client or role requires comes next.
    await steps.proceed(ctx, details, { accountId: outcome.user.id, amr: ['pwd'], startedAtMs });
  });

  router.post('/:uid/sign-up/resend', ...guard, async function resendSignUpCode(ctx) {
    const details = await load(ctx);
    const result = await signUp.resend(bindingOf(details.uid), link(details.uid), steps.requestContext(ctx, details));
    if (!result.ok && result.error === 'gone') return showCode(ctx, details);
    if (!result.ok) return showCode(ctx, details, { error: ERRORS.busy });
    await showCode(ctx, details, { notice: 'We sent a new code. Only the newest code works.' });
  });

  return router;
}
