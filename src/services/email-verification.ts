import type { Knex } from 'knex';
import { normalizeEmail } from '../shared/email.ts';
import { DuplicateEmailError, type UserRow, type UserStore } from '../store/users.ts';
import type { RequestContext } from './accounts.ts';
import type { AuditService } from './audit.ts';
import type { EmailCodes } from './email-codes.ts';
import type { MailService } from './mail.ts';
import { domainAllowed, mailableAddress, type CodeLink } from './sign-up.ts';

/** What entering a code came to, for the page: the code's own outcome, or the address taken meanwhile. */
export type CodeOutcome =
  { ok: true } | { ok: false; reason: 'malformed' | 'wrong' | 'spent' | 'locked' | 'exists'; attemptsLeft?: number };

/**
 * An address as the old one's notice shows it: enough for its owner to recognise, not the whole
 * of someone's new address (the old mailbox may be the reason for the change).
 */
export function maskedAddress(email: string): string {
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  // The first code point (a surrogate pair stays whole).
  const first = String.fromCodePoint(local.codePointAt(0) ?? 0x2022);
  return `${first}•••${email.slice(at)}`;
}

/**
 * Proving an account's address with a mailed code (issue 12, docs/email.md):
 * - `verify`: an account whose address is not verified, at sign-in (REQUIRE_VERIFIED_EMAIL); the
 *   code goes to the account's own address and, entered in the same sign-in, marks it verified;
 * - `change`: a new address from the account page; the code goes to the new address and the
 *   change takes effect only when it is entered in the same session, then the old address is told.
 *   A new address another account has is answered as any other (same checks, same page, a code
 *   row whose code is never sent); that account's owner gets a notice; it never takes effect.
 */
