import type { Knex } from 'knex';

/** A session (by storage key), a grant (by id) or everything else of an account (by account id) to end. */
export type RevocationKind = 'Session' | 'Grant' | 'Account';
export type RevocationRow = { kind: RevocationKind; id: string; account_id: string; requested_at: Date };

/**
 * The hand-over of an erased account's OAuth state from the API to the auth server (S3). The API
 * holds neither MASTER_KEY (the oidc state is stored by keyed hash and sealed under it) nor any
 * right on that state, so an erasure queues what the account index names (its sessions and
 * grants) and the account itself here, in the erasure's transaction and before the account row
 * and with it the index rows go; every auth instance ends what is queued within seconds
 * (src/services/account-sessions.ts). Nothing in a row is a credential: session rows carry storage
 * keys, grant ids are accepted by no endpoint.
 */
export function createOidcRevocations(knex: Knex) {
  return {
    /** Queues the account's indexed sessions and grants, and the account; returns how many of each. */
    async queueAccount(accountId: string, trx: Knex): Promise<{ sessions: number; grants: number }> {
      const indexed = await trx('account_oidc_index').where({ account_id: accountId }).select<{ kind: string }[]>('kind');
      // No RETURNING: the API may add rows here, not read them.
      await trx.raw(
        `INSERT INTO oidc_state_revocations (kind, id, account_id)
           SELECT kind, id, account_id FROM account_oidc_index WHERE account_id = ?
           UNION ALL SELECT 'Account', ?::text, ?::uuid
         ON CONFLICT DO NOTHING`,
        [accountId, accountId, accountId],
      );
      return { sessions: indexed.filter((r) => r.kind === 'Session').length, grants: indexed.filter((r) => r.kind === 'Grant').length };
    },

    /** The oldest queued revocations. */
    async pending(limit: number): Promise<RevocationRow[]> {
      return knex<RevocationRow>('oidc_state_revocations').orderBy('requested_at').limit(limit);
    },

    async done(row: Pick<RevocationRow, 'kind' | 'id'>): Promise<void> {
      await knex('oidc_state_revocations').where({ kind: row.kind, id: row.id }).delete();
    },

    /**
     * oidc-provider state kept in Postgres (sessions, grants, tokens, interactions) naming the
     * account. Only the account id is readable there (src/store/oidc-adapter-sealed.ts).
     */
    async removeOidcPayloadsOf(accountId: string): Promise<number> {
      return knex('oidc_payloads').whereRaw(`payload->>'accountId' = ?`, [accountId]).delete();
    },
  };
}

export type OidcRevocations = ReturnType<typeof createOidcRevocations>;
