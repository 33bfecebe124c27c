import type { Knex } from 'knex';
import { normalizeEmail } from '../shared/email.ts';

/** What a mailed code proves once entered (migrations/20261209100000_create_email_codes.ts). */
export type EmailCodePurpose = 'sign-up' | 'verify' | 'change';

export type EmailCodeRow = {
  id: string;
  purpose: EmailCodePurpose;
  /** The flow's keyed digest (`bindingKey`); compare through the store, never with a flow id. */
  binding: string;
  /** The account (verify, change); null for a sign-up, whose account does not exist yet. */
  user_id: string | null;
  /** The address the code was sent to, as typed (the new address of a change). */
  email: string;
  email_normalized: string;
  /** A sign-up's chosen password, argon2id; null otherwise (and for a later passkey sign-up). */
  password_hash: string | null;
  code_hash: string;
  attempts: number;
  expires_at: Date;
  created_at: Date;
};

export type NewEmailCode = {
  id: string;
  purpose: EmailCodePurpose;
  binding: string;
  userId: string | null;
  email: string;
  passwordHash: string | null;
  codeHash: string;
  ttlSeconds: number;
};

/**
 * Mailed verification codes. Each flow (`purpose` and `binding`) has at most one live code; the
 * binding is stored only as `bindingKey(binding)`, a keyed digest (as MFA ceremonies, S12). Times
 * are the database's clock, which every instance shares.
 */
export function createEmailCodeStore(knex: Knex, { bindingKey }: { bindingKey: (binding: string) => string }) {
  const live = (query: Knex.QueryBuilder) => query.andWhereRaw('expires_at > clock_timestamp()');
  return {
    /** The flow's new code, replacing the one it had (a code asked for again): only the newest works. */
    async replace(code: NewEmailCode, trx: Knex): Promise<void> {
      const binding = bindingKey(code.binding);
      // Expired rows of any flow go on the way: nothing else reads them.
      await trx('email_codes').whereRaw('expires_at <= clock_timestamp()').delete();
      await trx('email_codes').where({ purpose: code.purpose, binding }).delete();
      await trx('email_codes').insert({
        id: code.id,
        purpose: code.purpose,
        binding,
        user_id: code.userId,
        email: code.email,
        email_normalized: normalizeEmail(code.email),
        password_hash: code.passwordHash,
        code_hash: code.codeHash,
        expires_at: trx.raw('clock_timestamp() + make_interval(secs => ?)', [code.ttlSeconds]),
      });
    },

    /** The flow's live code, if it has one (what the page shows: the address, tries left). */
    async find(purpose: EmailCodePurpose, binding: string): Promise<EmailCodeRow | undefined> {
      const rows = (await live(knex('email_codes').where({ purpose, binding: bindingKey(binding) })).select('*')) as EmailCodeRow[];
      return rows[0];
    },

    /**
     * Counts one entry of the flow's code before it is compared, in one statement: refused (no
     * row) when the code is gone, expired or has no entries left. Concurrent entries are counted
     * one after another on the row's lock, so no more than `maxAttempts` are ever compared.
     */
    async reserveAttempt(purpose: EmailCodePurpose, binding: string, maxAttempts: number): Promise<EmailCodeRow | undefined> {
      const rows = await live(
        knex<EmailCodeRow>('email_codes')
          .where({ purpose, binding: bindingKey(binding) })
          .andWhere('attempts', '<', maxAttempts),
      )
        .increment('attempts', 1)
        .returning('*');
      return (rows as EmailCodeRow[])[0];
    },

    /**
     * Uses the code up: exactly one caller gets the row (DELETE … RETURNING), inside the
     * transaction of what the code allows, so a rollback keeps the code and two right entries at
     * once do the thing once.
     */
    async consume(id: string, trx: Knex): Promise<EmailCodeRow | undefined> {
      const rows = await live(trx<EmailCodeRow>('email_codes').where({ id })).delete().returning('*');
      return (rows as EmailCodeRow[])[0];
    },

    /** Ends the flow's code (the flow was given up, or finished another way). */
    async discard(purpose: EmailCodePurpose, binding: string, trx: Knex = knex): Promise<void> {
      await trx('email_codes')
        .where({ purpose, binding: bindingKey(binding) })
        .delete();
    },

    /** Ends every code of `purpose` for an address (its account now exists, or it changed hands). */
    async discardForAddress(purpose: EmailCodePurpose, email: string, trx: Knex = knex): Promise<number> {
      return trx('email_codes')
        .where({ purpose, email_normalized: normalizeEmail(email) })
        .delete();
    },

    /** Deletes expired codes (a sign-up nobody finished keeps an address and a password hash until then). */
    async sweep(): Promise<number> {
      return knex('email_codes').whereRaw('expires_at <= clock_timestamp()').delete();
    },

    /** Ends every code of an account (its address changed: a pending change or verification is moot). */
    async discardForUser(userId: string, trx: Knex = knex): Promise<number> {
      return trx('email_codes').where({ user_id: userId }).delete();
    },
  };
}

export type EmailCodeStore = ReturnType<typeof createEmailCodeStore>;
