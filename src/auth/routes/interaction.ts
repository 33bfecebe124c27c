import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { acrMeeting, authenticationContext, type LoginMethod } from '../../services/mfa-policy.ts';
import { signInCounts } from '../../services/session-validity.ts';
import { parseAuthenticationJson, parseRegistrationJson } from '../../services/webauthn.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import { CONFIRM_EVERY_TIME_DETAIL, STEP_UP_REASON } from '../interaction-policy.ts';
import { formBody, formField } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { describeScopes } from '../../shared/scopes.ts';
import { splitOpenIdScopes } from '../api-scope-grants.ts';
import { render } from '../views.ts';
import {
  essentialAcrs,
  interactionProblem,
  pendingOf,
  secondFactorSteps,
  type InteractionDetails,
  type Pending,
} from './second-factor-steps.ts';

const GENERIC_LOGIN_ERROR = 'The email or password is not right.';
const GENERIC_CODE_ERROR = 'That code did not work. Check your app and try again.';
const GENERIC_PASSKEY_ERROR = 'The passkey could not be used. Try again or choose another way.';
const LOCKED_ERROR = 'Too many attempts. Wait a while before trying again.';

/** A single short string form field; anything else (arrays, huge values) is refused. */
const field = (ctx: Context, name: string, max: number): string => formField(ctx, name, max, interactionProblem);

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

  const { requestContext, clientOf, decide, savePending, finish, withPassed, proceed, showSecondFactor, beginTotpIfNext, afterEnrollment } =
    secondFactorSteps({ provider, accounts, mfa, csrf });

  /**
   * The browser's session as it is stored now (the interaction holds only a copy), when it is
   * still signed in to the interaction's account and its sign-in still counts: a session from
   * before the account's last "sign out everywhere" neither steps up nor consents (R13).
   */
  async function liveSession(
    details: InteractionDetails,
  ): Promise<{ accountId: string; loginTs: number; uid: string; amr: string[]; acr: string } | undefined> {
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
    });
  }

  router.get('/:uid', async function showInteraction(ctx) {
    const details = await load(ctx);
    if (details.prompt.name === 'login') {
      const pending = pendingOf(details);
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
    if (details.prompt.name === 'consent') {
      const accountId = (await liveSession(details))?.accountId;
      if (!accountId) throw interactionProblem('Your session has ended. Start again.');
      if (details.params.client_id === ACCOUNT_CLIENT_ID) {
        // The account page is first party: signing in to it needs no consent screen.
        return grantAndFinish(ctx, details, accountId);
      }
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingResourceScopes?: Record<string, string[]>;
        [CONFIRM_EVERY_TIME_DETAIL]?: string[];
      };
      // What the grant lacks, plus what is confirmed every time although the grant holds it (account:erase).
      const scopes = [
        // API scopes among the OpenID ones are never granted as such (R13): shown only for the API resource.
        ...splitOpenIdScopes(missing.missingOIDCScope ?? []).granted,
        ...Object.values(missing.missingResourceScopes ?? {}).flat(),
        // eslint-disable-next-line security/detect-object-injection -- a constant key (interaction-policy.ts)
        ...(missing[CONFIRM_EVERY_TIME_DETAIL] ?? []),
      ];
      const account = await accounts.findActive(accountId);
      render(ctx, 'consent', {
        clientName: (await clientOf(details)).name,
        email: account?.email ?? '',
        scopes: describeScopes(scopes.filter((s) => s !== 'openid' || scopes.length === 1)),
        csrf: csrf.issue(details.uid),
        action: `/interaction/${details.uid}/confirm`,
        abortAction: `/interaction/${details.uid}/abort`,
      });
      return;
    }
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

  router.post('/:uid/mfa/:method', ...guard, async function submitSecondFactor(ctx) {
    const { details, pending } = await loadPending(ctx);
    const method = (ctx.params as { method: string }).method;
    const decision = await decide(details, pending);
    if (
      decision.kind !== 'challenge' ||
      !((decision.factors as string[]).includes(method) || (method === 'recovery' && decision.recovery))
    ) {
      throw interactionProblem('This way of signing in is not available.');
    }
    const context = requestContext(ctx, details);
    let outcome: { ok: boolean; locked?: boolean };
    let login: LoginMethod | undefined;
    if (method === 'totp') {
      outcome = await mfa.verifyTotp(pending.accountId, field(ctx, 'code', 32), context);
      login = { first: 'password', second: 'totp' };
    } else if (method === 'recovery') {
      outcome = await mfa.useRecoveryCode(pending.accountId, field(ctx, 'code', 64), context);
      login = { first: 'password', second: 'recovery' };
    } else {
      const response = parseAuthenticationJson(field(ctx, 'response', 16_384));
      const verified = await mfa.verifyWebAuthn(pending.accountId, details.uid, response, context, {
        requireUserVerification: decision.userVerification,
      });
      outcome = verified;
      if (verified.result?.ok)
        login = {
          first: 'password',
          second: 'webauthn',
          deviceType: verified.result.deviceType,
          userVerified: verified.result.userVerified,
        };
    }
    if (!outcome.ok || !login) {
      const error = outcome.locked ? LOCKED_ERROR : method === 'webauthn' ? GENERIC_PASSKEY_ERROR : GENERIC_CODE_ERROR;
      return showSecondFactor(ctx, details, pending, { error, method });
    }
    // Done, or (a passkey-level request) on to enrolling or using a passkey.
    await proceed(ctx, details, withPassed(pending, authenticationContext(login)));
  });

  router.post('/:uid/enroll/totp', ...guard, async function confirmTotpEnrollment(ctx) {
    const { details, pending } = await loadPending(ctx);
    const decision = await decide(details, pending);
    if (decision.kind !== 'enroll' || !decision.factors.includes('totp')) throw interactionProblem('This step is not expected now.');
    const outcome = await mfa.confirmTotp(pending.accountId, field(ctx, 'code', 32), details.uid, requestContext(ctx, details));
    if (!outcome.ok)
      return showSecondFactor(ctx, details, pending, { error: outcome.locked ? LOCKED_ERROR : GENERIC_CODE_ERROR, method: 'totp' });
    // A first factor counts as passed once confirmed with its code; after a factor passed here,
    // that factor stays what the sign-in proved.
    await afterEnrollment(
      ctx,
      details,
      pending.passed ? pending : withPassed(pending, authenticationContext({ first: 'password', second: 'totp' })),
    );
  });

  // Begins (or starts over) this interaction's app setup, then shows it (POST → 303 → GET, R14).
  router.post('/:uid/enroll/totp/begin', ...guard, async function beginTotpEnrollment(ctx) {
    const { details, pending } = await loadPending(ctx);
    const decision = await decide(details, pending);
    if (decision.kind !== 'enroll' || !decision.factors.includes('totp')) throw interactionProblem('This step is not expected now.');
    const account = await accounts.findActive(pending.accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    await mfa.totp.begin(account.id, account.email, details.uid);
    redirectToStep(ctx, details.uid, '?method=totp');
  });

  router.post('/:uid/enroll/webauthn', ...guard, async function confirmPasskeyEnrollment(ctx) {
    const { details, pending } = await loadPending(ctx);
    const decision = await decide(details, pending);
    if (decision.kind !== 'enroll' || !decision.factors.includes('webauthn')) throw interactionProblem('This step is not expected now.');
    const response = parseRegistrationJson(field(ctx, 'response', 16_384));
    const result = response
      ? await mfa.finishRegistration(
          { binding: details.uid, userId: pending.accountId, response, name: field(ctx, 'name', 64).trim() || 'Passkey' },
          requestContext(ctx, details),
        )
      : undefined;
    if (!result?.ok)
      return showSecondFactor(ctx, details, pending, { error: 'The passkey could not be registered. Try again.', method: 'webauthn' });
    // Creating a passkey is not signing in with it: as a first factor it counts as a second step
    // (loa:2), never as loa:passkey; a passkey-level request then asks for the passkey itself.
    const enrolled = authenticationContext({ first: 'password', second: 'webauthn', deviceType: result.deviceType, userVerified: false });
    await afterEnrollment(ctx, details, pending.passed ? pending : withPassed(pending, enrolled));
  });

  router.post('/:uid/continue', ...guard, async function continueAfterEnrollment(ctx) {
    const { details, pending } = await loadPending(ctx, { codesShown: true });
    const { codesShown: _shown, ...rest } = pending;
    await proceed(ctx, details, rest);
  });

  async function grantAndFinish(ctx: Context, details: InteractionDetails, accountId: string): Promise<void> {
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const grant =
      (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
      new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    // API scopes are granted for the API resource only, never as OpenID scopes (R13).
    const { granted, rejected } = splitOpenIdScopes(missing.missingOIDCScope ?? []);
    if (granted.length > 0) grant.addOIDCScope(granted.join(' '));
    if (rejected.length > 0) grant.rejectOIDCScope(rejected.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  router.post('/:uid/confirm', ...guard, async function submitConsent(ctx) {
    const details = await load(ctx, 'consent');
    const accountId = (await liveSession(details))?.accountId;
    if (!accountId) throw interactionProblem('Your session has ended. Start again.');
    await grantAndFinish(ctx, details, accountId);
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
