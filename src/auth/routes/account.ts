import Router from '@koa/router';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountSessions } from '../../services/account-sessions.ts';
import type { AccountService } from '../../services/accounts.ts';
import type { EmailVerification } from '../../services/email-verification.ts';
import type { MfaService } from '../../services/mfa.ts';
import { formBody } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { accountEmailRoutes } from './account-email.ts';
import { accountOverview, type AccountOverviewSources } from './account-overview.ts';
import type { AccountPage } from './account-page.ts';
import { accountSessionRoutes } from './account-sessions.ts';
import { accountShareRoutes, type ShareAnswers } from './account-shares.ts';
import { accountSignIn } from './account-sign-in.ts';
import { accountSignInMethodRoutes } from './account-sign-in-methods.ts';

/**
 * The account page (ISSUER/account), assembled from its parts: its own sign-in through the
 * provider and the checks of that session (account-sign-in.ts), the page itself
 * (account-overview.ts), sign-in methods (account-sign-in-methods.ts), sessions and connected
 * apps (account-sessions.ts), shared records (account-shares.ts) and the address
 * (account-email.ts). Sensitive changes need a
 * sign-in within recentAuthSeconds (RECENT_AUTH_SECONDS); otherwise the page sends the user
 * through prompt=login again.
 */
export function accountRoutes(deps: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  sessions: AccountSessions;
  csrf: CsrfTokens;
  issuer: string;
  /** How recent a sign-in must be for password and sign-in method changes (RECENT_AUTH_SECONDS). */
  recentAuthSeconds: number;
  /** The login bucket's rate limit, spent by every POST of the page (R14): passwords and factors are checked here too. */
  loginLimit: Middleware;
  /** The provider's ttl.Session (sessionTtl): idle time, capped by the absolute limit. */
  sessionLifetime: (session: { loginTs?: number | undefined }) => number;
  /** Recent refresh token reuse and reads of the user's shared records, shown on the page. */
  reuseNotices: AccountOverviewSources['reuseNotices'];
  accessHistory: AccountOverviewSources['accessHistory'];
  /** Records other users offered to share with the user (R13): listed, accepted, declined, left. */
  offers: AccountOverviewSources['offers'] & ShareAnswers;
  /** Address changes (account-email.ts); `mailAvailable`: a transport exists to send their codes. */
  emailVerification: EmailVerification;
  mailAvailable: boolean;
}): Router {
  const { provider, accounts, mfa, sessions, csrf, issuer } = deps;
  const router = new Router({ prefix: '/account' });
  const signIn = accountSignIn({ router, ...deps });
  const guard = [deps.loginLimit, rejectCrossSite(new URL(issuer).origin), formBody()];
  const page: AccountPage = {
    router,
    csrf,
    guard,
    signedIn: signIn.signedIn,
    currentSession: signIn.currentSession,
    strongAndRecent: signIn.strongAndRecent,
    show: accountOverview({
      provider,
      mfa,
      sessions,
      csrf,
      sources: { reuseNotices: deps.reuseNotices, accessHistory: deps.accessHistory, offers: deps.offers },
      emailChange: deps.mailAvailable,
    }),
    post: (path, handler, { needs }) => {
      router.post(path, ...guard, async (ctx) => {
        const auth = await signIn.signedIn(ctx);
        if (!auth) return;
        if (needs === 'recent' && !signIn.recent(ctx, auth.session)) return;
        if (needs === 'factor' && !(await signIn.factorPassed(ctx, auth.session, auth.user))) return;
        if (needs === 'recent-factor' && !(await signIn.strongAndRecent(ctx, auth.session, auth.user))) return;
        await handler(ctx, auth.session, auth.user);
      });
    },
  };

  router.get('/', async function showAccountPage(ctx) {
    const auth = await signIn.signedIn(ctx);
    if (auth) await page.show(ctx, auth.session, auth.user);
  });
  accountSignInMethodRoutes(page, { accounts, mfa, sessions });
  accountSessionRoutes(page, { provider, mfa, sessions });
  accountShareRoutes(page, deps.offers);
  accountEmailRoutes(page, { emailVerification: deps.emailVerification, mailAvailable: deps.mailAvailable });
  return router;
}
