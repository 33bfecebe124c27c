import type { Knex } from 'knex';
import { normalizeEmail } from '../shared/email.ts';
import type { RoleStore } from '../store/roles.ts';
import { DuplicateEmailError, type UserRow, type UserStore } from '../store/users.ts';
import { isPlausibleEmail, type RequestContext } from './accounts.ts';
import type { AuditService } from './audit.ts';
import type { EmailCodes } from './email-codes.ts';
import { checkRecipient, MailRecipientError, type MailService } from './mail.ts';
import type { IssuerPath } from './mail-data.ts';
import type { PasswordHasher } from './passwords.ts';

/**
 * Whether `email` may be used here: any address without SELF_REGISTRATION_DOMAINS, otherwise one
 * whose domain (of the normalised address, everything after its only `@`) is one of them exactly.
 */
export function domainAllowed(email: string, domains: readonly string[]): boolean {
  if (domains.length === 0) return true;
  const address = normalizeEmail(email);
  const domain = address.slice(address.lastIndexOf('@') + 1);
  return domains.some((allowed) => allowed.toLowerCase() === domain);
}

/**
 * The address as mail will be sent to it, or undefined when none can be: NFKC and trimmed (so a
 * full-width `＠` is `@`, the one normalisation of R7 without its lower-casing), plausible, and one
 * plain recipient (src/services/mail.ts checkRecipient: no list, quote, comment or more than 254
 * characters). An address that passes the account rules but not this could never get its code:
 * refused as malformed, never a server error (SU7).
 */
export function mailableAddress(input: string): string | undefined {
  const email = input.normalize('NFKC').trim();
  if (!isPlausibleEmail(email)) return undefined;
  try {
    return checkRecipient(email);
  } catch (error) {
    if (error instanceof MailRecipientError) return undefined;
    throw error;
  }
}

/** Why a sign-up form was not accepted: each answer is the same for an address with or without an account. */
export type SignUpRefusal =
  | { ok: false; error: 'email' }
  | { ok: false; error: 'domain' }
  | { ok: false; error: 'password'; description: string }
  | { ok: false; error: 'busy' };

/** A mail's link for a code: a path on the issuer (the flow's page with the code filled in). */
export type CodeLink = (code: string) => IssuerPath;

/** How the first step of a sign-up is proven: a password now; a passkey is a later kind. */
export type SignUpCredential = { kind: 'password'; password: string };

/**
 * Self-registration (issue 12, docs/email.md): an address and a password, then a code mailed to
 * the address; the account is made only when the code is entered, in the browser that asked
 * (the flow's `binding`: its interaction). Until then nothing exists but the code's row, so an
 * address nobody proved blocks nobody and can never be taken over later (pre-registration).
 *
 * An address that already has an account is answered exactly as a new one: the same checks, the
 * same argon2 hash, a code row of its own (whose code is never sent), the same page; its owner
 * is mailed a notice instead of a code.
 */
