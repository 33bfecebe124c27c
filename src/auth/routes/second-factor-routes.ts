import type { AccountService } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { authenticationContext, type LoginMethod } from '../../services/mfa-policy.ts';
import { parseAuthenticationJson, parseRegistrationJson } from '../../services/webauthn-ceremony.ts';
import { field, interactionProblem, type InteractionKit } from './interaction-details.ts';

const GENERIC_CODE_ERROR = 'That code did not work. Check your app and try again.';
export const GENERIC_PASSKEY_ERROR = 'The passkey could not be used. Try again or choose another way.';
const LOCKED_ERROR = 'Too many attempts. Wait a while before trying again.';

/**
 * The second factor's POSTs within a sign-in: a code, recovery code or passkey answer
 * (/interaction/:uid/mfa/:method), enrolling a first factor (/enroll/…), and going on after the
 * recovery codes were shown (/continue). Each checks that the policy asks for exactly this step
 * now (second-factor-steps.ts decide).
 */
export function secondFactorRoutes(
  { router, guard, loadPending, redirectToStep, steps }: InteractionKit,
  { accounts, mfa }: { accounts: AccountService; mfa: MfaService },
): void {
  const { requestContext, decide, withPassed, proceed, showSecondFactor, afterEnrollment } = steps;

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
}
