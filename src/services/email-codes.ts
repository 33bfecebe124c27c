import { createHmac, createSecretKey, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config/types.ts';
import type { EmailCodePurpose, EmailCodeRow, EmailCodeStore } from '../store/email-codes.ts';
import { normalizeEmail } from '../shared/email.ts';
import type { Lockout } from './lockout.ts';

export type { EmailCodePurpose, EmailCodeRow } from '../store/email-codes.ts';

/** Digits only: a pasted "123 456" or "123-456" is the same code. */
const CODE = /^\d{6}$/;

/** What entering a code came to. `consume` uses it up inside the caller's transaction. */
export type CodeCheck =
  | { ok: true; row: EmailCodeRow; consume: (trx: Knex.Transaction) => Promise<EmailCodeRow | undefined> }
  | {
      ok: false;
      /**
       * malformed: not six digits (nothing counted); wrong: counted, `attemptsLeft` more; spent:
       * no live code (expired, used up, never asked for); locked: too many wrong codes for the
       * address, or the lockout store did not answer.
       */
      reason: 'malformed' | 'wrong' | 'spent' | 'locked';
      attemptsLeft?: number;
    };

/**
 * An address's budgets are per purpose: anyone can start sign-ups with any address, but only the
 * account's holder can ask for its verification at sign-in (after its password and factors) or
 * move it to a new address (a recent session). Guesses and mails spent on sign-ups with an
 * owner's address therefore never lock the owner out of verifying it (SU9).
 */
const budgetKey = (purpose: EmailCodePurpose, email: string): string => `${purpose}:${normalizeEmail(email)}`;

/** A six-digit code, uniformly drawn. */
export const newCode = (): string => String(randomInt(0, 1_000_000)).padStart(6, '0');

/**
 * Six-digit codes mailed to prove an address (sign-up, verification, address change), and the
 * limits around them (docs/security.md SU1–SU9):
 * - stored as HMAC(code key, row id ‖ code), so a copy of the table does not give them away and a
 *   hash cannot be moved to another row;
 * - each code takes `attempts` entries, each reserved in one UPDATE before it is compared;
 * - wrong codes count per address over all its codes (a lockout budget, reserved before the
 *   comparison, doubling from 15 minutes to a day) and per client address (the password budget);
 * - mails count per address and per client address (`mailAllowed`), whether or not the address
 *   has an account, so the limit says nothing about it.
 */
export function createEmailCodes(deps: {
  store: EmailCodeStore;
  /** The key of the codes' HMAC (a subkey of a server secret). */
  codeKey: Buffer;
  settings: Config['emailCodes'];
  lockouts: {
    /** Wrong codes per address. */
    failures: Lockout;
    /** Wrong secrets per client address (the password budget's, when configured). */
    failuresIp?: Lockout | undefined;
    /** Mails per address, and per client address. */
    mails: Lockout;
    mailsIp?: Lockout | undefined;
  };
}) {
  const { store, settings, lockouts } = deps;
  const key = createSecretKey(deps.codeKey);
  const hashOf = (id: string, code: string): string => createHmac('sha256', key).update(`${id}:${code}`, 'utf8').digest('base64url');

  return {
    settings,

    /**
     * A new code for the flow (replacing the one it had), written in `trx` with the mail that
     * carries it; returns the code for that mail. Never logged, never stored in the clear.
     */
    async issue(
      input: { purpose: EmailCodePurpose; binding: string; email: string; userId?: string | null; passwordHash?: string | null },
      trx: Knex.Transaction,
    ): Promise<{ code: string; minutes: number }> {
      const id = randomUUID();
      const code = newCode();
      await store.replace(
        {
          id,
          purpose: input.purpose,
          binding: input.binding,
          userId: input.userId ?? null,
          email: input.email,
          passwordHash: input.passwordHash ?? null,
          codeHash: hashOf(id, code),
          ttlSeconds: settings.ttlSeconds,
        },
        trx,
      );
      return { code, minutes: Math.round(settings.ttlSeconds / 60) };
    },

    /**
     * Counts one mail for `purpose` to `email` caused by `ip`, unless either has had its share
     * this hour (false: send nothing). Counted before anything is sent, atomically, so parallel requests
     * cannot all slip under the limit; never given back.
     */
    async mailAllowed(purpose: EmailCodePurpose, email: string, ip: string | undefined): Promise<boolean> {
      const address = budgetKey(purpose, email);
      const [toAddress, fromIp] = await Promise.all([
        lockouts.mails.reserve(address),
        ip && lockouts.mailsIp ? lockouts.mailsIp.reserve(ip) : undefined,
      ]);
      if (toAddress.granted && fromIp?.granted !== false) return true;
      // The one that was granted did not lead to a mail: give it back.
      await Promise.all([
        lockouts.mails.release(address, toAddress),
        ip && lockouts.mailsIp && fromIp ? lockouts.mailsIp.release(ip, fromIp) : undefined,
      ]);
      return false;
    },

    /** The flow's live code (the address it went to, and how many entries it has left). */
    async pending(purpose: EmailCodePurpose, binding: string): Promise<{ row: EmailCodeRow; attemptsLeft: number } | undefined> {
      const row = await store.find(purpose, binding);
      return row ? { row, attemptsLeft: Math.max(0, settings.attempts - row.attempts) } : undefined;
    },

    /**
     * Checks an entered code against the flow's own code: only the flow that asked for a code can
     * use it (another flow's right code is a wrong code here). Both budgets are reserved and the
     * entry counted before the comparison; a right code gives them back.
     */
    async check(input: { purpose: EmailCodePurpose; binding: string; code: string; ip?: string | undefined }): Promise<CodeCheck> {
      const code = input.code.replace(/[\s-]/g, '');
      if (!CODE.test(code)) return { ok: false, reason: 'malformed' };
      const current = await store.find(input.purpose, input.binding);
      if (!current) return { ok: false, reason: 'spent' };
      const address = budgetKey(input.purpose, current.email_normalized);
      const ip = input.ip && lockouts.failuresIp ? { lockout: lockouts.failuresIp, id: input.ip } : undefined;
      const [forAddress, forIp] = await Promise.all([lockouts.failures.reserve(address), ip?.lockout.reserve(ip.id)]);
      const giveBack = () =>
        Promise.all([lockouts.failures.release(address, forAddress), ip && forIp ? ip.lockout.release(ip.id, forIp) : undefined]);
      if (!forAddress.granted || forIp?.granted === false) {
        await giveBack();
        return { ok: false, reason: 'locked' };
      }
      const row = await store.reserveAttempt(input.purpose, input.binding, settings.attempts);
      if (!row) {
        await giveBack();
        return { ok: false, reason: 'spent' };
      }
      const expected = Buffer.from(row.code_hash, 'base64url');
      const presented = Buffer.from(hashOf(row.id, code), 'base64url');
      if (expected.length !== presented.length || !timingSafeEqual(expected, presented)) {
        // Counted already (the reservations stand).
        return { ok: false, reason: 'wrong', attemptsLeft: Math.max(0, settings.attempts - row.attempts) };
      }
      await giveBack();
      return { ok: true, row, consume: (trx) => store.consume(row.id, trx) };
    },

    discard: (purpose: EmailCodePurpose, binding: string) => store.discard(purpose, binding),
    /** Deletes expired codes; the composition root calls it every few minutes. */
    sweep: () => store.sweep(),
    discardForAddress: (purpose: EmailCodePurpose, email: string, trx: Knex.Transaction) => store.discardForAddress(purpose, email, trx),
    discardForUser: (userId: string, trx: Knex.Transaction) => store.discardForUser(userId, trx),
  };
}

export type EmailCodes = ReturnType<typeof createEmailCodes>;
