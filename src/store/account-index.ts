import type { Knex } from 'knex';

export type IndexKind = 'Session' | 'Grant';
export type IndexRow = {
  kind: IndexKind;
  id: string;
  account_id: string;
  client_id: string | null;
  expires_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
  /** Grants: the scopes granted (OpenID and resource scopes, space-separated); null until known. */
  scope: string | null;
  /** Grants: the resource indicators granted. */
  resources: string[] | null;
};

/** What the GDPR export shows of a grant, kept in its index row so the API needs no sealed grant (S3). */
export type GrantSummary = { scope: string; resources: string[] };

type GrantPayload = { openid?: { scope?: unknown }; resources?: Record<string, unknown> };

/** The scopes and resources of an oidc-provider Grant payload. */
export function summariseGrant(payload: unknown): GrantSummary {
  const grant = (payload ?? {}) as GrantPayload;
  const resources = grant.resources && typeof grant.resources === 'object' ? grant.resources : {};
  const scopes = [grant.openid?.scope, ...Object.values(resources)]
    .filter((s): s is string => typeof s === 'string')
    .join(' ')
    .split(' ')
    .filter(Boolean);
  return { scope: [...new Set(scopes)].join(' '), resources: Object.keys(resources) };
}

const live = (knex: Knex) => (q: Knex.QueryBuilder) => void q.whereNull('expires_at').orWhere('expires_at', '>', knex.fn.now());

/** How often one entry's last_used_at is written at most (per process). */
export const TOUCH_INTERVAL_MS = 60_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Which provider sessions and grants belong to an account. oidc-provider keeps no such index;
 * it is fed from the provider's model events and read by the account page.
 *
 * A session's id is its cookie value, so a Session row carries the session's storage key
 * (`sessionKey`, the keyed hash the oidc adapter stores it under: S10) and never the id itself:
 * a dump or backup of this table holds no session anyone can resume. Methods take the ids the
 * provider knows; a row's own id (list) is the storage key, for the storage adapter and removeRow.
 * Grant ids are kept as they are: no endpoint accepts a grant id as a credential.
 */
export function createAccountIndexStore(knex: Knex, options: { sessionKey: (sessionId: string) => string }) {
  const keyOf = (kind: IndexKind, id: string): string => (kind === 'Session' ? options.sessionKey(id) : id);
  // "Last used" is shown to the user to the minute, so one write per entry per minute and process
  // is enough: every access token issued (each refresh) touched Postgres before.
  const touched = new Map<string, number>();
  return {
    /** The id of the row that indexes this session or grant. */
    keyOf,

    async put(entry: {
      kind: IndexKind;
      id: string;
      accountId: string;
      clientId?: string | undefined;
      expiresAt?: Date | undefined;
      grant?: GrantSummary | undefined;
    }): Promise<void> {
      if (!UUID.test(entry.accountId)) return;
      const grant = entry.grant ? { scope: entry.grant.scope, resources: entry.grant.resources } : {};
      await knex('account_oidc_index')
        .insert({
          kind: entry.kind,
          id: keyOf(entry.kind, entry.id),
          account_id: entry.accountId,
          client_id: entry.clientId ?? null,
          expires_at: entry.expiresAt ?? null,
          ...grant,
        })
        .onConflict(['kind', 'id'])
        .merge(['account_id', 'client_id', 'expires_at', ...Object.keys(grant)]);
    },

    async touch(kind: IndexKind, id: string): Promise<void> {
      const row = keyOf(kind, id);
      const key = `${kind}:${row}`;
      const now = Date.now();
      if ((touched.get(key) ?? 0) > now - TOUCH_INTERVAL_MS) return;
      if (touched.size >= 10_000) touched.clear();
      touched.set(key, now);
      await knex('account_oidc_index').where({ kind, id: row }).update({ last_used_at: knex.fn.now() });
    },

    async remove(kind: IndexKind, id: string): Promise<void> {
      await knex('account_oidc_index')
        .where({ kind, id: keyOf(kind, id) })
        .delete();
    },

    /** Removes a row by its own id, as list() returned it. */
    async removeRow(kind: IndexKind, rowId: string): Promise<void> {
      await knex('account_oidc_index').where({ kind, id: rowId }).delete();
    },

    async list(accountId: string, kind: IndexKind): Promise<IndexRow[]> {
      if (!UUID.test(accountId)) return [];
      await knex('account_oidc_index').where('expires_at', '<', new Date()).delete();
      return knex<IndexRow>('account_oidc_index').where({ account_id: accountId, kind }).orderBy('created_at', 'desc');
    },

    /**
     * Fills in the scopes and resources of grant rows indexed before they were kept (one pass at
     * auth start, S3), from the grants themselves; a grant that is gone gets an empty summary.
     * Returns how many rows were filled.
     */
    async backfillGrantSummaries(findGrant: (id: string) => Promise<unknown>, batch = 200): Promise<number> {
      let filled = 0;
      for (;;) {
        const rows = await knex<IndexRow>('account_oidc_index').where({ kind: 'Grant' }).whereNull('scope').limit(batch).select('id');
        for (const row of rows) {
          const grant = await findGrant(row.id);
          const summary = grant ? summariseGrant(grant) : { scope: '', resources: [] };
          await knex('account_oidc_index').where({ kind: 'Grant', id: row.id }).update(summary);
        }
        filled += rows.length;
        if (rows.length < batch) return filled;
      }
    },
  };
}

export type AccountIndexStore = ReturnType<typeof createAccountIndexStore>;

/**
 * The index as the resource API reads it (GDPR export, erasure): no keys, no writes (S3). Rows
 * past their expiry are left out here and deleted by the auth server.
 */
export function createAccountIndexReader(knex: Knex) {
  return {
    async list(accountId: string, kind: IndexKind): Promise<IndexRow[]> {
      if (!UUID.test(accountId)) return [];
      return knex<IndexRow>('account_oidc_index').where({ account_id: accountId, kind }).where(live(knex)).orderBy('created_at', 'desc');
    },
  };
}

export type AccountIndexReader = ReturnType<typeof createAccountIndexReader>;
