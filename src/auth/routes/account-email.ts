import type { Context } from 'koa';
import type { UserRow } from '../../services/accounts.ts';
import type { EmailVerification } from '../../services/email-verification.ts';
import { render } from '../views.ts';
import { accountProblem, csrfSubject, field, requestContext, type AccountPage, type AccountSession } from './account-page.ts';
import { codePage, codeProblemText, type CodePageExtra } from './email-code-page.ts';

const ERRORS = {
  email: 'Enter an email address like name@example.com.',
  domain: 'This email address cannot be used here. Use your work or school address, or ask your administrator.',
  same: 'This is already your email address.',
  busy: 'We sent several messages to this address recently. Wait an hour before trying again.',
  taken: 'That address is now used by another account. Your email address was not changed.',
} as const;

/**
 * Changing the account's address (issue 12): the new address gets a code, and the change takes
 * effect only when that code is entered in the same session (the code row is bound to the session
 * id, the cookie's value, by keyed digest); then the account's address is the new one, verified,
 * and the old address is told. Asking needs a recent sign-in that passed the user's second factor
 * (an address is a way into the account: password resets go to it).
 *
 * A new address another account has is answered as success and never takes effect (its owner is
 * told instead); email normalisation and uniqueness are the accounts' own (R7).
 */
export function accountEmailRoutes(
  { router, csrf, post, signedIn, show }: AccountPage,
  {
    emailVerification,
    mailAvailable,
  }: {
    emailVerification: EmailVerification;
    /** Without a mail transport (production without MAIL_URL) there is nothing to send a code with. */
    mailAvailable: boolean;
  },
): void {
  const bindingOf = (session: AccountSession): string => `change:account:${session.id}`;
  const link = (code: string) => `/account/email/verify?code=${code}` as const;
  const available = (): void => {
    if (!mailAvailable) throw accountProblem(404, 'Changing the email address is not available here.');
  };

  async function showCode(ctx: Context, session: AccountSession, user: UserRow, extra: CodePageExtra = {}): Promise<void> {
    const pending = await emailVerification.pendingChange(bindingOf(session));
    if (!pending) {
      // No change waits in this session: the link was opened in another browser, or the code expired.
      render(
        ctx,
        'error',
        {
          heading: 'No address change is waiting here',
          message:
            'A code works only in the browser where you asked for the change, and only for a while. Open your account there, or ask for the change again.',
          home: '/account',
        },
        400,
      );
      return;
    }
    codePage(ctx, {
      purpose: 'change',
      email: pending.row.email,
      currentEmail: user.email,
      sent: true,
      minutes: emailVerification.minutes,
      csrf: csrf.issue(csrfSubject(session)),
      action: '/account/email/verify',
      resendAction: '/account/email/resend',
      back: { href: '/account', label: 'Back to your account' },
      abortAction: '/account/email/cancel',
      abortLabel: 'Keep my current address',
      ...extra,
    });
  }

  post(
    '/email',
    async (ctx, session, user) => {
      available();
      const result = await emailVerification.requestChange(
        user,
        field(ctx, 'new_email', 320),
        bindingOf(session),
        link,
        requestContext(ctx),
      );
      if (!result.ok) return show(ctx, session, user, { error: ERRORS[result.error] });
      ctx.status = 303;
      ctx.redirect('/account/email/verify');
    },
    { needs: 'recent-factor' },
  );

  router.get('/email/verify', async function showEmailChange(ctx) {
    available();
    const auth = await signedIn(ctx);
    if (!auth) return;
    await showCode(ctx, auth.session, auth.user, { code: typeof ctx.query.code === 'string' ? ctx.query.code.slice(0, 12) : '' });
  });

  post(
    '/email/verify',
    async (ctx, session, user) => {
      available();
      const code = field(ctx, 'code', 32);
      const outcome = await emailVerification.confirmChange(user, bindingOf(session), code, requestContext(ctx));
      if (outcome.ok) {
        ctx.status = 303;
        ctx.redirect('/account?notice=email-changed');
        return;
      }
      // Only after the new address was proven by its code: saying so tells nobody anything new.
      if (outcome.reason === 'exists') return show(ctx, session, user, { error: ERRORS.taken });
      await showCode(ctx, session, user, { code, error: codeProblemText(outcome) });
    },
    { needs: 'session' },
  );

  post(
    '/email/resend',
    async (ctx, session, user) => {
      available();
      const pending = await emailVerification.pendingChange(bindingOf(session));
      if (!pending) return showCode(ctx, session, user);
      const result = await emailVerification.requestChange(user, pending.row.email, bindingOf(session), link, requestContext(ctx));
      await showCode(
        ctx,
        session,
        user,
        result.ok ? { notice: 'We sent a new code. Only the newest code works.' } : { error: ERRORS.busy },
      );
    },
    { needs: 'session' },
  );

  post(
    '/email/cancel',
    async (ctx, session) => {
      await emailVerification.cancelChange(bindingOf(session));
      ctx.status = 303;
      ctx.redirect('/account?notice=email-kept');
    },
    { needs: 'session' },
  );
}
