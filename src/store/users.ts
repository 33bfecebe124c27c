import type { Knex } from 'knex';
import { normalizeEmail } from '../shared/email.ts';

export type UserRow = {
  id: string;
  /** As the user or operator typed it (shown back to them). */
  email: string;
  /** normalizeEmail(email): the account's identity, unique (R7). */
  email_normalized: string;
  email_verified: boolean;
  name: string | null;
  password_hash: string | null;
  disabled: boolean;
  password_changed_at: Date | null;
  /** Sign-ins before this instant no longer count (src/services/session-validity.ts). */
  sessions_not_before: Date | null;
  /** The session uid kept when sessions_not_before was set (the one that changed the password). */
  sessions_not_before_keep: string | null;
  /** The sessions_not_before whose sessions and grants were ended; older than it: still to do (R13). */
  sessions_revoked_through: Date | null;
  created_at: Date;
  updated_at: Date;
};

export type NewUser = { email: string; name?: string | undefined; passwordHash: string | null; emailVerified?: boolean };

export class DuplicateEmailError extends Error {
  constructor() {
    super('a user with this email already exists');
    this.name = 'DuplicateEmailError';
  }
}

const isUniqueViolation = (error: unknown): boolean => (error as { code?: string }).code === '23505';

export function createUserStore(knex: Knex) {
  return {
    async insert(user: NewUser, trx: Knex = knex): Promise<UserRow> {
      try {
        const [row] = await trx<UserRow>('users')
          .insert({
            email: user.email,
            email_normalized: normalizeEmail(user.email),
            name: user.name ?? null,
            password_hash: user.passwordHash,
            email_verified: user.emailVerified ?? false,
            password_changed_at: user.passwordHash ? new Date() : null,
          })
          .returning('*');
        return row as UserRow;
      } catch (error) {
        if (isUniqueViolation(error)) throw new DuplicateEmailError();
        throw error;
      }
    },

    async findById(id: string): Promise<UserRow | undefined> {
      // Account ids arrive from tokens and sessions; a non-uuid would be a SQL error, not a miss.
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
      return knex<UserRow>('users').where({ id }).first();
    },

    /**
     * Whether the account may use the API, and since when its sign-ins count: the columns the
     * resource API reads (its database role cannot read password hashes or passkey handles, S3).
     */
    async standingOf(
      id: string,
    ): Promise<Pick<UserRow, 'id' | 'disabled' | 'sessions_not_before' | 'sessions_not_before_keep'> | undefined> {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
      return knex<UserRow>('users').where({ id }).first('id', 'disabled', 'sessions_not_before', 'sessions_not_before_keep');
    },

    /** Any spelling of the address: the same normalisation as storage and the lockout key. */
    async findByEmail(email: string): Promise<UserRow | undefined> {
      return knex<UserRow>('users')
        .where({ email_normalized: normalizeEmail(email) })
        .first();
    },

    /** The address was proven by a mailed code (or vouched for by an administrator). */
    async markEmailVerified(id: string, trx: Knex = knex): Promise<void> {
      await trx('users').where({ id }).update({ email_verified: true, updated_at: knex.fn.now() });
    },

    /** Every account's address counts as verified (an administrator vouches for all of them); returns how many changed. */
    async markAllEmailsVerified(): Promise<number> {
      return knex('users').where({ email_verified: false }).update({ email_verified: true, updated_at: knex.fn.now() });
    },

    /**
     * A new, proven address for the account: DuplicateEmailError when another account has it
     * (the unique index decides, so two changes to one address cannot both succeed).
     */
    async changeEmail(id: string, email: string, trx: Knex = knex): Promise<void> {
      try {
        await trx('users')
          .where({ id })
          .update({ email, email_normalized: normalizeEmail(email), email_verified: true, updated_at: knex.fn.now() });
      } catch (error) {
        if (isUniqueViolation(error)) throw new DuplicateEmailError();
        throw error;
      }
    },

    async updatePasswordHash(id: string, passwordHash: string): Promise<void> {
      // A rehash keeps the password: password_changed_at stays as it is.
      await knex('users').where({ id }).update({ password_hash: passwordHash, updated_at: knex.fn.now() });
    },

    /** A new password chosen by the user: password_changed_at moves. */
    async setPassword(id: string, passwordHash: string): Promise<void> {
      await knex('users')
        .where({ id })
        .update({ password_hash: passwordHash, password_changed_at: knex.fn.now(), updated_at: knex.fn.now() });
    },

    /**
     * Ends every sign-in of the account made before now, except the session `keepSessionUid`
     * (src/services/session-validity.ts). The time is this process's clock, the clock that
     * dates sign-ins (oidc-provider's loginTs).
     */
    async endSessionsBefore(id: string, at: Date, keepSessionUid: string | null, trx: Knex = knex): Promise<void> {
      // The caller ends the sessions and grants itself (sign out everywhere): nothing left to the sweep.
      await trx('users')
        .where({ id })
        .update({ sessions_not_before: at, sessions_not_before_keep: keepSessionUid, sessions_revoked_through: at });
    },

    /**
     * Accounts whose sessions-not-before moved without their sessions and grants being ended
     * yet (disabling, in the admin API), oldest change first; with the cutoff each was read at.
     */
    async sessionsToRevoke(limit: number): Promise<{ id: string; cutoff: Date }[]> {
      const rows = await knex('users')
        .whereNotNull('sessions_not_before')
        .andWhere((q) => void q.whereNull('sessions_revoked_through').orWhereRaw('sessions_revoked_through < sessions_not_before'))
        .orderBy('sessions_not_before')
        .limit(limit)
        .select<{ id: string; sessions_not_before: Date }[]>('id', 'sessions_not_before');
      return rows.map((row) => ({ id: row.id, cutoff: row.sessions_not_before }));
    },

    /** Records that the sessions and grants before `cutoff` were ended; a newer cutoff set meanwhile stays to do. */
    async sessionsRevoked(id: string, cutoff: Date): Promise<void> {
      // The column keeps microseconds and `cutoff` (a Date) milliseconds: compare within the
      // millisecond, and copy the stored value itself.
      await knex('users')
        .where({ id })
        .andWhereRaw("sessions_not_before < ?::timestamptz + interval '1 millisecond'", [cutoff])
        .update({ sessions_revoked_through: knex.ref('sessions_not_before') });
    },

    async count(): Promise<number> {
      const row = await knex('users').count<{ count: number }[]>({ count: '*' }).first();
      return row?.count ?? 0;
    },
  };
}

export type UserStore = ReturnType<typeof createUserStore>;
