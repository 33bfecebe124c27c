import type { RequestContext } from './accounts.ts';
import type { Lockout, Reservation } from './lockout.ts';

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

/** The audit event of one attempt (mfa.ts records every factor event). */
export type AttemptEvent = (
  type: string,
  userId: string | undefined,
  context: RequestContext,
  outcome?: 'success' | 'failure',
  data?: Record<string, unknown>,
) => Promise<unknown>;

/**
 * Second-factor answers checked within their lockout budgets: the account's second-factor budget
 * (`lockout`), and for passkey answers the sender's address budget (`addressLockout`, the
 * per-address budget of failed sign-ins, LOCKOUT_PASSWORD_IP_MAX_FAILURES; undefined when off).
 */
export function mfaAttempts({
  lockout,
  addressLockout,
  event,
}: {
  lockout: MfaLockout;
  addressLockout?: Lockout | undefined;
  event: AttemptEvent;
}) {
  /** The sender's address budget, when there is one and the request names an address. */
  const addressOf = (context: RequestContext): string | undefined => (addressLockout && context.ip ? context.ip : undefined);

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

  return { reserveAddress, guarded };
}
