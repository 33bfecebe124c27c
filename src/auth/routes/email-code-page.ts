import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { render, type ViewData } from '../views.ts';

/** What a code page adds to its defaults on one showing: the code from the link, a notice, an error. */
export type CodePageExtra = Partial<Pick<ViewData['email-code'], 'code' | 'notice' | 'error' | 'errorLink'>>;

/** The page of a mailed code (views/email-code.eta), never cached; 400 when it shows an error. */
export function codePage(ctx: Context, data: Omit<ViewData['email-code'], 'code'> & { code?: string | undefined }): void {
  render(ctx, 'email-code', { ...data, code: data.code ?? '' }, data.error ? 400 : 200);
}

/** What a code that did not work is told (views/email-code.eta shows it as the alert). */
export function codeProblemText(outcome: { reason: string; attemptsLeft?: number | undefined }): string {
  switch (outcome.reason) {
    case 'malformed':
      return 'Enter the 6 digits from the message.';
    case 'wrong':
      return outcome.attemptsLeft
        ? `That code is not right. ${outcome.attemptsLeft === 1 ? '1 try' : `${outcome.attemptsLeft} tries`} left.`
        : 'That code is not right, and it no longer works. Ask for a new code.';
    case 'locked':
      return 'Too many wrong codes for this address. Wait a while before trying again.';
    default:
      return 'This code no longer works: it expired, or too many wrong codes were entered. Ask for a new code.';
  }
}

/**
 * A mail's link opened where the flow it belongs to is not (another browser, a mail app's own
 * browser, or after the flow ended): the code works only in the browser that asked for it, so
 * the page says where to use it. Other errors are thrown on.
 */
export function linkElsewhere(ctx: Context, error: unknown): void {
  if (!(error instanceof errors.SessionNotFound)) throw error;
  render(
    ctx,
    'error',
    {
      heading: 'Open this link where you started',
      message:
        'This link works only in the browser where you asked for the code, and only while that page is open. Go back to it and enter the 6-digit code from the message there, or start again.',
    },
    400,
  );
}
