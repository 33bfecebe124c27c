import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { CryptoBox } from '../shared/crypto-box.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { MfaStore } from '../store/mfa.ts';
import type { WebAuthnCredentialStore } from '../store/webauthn-credentials.ts';
import type { RequestContext } from './accounts.ts';
import type { AuditService } from './audit.ts';
import type { Lockout, Reservation } from './lockout.ts';
import type { SecondFactor } from './mfa-policy.ts';
import { createTotpService, type TotpService } from './mfa-totp.ts';
import { createRecoveryCodeService, type RecoveryCodeService } from './recovery-codes.ts';
import { createWebAuthnService, type WebAuthnResult, type WebAuthnService } from './webauthn.ts';

export type SecondFactorOutcome = { ok: true } | { ok: false; locked: boolean };

/**
 * Whose budget a failed attempt spends. A wrong code or recovery code is a guess at the account's
 * secret: the account's budget. A passkey answer that does not verify guesses nothing (a
 * signature cannot be guessed) and anyone can make one up for any credential id they once saw,
 * so it spends the sender's address budget instead (R13): it never locks the account's owner out.
 */
type Spend = 'account' | 'address';

/**
 * Second-factor lockout: the sentinel's second-factor budget (its own key space, separate from
 * the password), counted per account; a success clears it. When the counter store cannot
 * answer, the attempt is refused (fail closed, docs/security.md).
 */
export function createMfaLockout(lockout: Lockout) {
  return {
    isLocked: async (userId: string): Promise<boolean> => (await lockout.check(userId)).locked,
    /** One attempt reserved before a code is checked (R14): refused while locked. */
    reserve: (userId: string): Promise<Reservation> => lockout.reserve(userId),
    /** Counts a failure; returns true when the account is now locked. */
    fail: async (userId: string): Promise<boolean> => (await lockout.fail(userId)).locked,
    clear: (userId: string): Promise<void> => lockout.clear(userId),
  };
}

export type MfaLockout = ReturnType<typeof createMfaLockout>;

/**
 * The second-factor facade used by the interaction and account routes: which factors a user
 * has, verification with lockout, and an audit event for every factor event.
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
  /** The sender's address budget, when there is one and the request names an address. */
  const addressOf = (context: RequestContext): string | undefined => (addressLockout && context.ip ? context.ip : undefined);

  const event = (
    type: string,
    userId: string | undefined,
    context: RequestContext,
    outcome?: 'success' | 'failure',
    data?: Record<string, unknown>,
  ) =>
    audit.record({
      type,
      actorId: userId,
      ip: context.ip,
      userAgent: context.userAgent,
      clientId: context.clientId,
      ...(outcome ? { outcome } : {}),
      ...(data ? { data } : {}),
    });

  /**
   * One attempt on the sender's address budget, reserved before the answer is checked (R14); an
   * always-granted stand-in when there is no such budget or no address. Refused (fail closed) when
   * the address has spent it or the store cannot say.
   */
  async function reserveAddress(context: RequestContext): Promise<{ granted: boolean; started: boolean; release: () => Promise<void> }> {
    const address = addressOf(context);
    if (address === undefined || !addressLockout) return { granted: true, started: false, release: async () => {} };
    const reservation = await addressLockout.reserve(address);
    return {
      granted: reservation.granted,
      started: reservation.started === true,
      release: () => addressLockout.release(address, reservation),
    };
  }

  /**
   * Checks one answer within a lockout budget. The attempt is reserved before `attempt` runs, in
   * one atomic step with the check of the lock (R14): concurrent wrong answers cannot all be
   * checked before the first is counted, so no more than the budget's worth are ever checked. A
   * wrong code spends the account's budget; a passkey answer the sender's address budget, while
   * the account's lock still applies (R13). A right answer clears the account's failures and
   * gives an address's attempt back.
   */
  async function guarded(
    userId: string,
    factor: string,
    context: RequestContext,
    attempt: () => Promise<boolean>,
    data?: Record<string, unknown>,
    spend: Spend = 'account',
  ): Promise<SecondFactorOutcome> {
    const refused = async (reason: string): Promise<SecondFactorOutcome> => {
      await event(`mfa.${factor}.used`, userId, context, 'failure', { reason, ...data });
      return { ok: false, locked: true };
    };
    let started: boolean;
    let release: () => Promise<void>;
    if (spend === 'account') {
      const reservation = await lockout.reserve(userId);
      if (!reservation.granted) return refused('locked');
      started = reservation.started === true;
      release = async () => {};
    } else {
      const reservation = await reserveAddress(context);
      if (!reservation.granted) return refused('address_locked');
      if (await lockout.isLocked(userId)) {
        await reservation.release();
        return refused('locked');
      }
      ({ started, release } = reservation);
    }
    if (await attempt()) {
      await release();
      await lockout.clear(userId);
      await event(`mfa.${factor}.used`, userId, context, 'success', data);
      return { ok: true };
    }
    await event(`mfa.${factor}.used`, userId, context, 'failure', { reason: started ? 'invalid_now_locked' : 'invalid', ...data });
    return { ok: false, locked: started };
  }

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

/** Wires the second-factor services over their stores (built in the composition root, src/deps.ts). */
export function createMfa(deps: {
  store: MfaStore;
  credentials: WebAuthnCredentialStore;
  /** Claims a passwordless challenge's single use. */
  once: ReplayStore;
  box: CryptoBox;
  audit: AuditService;
  issuer: string;
  lockout: Lockout;
  /** The per-address budget of failed sign-ins, when configured (R13: spent by passkey answers that do not verify). */
  addressLockout?: Lockout | undefined;
  /** The key of the recovery-code hashes (server_secrets, S6). */
  recoveryCodePepper: Buffer;
}) {
  const issuer = new URL(deps.issuer);
  const { store } = deps;
  return createMfaService({
    store,
    totp: createTotpService({ store, box: deps.box, issuerName: 'Portcullis' }),
    recovery: createRecoveryCodeService({ store, pepper: deps.recoveryCodePepper }),
    webauthn: createWebAuthnService({
      credentials: deps.credentials,
      store,
      box: deps.box,
      once: deps.once,
      rpId: issuer.hostname,
      rpName: 'Portcullis',
      origin: issuer.origin,
    }),
    lockout: createMfaLockout(deps.lockout),
    addressLockout: deps.addressLockout,
    audit: deps.audit,
  });
}