export function createEmailVerification(deps: {
  knex: Knex;
  users: UserStore;
  mail: MailService;
  codes: EmailCodes;
  audit: AuditService;
  domains: readonly string[];
}) {
  const { knex, users, mail, codes, audit, domains } = deps;

  const event = (type: string, user: UserRow, context: RequestContext, data: Record<string, unknown> = {}, outcome?: 'failure') =>
    audit.record({
      type,
      actorId: user.id,
      ip: context.ip,
      userAgent: context.userAgent,
      clientId: context.clientId,
      data,
      ...(outcome ? { outcome } : {}),
    });

  return {
    /** How long a mailed code works, in minutes (what the page says). */
    minutes: Math.round(codes.settings.ttlSeconds / 60),

    /** The account's sign-in flow's code, if one was sent (its address, entries left). */
    pendingVerification: (binding: string) => codes.pending('verify', binding),

    /**
     * Mails a code to the account's own address for this sign-in. `busy`: its hourly share is
     * spent; `unmailable`: no mail can go to the stored address (an administrator's typo).
     */
    async sendVerification(
      user: UserRow,
      binding: string,
      link: CodeLink,
      context: RequestContext,
    ): Promise<{ ok: true } | { ok: false; error: 'busy' | 'unmailable' }> {
      const to = mailableAddress(user.email);
      if (!to) return { ok: false, error: 'unmailable' };
      if (!(await codes.mailAllowed('verify', to, context.ip))) return { ok: false, error: 'busy' };
      await knex.transaction(async (trx) => {
        const { code, minutes } = await codes.issue({ purpose: 'verify', binding, email: user.email, userId: user.id }, trx);
        await mail.enqueue(trx, {
          to,
          userId: user.id,
          template: 'verify-email-code',
          data: { code, minutes, links: { verify: link(code) } },
        });
      });
      await event('email.verification_sent', user, context);
      return { ok: true };
    },

    /** The code of this sign-in: right, and the account's address is verified (if it is still the one the code went to). */
    async confirmVerification(user: UserRow, binding: string, code: string, context: RequestContext): Promise<CodeOutcome> {
      const checked = await codes.check({ purpose: 'verify', binding, code, ip: context.ip });
      if (!checked.ok) return checked;
      const done = await knex.transaction(async (trx) => {
        const row = await checked.consume(trx);
        const current = await users.findById(user.id);
        // The code proves the address it went to, for the account it was for: nothing else.
        if (!row || row.user_id !== user.id || current?.email_normalized !== row.email_normalized) return false;
        await users.markEmailVerified(user.id, trx);
        return true;
      });
      if (!done) return { ok: false, reason: 'spent' };
      await event('email.verified', user, context, { via: 'sign-in' });
      return { ok: true };
    },

    /** The address change this session asked for, if its code is live (the new address, entries left). */
    pendingChange: (binding: string) => codes.pending('change', binding),

    /**
     * A new address for the account: checked (plausible, allowed domain, not the current one),
     * counted against the new address's and the client's hourly mail budget, then the code is
     * mailed to it, or (another account has it) that account's owner is told instead. The
     * requester's answer is the same either way.
     */
    async requestChange(
      user: UserRow,
      newEmail: string,
      binding: string,
      link: CodeLink,
      context: RequestContext,
    ): Promise<{ ok: true } | { ok: false; error: 'email' | 'domain' | 'same' | 'busy' }> {
      const email = mailableAddress(newEmail);
      if (!email) return { ok: false, error: 'email' };
      if (!domainAllowed(email, domains)) return { ok: false, error: 'domain' };
      if (normalizeEmail(email) === user.email_normalized) return { ok: false, error: 'same' };
      if (!(await codes.mailAllowed('change', email, context.ip))) return { ok: false, error: 'busy' };
      const holder = await users.findByEmail(email);
      await knex.transaction(async (trx) => {
        const { code, minutes } = await codes.issue({ purpose: 'change', binding, email, userId: user.id }, trx);
        if (!holder) {
          await mail.enqueue(trx, {
            to: email,
            userId: user.id,
            template: 'email-change-code',
            data: { code, minutes, links: { verify: link(code) } },
          });
        } else if (!holder.disabled && mailableAddress(holder.email)) {
          await mail.enqueue(trx, {
            to: mailableAddress(holder.email) ?? holder.email,
            userId: holder.id,
            template: 'account-exists',
            data: { attempt: 'change', links: { signIn: '/account' } },
          });
        }
      });
      await event('email.change_requested', user, context, { address_in_use: holder !== undefined });
      return { ok: true };
    },

    /**
     * The new address's code, in the session that asked: the account's address becomes the new
     * one (verified), every other code of the account ends, and the old address is told, in one
     * transaction. `exists`: another account took the address meanwhile; nothing changed.
     */
    async confirmChange(user: UserRow, binding: string, code: string, context: RequestContext): Promise<CodeOutcome> {
      const checked = await codes.check({ purpose: 'change', binding, code, ip: context.ip });
      if (!checked.ok) return checked;
      const oldEmail = user.email;
      let changedTo: string | undefined;
      try {
        changedTo = await knex.transaction(async (trx) => {
          const row = await checked.consume(trx);
          if (!row || row.user_id !== user.id) return undefined;
          await users.changeEmail(user.id, row.email, trx);
          await codes.discardForUser(user.id, trx);
          const oldAddress = mailableAddress(oldEmail);
          if (oldAddress) {
            await mail.enqueue(trx, {
              to: oldAddress,
              template: 'email-changed',
              // Not userId: the notice must reach the old address even if the account is erased at once.
              data: { newAddress: maskedAddress(row.email), links: {} },
            });
          }
          return row.email;
        });
      } catch (error) {
        if (!(error instanceof DuplicateEmailError)) throw error;
        await codes.discard('change', binding);
        await event('email.changed', user, context, { reason: 'address_taken' }, 'failure');
        return { ok: false, reason: 'exists' };
      }
      if (!changedTo) return { ok: false, reason: 'spent' };
      await event('email.changed', user, context);
      return { ok: true };
    },

    /** The session gave up its change: its code stops working. */
    cancelChange: (binding: string) => codes.discard('change', binding),
  };
}

export type EmailVerification = ReturnType<typeof createEmailVerification>;
