import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { MfaStore } from '../store/mfa.ts';
import type { RequestContext } from './accounts.ts';
import type { AuditService } from './audit.ts';
import type { Lockout } from './lockout.ts';
import { mfaAttempts, type AttemptEvent, type MfaLockout, type SecondFactorOutcome } from './mfa-attempts.ts';
import type { SecondFactor } from './mfa-policy.ts';
import type { TotpService } from './mfa-totp.ts';
import type { RecoveryCodeService } from './recovery-codes.ts';
import type { WebAuthnResult, WebAuthnService } from './webauthn.ts';

export type { SecondFactorOutcome };

/**
 * The second-factor facade used by the interaction and account routes: which factors a user
 * has, verification within the lockout budgets (mfa-attempts.ts), and an audit event for every
 * factor event. Wired over its stores by mfa-setup.ts.
 */
export function createMfaService(deps: {
  store: MfaStore;
  totp: TotpService;
  recovery: RecoveryCodeService;
  webauthn: WebAuthnService;
  lockout: MfaLockout;
  /**
   * The per-address budget of failed sign-ins (LOCKOUT_PASSWORD_IP_MAX_FAILURES, keyed by
   * ipBudgetKey: an IPv6 /64 is one client), spent by passkey answers that do not verify.
   * Undefined when that budget is off.
   */
  addressLockout?: Lockout | undefined;
  audit: AuditService;
}) {
  const { store, totp, recovery, webauthn, lockout, addressLockout, audit } = deps;
  const event: AttemptEvent = (type, userId, context, outcome, data) =>
    audit.record({
      type,
      actorId: userId,
      ip: context.ip,
      userAgent: context.userAgent,
      clientId: context.clientId,
      ...(outcome ? { outcome } : {}),
      ...(data ? { data } : {}),
    });

  const { reserveAddress, guarded } = mfaAttempts({ lockout, addressLockout, event });

  async function auditWebAuthnFailure(
    result: Exclude<WebAuthnResult, { ok: true }>,
    context: RequestContext,
    type = 'mfa.webauthn.rejected',
  ): Promise<void> {
    await event(type, result.userId, context, 'failure', { reason: result.reason, credentialId: result.credentialId });
    if (result.reason === 'counter_regression') {
      await event('mfa.webauthn.counter_regression', result.userId, context, 'failure', { credentialId: result.credentialId });
    }
  }

  /** Recovery codes recover a second factor; with no factor left they would be a bypass. */
  async function dropRecoveryIfNoFactors(userId: string, context: RequestContext): Promise<void> {
    const [hasTotp, hasKeys] = await Promise.all([totp.enabled(userId), webauthn.hasCredentials(userId)]);
    if (!hasTotp && !hasKeys && (await recovery.remaining(userId)) > 0) {
      await recovery.remove(userId);
      await event('mfa.recovery_codes.removed', userId, context, 'success');
    }
  }

  return {
    totp,
    recovery,
    webauthn,
    lockout,

    /** Enrolled second factors. A store failure propagates: never "no factors" by accident. */
    async enrolled(userId: string): Promise<SecondFactor[]> {
      const [hasTotp, hasKeys] = await Promise.all([totp.enabled(userId), webauthn.hasCredentials(userId)]);
      return [...(hasKeys ? (['webauthn'] as const) : []), ...(hasTotp ? (['totp'] as const) : [])];
    },

    roleRequiresMfa: (userId: string) => store.roleRequiresMfa(userId),

    /** The inputs of decideSecondFactor for one user, read in a single query. */
    async policyInputs(userId: string): Promise<{ enrolled: SecondFactor[]; roleRequiresMfa: boolean; recoveryCodesLeft: number }> {
      const state = await store.policyInputs(userId);
      // Same order as enrolled(): the passkey is offered first.
      const enrolled = [...(state.webauthn ? (['webauthn'] as const) : []), ...(state.totp ? (['totp'] as const) : [])];
      return { enrolled, roleRequiresMfa: state.roleRequiresMfa, recoveryCodesLeft: state.recoveryCodesLeft };
    },

    setRoleRequiresMfa: (role: string, required: boolean) => store.setRoleRequiresMfa(role, required),

    /**
     * An operator's reset for a user who lost every factor and every recovery code: all factors
     * go; the next sign-in enrolls again where a second factor is required.
     */
    async resetAll(userId: string, context: RequestContext): Promise<{ totp: boolean; passkeys: number }> {
      const totpRemoved = await totp.remove(userId);
      const passkeys = await webauthn.removeAll(userId);
      await recovery.remove(userId);
      await lockout.clear(userId);
      await event('mfa.reset', userId, context, 'success', { totp: totpRemoved, passkeys });
      return { totp: totpRemoved, passkeys };
    },

    /** Other account-security events (revoked grants, sign out everywhere). */
    audit: (type: string, userId: string, context: RequestContext, data?: Record<string, unknown>) =>
      event(type, userId, context, 'success', data),

    verifyTotp: (userId: string, code: string, context: RequestContext) =>
      guarded(userId, 'totp', context, () => totp.verify(userId, code)),

    useRecoveryCode: async (userId: string, code: string, context: RequestContext) => {
      const outcome = await guarded(userId, 'recovery_code', context, () => recovery.use(userId, code));
      return { ...outcome, remaining: outcome.ok ? await recovery.remaining(userId) : undefined };
    },

    /**
     * A WebAuthn assertion as second factor for `userId`. The account's lock applies, but an
     * answer that does not verify spends the sender's address budget, not the account's (R13).
     */
    async verifyWebAuthn(
      userId: string,
      binding: string,
      response: AuthenticationResponseJSON | undefined,
      context: RequestContext,
      options: { requireUserVerification?: boolean } = {},
    ): Promise<SecondFactorOutcome & { result?: WebAuthnResult }> {
      let result: WebAuthnResult | undefined;
      const outcome = await guarded(
        userId,
        'webauthn',
        context,
        async () => {
          if (!response) return false;
          result = await webauthn.verifyAuthentication({
            binding,
            purpose: 'second-factor',
            response,
            expectedUserId: userId,
            requireUserVerification: options.requireUserVerification === true,
          });
          if (!result.ok) await auditWebAuthnFailure(result, context);
          return result.ok;
        },
        undefined,
        'address',
      );
      return result ? { ...outcome, result } : outcome;
    },

    /**
     * Passwordless sign-in: the account comes from the credential. Only a verified answer meets
     * the account's lock (a second factor locked by wrong codes stays locked). An answer that does
     * not verify — made up by anyone who once saw the credential id, no password needed — spends
     * the sender's address budget, never the account's (R13); a locked address tries no passkey.
     */
    async passwordless(binding: string, response: AuthenticationResponseJSON, context: RequestContext): Promise<WebAuthnResult> {
      // Reserved before the check (R14): concurrent answers cannot pass the address's budget.
      const reservation = await reserveAddress(context);
      if (!reservation.granted) {
        await event('login.passkey', undefined, context, 'failure', { reason: 'address_locked' });
        return { ok: false, reason: 'verification_failed' };
      }
      const result = await webauthn.verifyAuthentication({ binding, purpose: 'passwordless', response });
      // A verified answer, or an expired or foreign challenge (which says nothing about anyone),
      // gives the attempt back; every other failure keeps it counted.
      if (result.ok || result.reason === 'no_challenge') await reservation.release();
      if (result.ok && (await lockout.isLocked(result.userId))) {
        await event('login.passkey', result.userId, context, 'failure', { reason: 'locked' });
        return { ok: false, reason: 'verification_failed', userId: result.userId };
      }
      if (result.ok) {
        await lockout.clear(result.userId);
        await event('login.passkey', result.userId, context, 'success', { credentialId: result.credentialId });
      } else {
        await auditWebAuthnFailure(result, context, 'login.passkey');
      }
      return result;
    },

    async finishRegistration(
      input: { binding: string; userId: string; response: RegistrationResponseJSON; name: string },
      context: RequestContext,
    ): Promise<WebAuthnResult> {
      const result = await webauthn.finishRegistration(input);
      if (result.ok)
        await event('mfa.webauthn.enrolled', input.userId, context, 'success', { credentialId: result.credentialId, name: input.name });
      else await event('mfa.webauthn.enrolled', input.userId, context, 'failure', { reason: result.reason });
      return result;
    },

    /** Confirms the pending secret the flow `binding` began (an interaction uid, or `account:<session id>`). */
    async confirmTotp(userId: string, code: string, binding: string, context: RequestContext): Promise<SecondFactorOutcome> {
      return guarded(userId, 'totp', context, () => totp.confirm(userId, code, binding), { enrollment: true }).then(async (outcome) => {
        if (outcome.ok) await event('mfa.totp.enrolled', userId, context, 'success');
        return outcome;
      });
    },

    async removeTotp(userId: string, context: RequestContext): Promise<void> {
      if (await totp.remove(userId)) await event('mfa.totp.removed', userId, context, 'success');
      await dropRecoveryIfNoFactors(userId, context);
    },

    async removeWebAuthn(userId: string, credentialId: string, context: RequestContext): Promise<boolean> {
      const removed = await webauthn.remove(userId, credentialId);
      if (removed) await event('mfa.webauthn.removed', userId, context, 'success', { credentialId });
      await dropRecoveryIfNoFactors(userId, context);
      return removed;
    },

    async renameWebAuthn(userId: string, credentialId: string, name: string, context: RequestContext): Promise<boolean> {
      const renamed = await webauthn.rename(userId, credentialId, name);
      if (renamed) await event('mfa.webauthn.renamed', userId, context, 'success', { credentialId });
      return renamed;
    },

    async regenerateRecoveryCodes(userId: string, context: RequestContext): Promise<string[]> {
      const codes = await recovery.regenerate(userId);
      await event('mfa.recovery_codes.generated', userId, context, 'success', { count: codes.length });
      return codes;
    },
  };
}

export type MfaService = ReturnType<typeof createMfaService>;