export function createSignUpService(deps: {
  knex: Knex;
  users: UserStore;
  roles: RoleStore;
  hasher: PasswordHasher;
  mail: MailService;
  codes: EmailCodes;
  audit: AuditService;
  domains: readonly string[];
}) {
  const { knex, users, roles, hasher, mail, codes, audit, domains } = deps;

  /** The code to a new address, or the notice to the account that has it (a disabled one gets nothing). */
  async function sendFor(
    binding: string,
    link: CodeLink,
    email: string,
    passwordHash: string | null,
    existing: UserRow | undefined,
    trx: Knex.Transaction,
  ): Promise<void> {
    const { code, minutes } = await codes.issue({ purpose: 'sign-up', binding, email, passwordHash }, trx);
    if (!existing) {
      await mail.enqueue(trx, { to: email, template: 'sign-up-code', data: { code, minutes, links: { verify: link(code) } } });
    } else if (!existing.disabled && mailableAddress(existing.email)) {
      // An account whose stored address no mail can go to (made by an administrator) gets no notice; the page is the same.
      await mail.enqueue(trx, {
        to: mailableAddress(existing.email) ?? existing.email,
        userId: existing.id,
        template: 'account-exists',
        data: { attempt: 'sign-up', links: { signIn: '/account' } },
      });
    }
  }

  return {
    /** How long a mailed code works, in minutes (what the page says). */
    minutes: Math.round(codes.settings.ttlSeconds / 60),

    /**
     * The sign-up form: checks the address, its domain and the password (answers that do not
     * depend on whether the address has an account), counts the mail against the address's and
     * the client's hourly budget, hashes the password, and queues the code (or the notice).
     */
    async start(input: {
      email: string;
      credential: SignUpCredential;
      binding: string;
      /** The flow's page with the code filled in (the mail's link). */
      link: CodeLink;
      context: RequestContext;
    }): Promise<{ ok: true } | SignUpRefusal> {
      const email = mailableAddress(input.email);
      if (!email) return { ok: false, error: 'email' };
      if (!domainAllowed(email, domains)) return { ok: false, error: 'domain' };
      const problem = await hasher.screen(input.credential.password);
      if (problem) return { ok: false, error: 'password', description: hasher.describe(problem) };
      if (!(await codes.mailAllowed('sign-up', email, input.context.ip))) return { ok: false, error: 'busy' };
      const passwordHash = await hasher.hash(input.credential.password);
      const existing = await users.findByEmail(email);
      await knex.transaction((trx) => sendFor(input.binding, input.link, email, passwordHash, existing, trx));
      await audit.record({
        type: 'signup.requested',
        // The account the address belongs to, if any: its owner was sent a notice, not a code.
        actorId: existing?.id,
        ip: input.context.ip,
        userAgent: input.context.userAgent,
        clientId: input.context.clientId,
        data: { existing_account: existing !== undefined },
      });
      return { ok: true };
    },

    /** Where the flow stands: the address its code went to (or would have), and entries left. */
    async pending(binding: string): Promise<{ email: string; attemptsLeft: number } | undefined> {
      const current = await codes.pending('sign-up', binding);
      return current && { email: current.row.email, attemptsLeft: current.attemptsLeft };
    },

    /** "Send a new code": the same mail again with a new code, within the same budgets. */
    async resend(binding: string, link: CodeLink, context: RequestContext): Promise<{ ok: true } | { ok: false; error: 'busy' | 'gone' }> {
      const current = await codes.pending('sign-up', binding);
      if (!current) return { ok: false, error: 'gone' };
      const { email, password_hash: passwordHash } = current.row;
      if (!(await codes.mailAllowed('sign-up', email, context.ip))) return { ok: false, error: 'busy' };
      const existing = await users.findByEmail(email);
      await knex.transaction((trx) => sendFor(binding, link, email, passwordHash, existing, trx));
      return { ok: true };
    },

    /**
     * The code: right, and the account is made (address verified, the password chosen at the
     * start, the default role) in the transaction that uses the code up, and every other sign-up
     * of the address ends. `exists`: the address got an account meanwhile (or never had a code
     * sent): nothing is made.
     */
    async verify(
      binding: string,
      code: string,
      context: RequestContext,
    ): Promise<
      { ok: true; user: UserRow } | { ok: false; reason: 'malformed' | 'wrong' | 'spent' | 'locked' | 'exists'; attemptsLeft?: number }
    > {
      const checked = await codes.check({ purpose: 'sign-up', binding, code, ip: context.ip });
      if (!checked.ok) return checked;
      let user: UserRow | undefined;
      try {
        user = await knex.transaction(async (trx) => {
          const row = await checked.consume(trx);
          if (!row) return undefined;
          const created = await users.insert({ email: row.email, passwordHash: row.password_hash, emailVerified: true }, trx);
          await roles.assign(created.id, ['user'], trx);
          await codes.discardForAddress('sign-up', row.email, trx);
          return created;
        });
      } catch (error) {
        if (!(error instanceof DuplicateEmailError)) throw error;
        // Proven by the code, but an account has the address (made meanwhile): nothing more is made.
        await codes.discard('sign-up', binding);
        await audit.record({
          type: 'signup.completed',
          outcome: 'failure',
          ip: context.ip,
          userAgent: context.userAgent,
          clientId: context.clientId,
          data: { reason: 'address_taken' },
        });
        return { ok: false, reason: 'exists' };
      }
      if (!user) return { ok: false, reason: 'spent' };
      await audit.record({
        type: 'user.created',
        actorId: user.id,
        ip: context.ip,
        userAgent: context.userAgent,
        clientId: context.clientId,
        data: { roles: ['user'], via: 'sign-up', email_verified: true },
      });
      return { ok: true, user };
    },

    /** The flow was given up (cancelled): its code stops working. */
    discard: (binding: string) => codes.discard('sign-up', binding),

    /** Deletes expired codes, of every flow (the composition root calls it every few minutes). */
    sweep: () => codes.sweep(),
  };
}

export type SignUpService = ReturnType<typeof createSignUpService>;
