import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { acrMeeting, authenticationContext } from '../../services/mfa-policy.ts';
import { signInCounts } from '../../services/session-validity.ts';
import { parseAuthenticationJson } from '../../services/webauthn-ceremony.ts';
import { STEP_UP_REASON } from '../interaction-policy.ts';
import { formBody } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { render } from '../views.ts';
import { consentRoutes } from './consent.ts';
import {
  essentialAcrs,
  field,
  interactionProblem,
  pendingOf,
  type EmailGate,
  type InteractionDetails,
  type InteractionKit,
  type LiveSession,
  type Pending,
} from './interaction-details.ts';
import { GENERIC_PASSKEY_ERROR, secondFactorRoutes } from './second-factor-routes.ts';
import { secondFactorSteps } from './second-factor-steps.ts';

const GENERIC_LOGIN_ERROR = 'The email or password is not right.';

/**
 * Login, second factor, enrollment and consent pages (panva's interaction pattern). Every step
 * reloads the interaction from its cookie, checks that the URL's uid is that interaction and
 * that the step is the one expected now, so steps cannot be skipped or replayed (T31, T32).
 */
export function interactionRoutes({
  provider,
  accounts,
  mfa,
  csrf,
  issuerOrigin,
  recentAuthSeconds,
  loginLimit,
  emailGate,
  signUp = false,
}: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  csrf: CsrfTokens;
  issuerOrigin: string;
  /** How recent a session's sign-in must be for a step-up to enroll a first factor (RECENT_AUTH_SECONDS). */
  recentAuthSeconds: number;
  /** The login bucket's rate limit, as middleware of each POST route: any spelling the router accepts is counted (R3, R14). */
  loginLimit: Middleware;
  /** REQUIRE_VERIFIED_EMAIL: an unverified account's sign-in waits for its address's code (routes/verify-email.ts). */
  emailGate?: EmailGate | undefined;
  /** SELF_REGISTRATION: the login page links to routes/sign-up.ts. */
  signUp?: boolean;
}): Router {
  const router = new Router({ prefix: '/interaction' });
  const body = formBody();
  // Every POST spends the login bucket first (R14): the password and passkey forms, and each
  // second-factor and enrolment step, not only the lockout budgets behind them.
  const guard = [loginLimit, rejectCrossSite(issuerOrigin), body];

  async function load(ctx: Context, expectedPrompt?: string): Promise<InteractionDetails> {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== (ctx.params as { uid?: string }).uid) throw interactionProblem('This page belongs to another sign-in request.');
    if (expectedPrompt && details.prompt.name !== expectedPrompt) throw interactionProblem('This step is not expected now.');
    if (ctx.method === 'POST') csrf.verify(details.uid, field(ctx, 'csrf', 128));
    return details;
  }

  /**
   * A step of the second factor: the login prompt with a pending account. While recovery codes
   * are on screen only "continue" is expected; otherwise only the factor steps are.
   */
  async function loadPending(ctx: Context, { codesShown = false } = {}): Promise<{ details: InteractionDetails; pending: Pending }> {
    const details = await load(ctx, 'login');
    const pending = pendingOf(details);
    if (!pending || Boolean(pending.codesShown) !== codesShown) throw interactionProblem('This step is not expected now.');
    return { details, pending };
  }

  const steps = secondFactorSteps({ provider, accounts, mfa, csrf, emailGate });
  const { requestContext, clientOf, decide, savePending, finish, showSecondFactor, beginTotpIfNext } = steps;

  /**
   * The browser's session as it is stored now (the interaction holds only a copy), when it is
   * still signed in to the interaction's account and its sign-in still counts: a session from
   * before the account's last "sign out everywhere" neither steps up nor consents (R13).
   */
  async function liveSession(details: InteractionDetails): Promise<LiveSession | undefined> {
    const copy = details.session as { accountId?: string; cookie?: string } | undefined;
    const session = copy?.cookie ? await provider.Session.find(copy.cookie) : undefined;
    if (!session?.accountId || session.accountId !== copy?.accountId || session.loginTs === undefined) return undefined;
    const account = await accounts.findActive(session.accountId);
    if (!account || !signInCounts(account, { loginTs: session.loginTs, sessionUid: session.uid })) return undefined;
    return {
      accountId: session.accountId,
      loginTs: session.loginTs,
      uid: session.uid,
      amr: session.amr ?? ['pwd'],
      acr: session.acr ?? '',
    };
  }

  const redirectToStep = (ctx: Context, uid: string, query = ''): void => {
    ctx.status = 303;
    ctx.redirect(`/interaction/${uid}${query}`);
  };

  const kit: InteractionKit = { router, csrf, guard, load, loadPending, liveSession, redirectToStep, steps };
  const consent = consentRoutes(kit, { provider, accounts });
  secondFactorRoutes(kit, { accounts, mfa });

  async function showLogin(ctx: Context, details: InteractionDetails, extra: { email?: string; error?: string } = {}): Promise<void> {
    render(ctx, 'login', {
      clientName: (await clientOf(details)).name,
      email: extra.email ?? (typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 320) : ''),
      error: extra.error,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/login`,
      passkeyAction: `/interaction/${details.uid}/passkey`,
      passkeyOptionsUrl: `/interaction/${details.uid}/passkey/options`,
      abortAction: `/interaction/${details.uid}/abort`,
      signUpHref: signUp ? `/interaction/${details.uid}/sign-up` : undefined,
    });
  }

  router.get('/:uid', async function showInteraction(ctx) {
    const details = await load(ctx);
    if (details.prompt.name === 'login') {
      const pending = pendingOf(details);
      if (pending?.verifyEmail) {
        redirectToStep(ctx, details.uid, '/verify-email');
        return;
      }
      if (pending?.codesShown) {
        render(ctx, 'mfa-recovery-codes', {
          codes: undefined,
          csrf: csrf.issue(details.uid),
          action: `/interaction/${details.uid}/continue`,
          continueLabel: 'Continue',
        });
        return;
      }
      if (pending) return showSecondFactor(ctx, details, pending);
      const onlyStepUp =
        details.prompt.reasons.length > 0 && details.prompt.reasons.every((r) => r === STEP_UP_REASON || r.startsWith('essential_acr'));
      const session = onlyStepUp ? await liveSession(details) : undefined;
      if (session) {
        // Step-up (Keycloak-style): the session stands, only the missing factor is asked. A
        // factor passed in the session's own sign-in does not count (R1): a user who has one
        // passes it here again before anything is enrolled. A user who has none enrolls one only
        // after a recent sign-in, as on the account page; otherwise the password comes first.
        // Nothing to ask ('done') never finishes a sign-in without a credential either.
        // The step-up belongs to the session's sign-in: that is its start (and its auth_time).
        const pendingStepUp: Pending = {
          accountId: session.accountId,
          amr: session.amr,
          startedAtMs: session.loginTs * 1000,
          sessionUid: session.uid,
        };
        // Asked for an essential acr by name that the session's sign-in already meets (a passkey
        // sign-in, asked for loa:2): oidc-provider matches names, the policy ranks. Nothing is
        // asked; the same sign-in is named with the requested value (OIDC Core §5.5.1.1).
        const onlyNamed = details.prompt.reasons.every((r) => r.startsWith('essential_acr'));
        if (onlyNamed && acrMeeting(essentialAcrs(details) ?? [], session.acr) !== session.acr) {
          return finish(ctx, details, session.accountId, { amr: session.amr, acr: session.acr }, pendingStepUp);
        }
        const decision = await decide(details, pendingStepUp);
        const recent = Math.floor(Date.now() / 1000) - session.loginTs <= recentAuthSeconds;
        if (decision.kind === 'challenge' || (decision.kind === 'enroll' && recent)) {
          await savePending(ctx, pendingStepUp);
          return showSecondFactor(ctx, details, pendingStepUp);
        }
      }
      return showLogin(ctx, details);
    }
    if (details.prompt.name === 'consent') return consent.show(ctx, details);
    throw interactionProblem('This sign-in step is not supported.');
  });

  router.post('/:uid/login', ...guard, async function submitLogin(ctx) {
    const details = await load(ctx, 'login');
    if (pendingOf(details)) throw interactionProblem('This step is not expected now.');
    const email = field(ctx, 'email', 320).trim();
    // The password is used exactly as typed: no trimming (ASVS 6.2.8).
    const password = field(ctx, 'password', 4096);
    // Taken before the check: a password change that completes meanwhile ends this sign-in too.
    const startedAtMs = Date.now();
    const user = email && password ? await accounts.authenticate(email, password, requestContext(ctx, details)) : undefined;
    if (!user) return showLogin(ctx, details, { email, error: GENERIC_LOGIN_ERROR });
    const pending: Pending = { accountId: user.id, amr: ['pwd'], startedAtMs };
    const decision = await decide(details, pending);
    if (decision.kind === 'done') return finish(ctx, details, user.id, authenticationContext({ first: 'password' }), pending);
    await savePending(ctx, pending);
    // This form is a POST with the page's token: an app setup that comes next begins here, so the
    // page after it shows the secret (its GET never begins one, R14).
    await beginTotpIfNext(details, pending, decision);
    redirectToStep(ctx, details.uid);
  });

  // Passwordless options are fetched by the page's script, so the challenge is issued only when
  // a passkey ceremony can actually start (and the login page itself stays the same for T33). A
  // POST with the page's token (R14): no other site's page starts a ceremony in this browser.
  router.post('/:uid/passkey/options', ...guard, async function passkeyOptions(ctx) {
    const details = await load(ctx, 'login');
    if (pendingOf(details)) throw interactionProblem('This step is not expected now.');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await mfa.webauthn.authenticationOptions({ binding: details.uid, purpose: 'passwordless' });
  });

  // Each answer costs a credential lookup and a signature check (R13).
  router.post('/:uid/passkey', ...guard, async function submitPasskey(ctx) {
    const details = await load(ctx, 'login');
    if (pendingOf(details)) throw interactionProblem('This step is not expected now.');
    const response = parseAuthenticationJson(field(ctx, 'response', 16_384));
    const startedAtMs = Date.now();
    const result = response ? await mfa.passwordless(details.uid, response, requestContext(ctx, details)) : undefined;
    if (!result?.ok) return showLogin(ctx, details, { error: GENERIC_PASSKEY_ERROR });
    const account = await accounts.findActive(result.userId);
    if (!account) return showLogin(ctx, details, { error: GENERIC_PASSKEY_ERROR });
    // A passkey without user verification may fall short of the request (loa:1): the provider
    // then asks for the rest as a step-up of this session, so it is no dead end (R14).
    await finish(
      ctx,
      details,
      account.id,
      authenticationContext({ first: 'passkey', deviceType: result.deviceType, userVerified: result.userVerified }),
      { startedAtMs },
      { stepUpFollows: true },
    );
  });

  router.post('/:uid/abort', ...guard, async function abortInteraction(ctx) {
    await load(ctx);
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'The user cancelled the request.' },
      { mergeWithLastSubmission: false },
    );
  });

  return router;
}
