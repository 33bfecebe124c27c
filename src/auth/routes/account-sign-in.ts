import { randomBytes, timingSafeEqual } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService, UserRow } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { ACR, acrRank } from '../../services/mfa-policy.ts';
import { signInCounts } from '../../services/session-validity.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';
import { accountProblem, csrfSubject, field, type AccountSession } from './account-page.ts';

const STATE_COOKIE = 'portcullis.account-state';

/**
 * The account page's own sign-in: it signs in through the provider as the first-party
 * `portcullis-account` client (GET /account/login, /account/callback) and then reads the
 * provider's own session cookie, so there is one session, one logout and one set of login rules.
 * Also the checks a change makes of that session: signed in, recent (RECENT_AUTH_SECONDS), a
 * second factor passed; each failing one sends the user through the provider's login again.
 */
export function accountSignIn({
  router,
  provider,
  accounts,
  mfa,
  csrf,
  issuer,
  recentAuthSeconds,
  sessionLifetime,
}: {
  router: Router;
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  csrf: CsrfTokens;
  issuer: string;
  recentAuthSeconds: number;
  sessionLifetime: (session: { loginTs?: number | undefined }) => number;
}) {
  const secureCookies = issuer.startsWith('https://');

  /**
   * The browser's provider session and its active account, when its sign-in still counts: a
   * session from before the account's last "sign out everywhere" (or password change, MFA
   * reset, disabling) is no session here either, even if a request in flight wrote it back (R8,
   * R13); it is neither used nor saved again.
   */
  async function currentSession(ctx: Context): Promise<{ session: AccountSession; user: UserRow } | undefined> {
    const session = await provider.Session.get(ctx);
    if (!session.accountId || !session.loginTs) return undefined;
    const user = await accounts.findActive(session.accountId);
    if (!user || !signInCounts(user, { loginTs: session.loginTs, sessionUid: session.uid })) return undefined;
    // Using the account page is activity too (ASVS 7.3.1): save the session with a fresh
    // lifetime and move the cookie's Expires with it, as the provider's own routes do.
    await session.save(sessionLifetime(session));
    if (session.exp) {
      ctx.cookies.set(provider.cookieName('session'), session.jti, {
        httpOnly: true,
        sameSite: 'lax',
        secure: secureCookies,
        signed: true,
        expires: new Date(session.exp * 1000),
      });
    }
    return {
      session: {
        id: session.jti,
        uid: session.uid,
        accountId: session.accountId,
        loginTs: session.loginTs,
        amr: session.amr ?? [],
        acr: session.acr ?? '',
      },
      user,
    };
  }

  const startLogin = (ctx: Context, reauth: boolean): void => {
    const state = randomBytes(24).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, state, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookies,
      signed: true,
      path: '/account',
      maxAge: 600_000,
    });
    const url = new URL('/auth', issuer);
    url.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'none',
      scope: 'openid',
      redirect_uri: new URL('/account/callback', issuer).href,
      state,
      ...(reauth ? { prompt: 'login' } : {}),
    }).toString();
    ctx.redirect(url.href);
  };

  /** Signed in, with the account loaded; otherwise off to sign in. */
  async function signedIn(ctx: Context): Promise<{ session: AccountSession; user: UserRow } | undefined> {
    const current = await currentSession(ctx);
    if (!current) {
      if (ctx.method === 'GET') startLogin(ctx, false);
      else throw accountProblem(401, 'Your session has ended. Sign in again.');
      return undefined;
    }
    if (ctx.method === 'POST') csrf.verify(csrfSubject(current.session), field(ctx, 'csrf', 128));
    return current;
  }

  /** Sensitive changes: a recent sign-in, else a fresh one (ASVS 7.5.1). */
  function recent(ctx: Context, session: AccountSession): boolean {
    if (Math.floor(Date.now() / 1000) - session.loginTs <= recentAuthSeconds) return true;
    ctx.status = 303;
    startLogin(ctx, true);
    return false;
  }

  /**
   * Whether the session's sign-in passed one of the user's second factors, or the user has none
   * (R1). Otherwise off to sign in again (prompt=login), and that sign-in asks for a factor: a
   * session from a password-only sign-in — made before the first factor was set up, or a stolen
   * cookie — changes no credential of an account that has a second factor.
   */
  async function factorPassed(ctx: Context, session: AccountSession, user: UserRow): Promise<boolean> {
    if (acrRank(session.acr) >= acrRank(ACR.mfa)) return true;
    if ((await mfa.enrolled(user.id)).length === 0) return true;
    ctx.status = 303;
    startLogin(ctx, true);
    return false;
  }

  /** Sign-in method changes (factors, recovery codes): recent, and with a factor if the user has one. */
  async function strongAndRecent(ctx: Context, session: AccountSession, user: UserRow): Promise<boolean> {
    return recent(ctx, session) && (await factorPassed(ctx, session, user));
  }

  router.get('/login', function accountLogin(ctx) {
    // A re-authentication (prompt=login) starts only from our own pages (R14): a link or form on
    // another site would send a signed-in user through the login page again and replace the state
    // of an account sign-in in progress. Anything else (cross-site, a typed URL, a browser without
    // Fetch Metadata) shows the account page as it is, which asks for a sign-in only without one.
    if (ctx.query.reauth === '1' && ctx.get('Sec-Fetch-Site') !== 'same-origin') {
      ctx.redirect('/account');
      return;
    }
    startLogin(ctx, ctx.query.reauth === '1');
  });

  router.get('/callback', function accountCallback(ctx) {
    const expected = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: '/account' });
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const matches =
      expected !== undefined && expected.length === state.length && timingSafeEqual(Buffer.from(expected), Buffer.from(state));
    if (!matches) throw accountProblem(400, 'This sign-in response does not belong to this browser.');
    if (typeof ctx.query.error === 'string') {
      render(ctx, 'error', { heading: 'Not signed in', message: 'Signing in to your account was cancelled.' }, 400);
      return;
    }
    ctx.redirect('/account');
  });

  return { currentSession, signedIn, recent, factorPassed, strongAndRecent };
}

export type AccountSignIn = ReturnType<typeof accountSignIn>;
