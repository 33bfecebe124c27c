import type { Knex } from 'knex';
import { CURSOR_AT_SQL, type KeysetCursor } from '../shared/cursor.ts';
import { normalizeEmail } from '../shared/email.ts';
import type { UserRow } from './users.ts';

export type DirectoryEntry = Pick<UserRow, 'id' | 'email' | 'email_verified' | 'name' | 'disabled' | 'created_at' | 'updated_at'>;

const COLUMNS = ['id', 'email', 'email_verified', 'name', 'disabled', 'created_at', 'updated_at'] as const;

/** Escapes LIKE wildcards so a prefix filter matches literally (on the normalised address). */
const likePrefix = (prefix: string): string => `${normalizeEmail(prefix).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** User listing and administration for the admin API and GDPR erasure (never password hashes). */
export function createUserDirectory(knex: Knex) {
  return {
    /** Oldest first, after the position; each row with its exact position (`cursor_at`). */
    async list(options: {
      limit: number;
      emailPrefix?: string | undefined;
      after?: KeysetCursor | undefined;
    }): Promise<(DirectoryEntry & { cursor_at: string })[]> {
      const query = knex<UserRow>('users')
        .select(...COLUMNS, knex.raw(CURSOR_AT_SQL))
        .orderBy([
          { column: 'created_at', order: 'asc' },
          { column: 'id', order: 'asc' },
        ])
        .limit(options.limit);
      if (options.emailPrefix) void query.whereRaw(`email_normalized LIKE ? ESCAPE '\\'`, [likePrefix(options.emailPrefix)]);
      if (options.after) void query.whereRaw('(created_at, id) > (?::timestamptz, ?::uuid)', [options.after.at, options.after.id]);
      return query as unknown as Promise<(DirectoryEntry & { cursor_at: string })[]>;
    },

    async find(id: string, trx: Knex = knex): Promise<DirectoryEntry | undefined> {
      return trx<UserRow>('users')
        .select(...COLUMNS)
        .where({ id })
        .first();
    },

    /**
     * Disabling also ends every sign-in made so far (sessions_not_before, R13): enabling the
     * account again brings back none of its sessions, codes or refresh tokens.
     */
    async setDisabled(id: string, disabled: boolean, trx: Knex = knex): Promise<void> {
      const ended = disabled ? { sessions_not_before: new Date(), sessions_not_before_keep: null } : {};
      await trx('users')
        .where({ id })
        .update({ disabled, ...ended, updated_at: trx.fn.now() });
    },

    /**
     * Ends every sign-in made so far, as disabling does, without disabling: the auth server's
     * sweep then revokes the account's sessions and grants (R15: a role that raises the account's
     * MFA requirement).
     */
    async endSignIns(id: string, trx: Knex = knex): Promise<void> {
      await trx('users')
        .where({ id })
        .update({ sessions_not_before: new Date(), sessions_not_before_keep: null, updated_at: trx.fn.now() });
    },

    /** Roles of many users in one query (for listings). */
    async rolesOf(ids: readonly string[]): Promise<Map<string, string[]>> {
      const roles = new Map<string, string[]>(ids.map((id) => [id, []]));
      if (ids.length === 0) return roles;
      const rows = await knex('user_roles')
        .whereIn('user_id', ids)
        .orderBy('role')
        .select<{ user_id: string; role: string }[]>('user_id', 'role');
      for (const row of rows) roles.get(row.user_id)?.push(row.role);
      return roles;
    },

    /** Replaces the user's roles; unknown role names fail on the foreign key. */
    async replaceRoles(id: string, roles: readonly string[], trx: Knex): Promise<void> {
      await trx('user_roles').where({ user_id: id }).delete();
      if (roles.length > 0) await trx('user_roles').insert(roles.map((role) => ({ user_id: id, role })));
    },

    /** Deletes the account row; records, shares, roles, data keys and credentials cascade. */
    async remove(id: string, trx: Knex): Promise<boolean> {
      return (await trx('users').where({ id }).delete()) > 0;
    },
  };
}

export type UserDirectory = ReturnType<typeof createUserDirectory>;
