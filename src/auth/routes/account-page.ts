import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { RequestContext, UserRow } from '../../services/accounts.ts';
import type { Actor } from '../../services/records.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import { formField } from '../koa-form-body.ts';
import type { CsrfTokens } from '../koa-csrf.ts';

/**
 * What every part of the account page shares (src/auth/routes/account.ts assembles them): the
 * confirmations it shows, its form fields and errors, and the kit each group of routes gets.
 */

/**
 * The confirmations the account page shows after a change (303 to /account?notice=<code>). Only
 * these codes are shown, each as its own text: a link with ?notice=<any text> shows nothing, so
 * nobody can make our page say their words (R8).
 */
export const NOTICES = new Map([
  ['password-changed', 'Your password was changed.'],
  ['password-changed-signed-out', 'Your password was changed. Other devices and apps were signed out.'],
  ['totp-already-on', 'An authenticator app is already set up.'],
  ['totp-start-again', 'Start the setup again.'],
  ['totp-on', 'Authenticator app turned on.'],
  ['totp-removed', 'Authenticator app removed.'],
  ['passkey-added', 'Passkey added.'],
  ['passkey-renamed', 'Passkey renamed.'],
  ['passkey-removed', 'Passkey removed.'],
  ['grant-revoked', 'Access removed.'],
  ['notice-dismissed', 'Notice dismissed.'],
  ['offer-accepted', 'The record was added to your records.'],
  ['offer-declined', 'Offer declined. The person who offered it is not told.'],
  ['share-left', 'The record was removed from your records.'],
  ['email-changed', 'Your email address was changed. Sign in with the new address from now on.'],
  ['email-kept', 'Your email address was not changed.'],
] as const);

export type NoticeCode = typeof NOTICES extends Map<infer K, string> ? K : never;

/** The provider session the page runs under, as the page reads it (account-sign-in.ts). */
export type AccountSession = { id: string; uid: string; accountId: string; loginTs: number; amr: string[]; acr: string };

/**
 * What a change needs beyond the session: nothing, a recent sign-in, a sign-in that passed a
 * second factor if the user has one, or (sign-in methods) both.
 */
export type Needs = 'session' | 'recent' | 'factor' | 'recent-factor';

export type AccountHandler = (ctx: Context, session: AccountSession, user: UserRow) => Promise<void>;

/** The kit each group of the page's routes registers with (built in account.ts). */
export type AccountPage = {
  router: Router;
  csrf: CsrfTokens;
  /** In front of every POST: the login bucket (R14), the cross-site check, the form parser. */
  guard: Middleware[];
  /** A POST route whose handler runs for a signed-in user whose sign-in meets `needs` (CSRF checked). */
  post: (path: string, handler: AccountHandler, options: { needs: Needs }) => void;
  /** Signed in, with the account loaded; otherwise off to sign in (GET) or 401 (POST). */
  signedIn: (ctx: Context) => Promise<{ session: AccountSession; user: UserRow } | undefined>;
  /** Signed in now, without sending anyone anywhere (a script's fetch). */
  currentSession: (ctx: Context) => Promise<{ session: AccountSession; user: UserRow } | undefined>;
  /** Sign-in method changes: a recent sign-in that passed a factor if the user has one; otherwise off to sign in again. */
  strongAndRecent: (ctx: Context, session: AccountSession, user: UserRow) => Promise<boolean>;
  /** The account page itself, with an error or a notice. */
  show: (ctx: Context, session: AccountSession, user: UserRow, extra?: { error?: string; notice?: string }) => Promise<void>;
};

export const accountProblem = (status: number, detail: string): Problem =>
  new Problem({ status, type: problemType('account'), title: 'This change cannot be made', detail });

export const field = (ctx: Context, name: string, max: number): string =>
  formField(ctx, name, max, (detail) => accountProblem(400, detail));

/** The CSRF token's subject: the session's forms only. */
export const csrfSubject = (session: AccountSession): string => `account:${session.id}`;

/**
 * The flow a passkey ceremony or TOTP setup on this page belongs to: the session. Its id is the
 * session cookie's value, so the MFA store keeps only a keyed digest of this (S12).
 */
export const ceremonyBinding = (session: AccountSession): string => `account:${session.id}`;

export const requestContext = (ctx: Context): RequestContext => ({
  ip: ctx.ip,
  userAgent: ctx.get('User-Agent'),
  clientId: ACCOUNT_CLIENT_ID,
});

export const offerActor = (ctx: Context, user: UserRow): Actor => ({ userId: user.id, clientId: ACCOUNT_CLIENT_ID, ip: ctx.ip });

/** Back to the page with one of its confirmations. */
export const done = (ctx: Context, notice: NoticeCode): void => {
  ctx.status = 303;
  ctx.redirect(`/account?notice=${notice}`);
};
