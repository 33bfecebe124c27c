import type { Knex } from 'knex';

export type IndexKind = 'Session' | 'Grant';
export type IndexRow = { kind: IndexKind; id: string; account_id: string; client_id: string | null; expires_at: Date | null; last_used_at: Date | null; created_at: Date };

/** How often one entry's last_used_at is written at most (per process). */
export const TOUCH_INTERVAL_MS = 60_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Which provider sessions and grants belong to an account. oidc-provider keeps no such index;
 * it is fed from the provider's model events and read by the account page.
 */
export function createAccountIndexStore(knex: Knex) {
  // "Last used" is shown to the user to the minute, so one write per entry per minute and process
  // is enough: every access token issued (each refresh) touched Postgres before.
  const touched = new Map<string, number>();
  return {
    async put(entry: { kind: IndexKind; id: string; accountId: string; clientId?: string | undefined; expiresAt?: Date | undefined }): Promise<void> {
      if (!UUID.test(entry.accountId)) return;
      await knex('account_oidc_index')
        .insert({ kind: entry.kind, id: entry.id, account_id: entry.accountId, client_id: entry.clientId ?? null, expires_at: entry.expiresAt ?? null })
        .onConflict(['kind', 'id'])
        .merge(['account_id', 'client_id', 'expires_at']);
    },

    async touch(kind: IndexKind, id: string): Promise<void> {
      const key = `${kind}:${id}`;
      const now = Date.now();
      if ((touched.get(key) ?? 0) > now - TOUCH_INTERVAL_MS) return;
      if (touched.size >= 10_000) touched.clear();
      touched.set(key, now);
      await knex('account_oidc_index').where({ kind, id }).update({ last_used_at: knex.fn.now() });
    },

    async remove(kind: IndexKind, id: string): Promise<void> {
      await knex('account_oidc_index').where({ kind, id }).delete();
    },

    async list(accountId: string, kind: IndexKind): Promise<IndexRow[]> {
      if (!UUID.test(accountId)) return [];
      await knex('account_oidc_index').where('expires_at', '<', new Date()).delete();
      return knex<IndexRow>('account_oidc_index').where({ account_id: accountId, kind }).orderBy('created_at', 'desc');
    },
  };
}

export type AccountIndexStore = ReturnType<typeof createAccountIndexStore>;
