import type { Knex } from 'knex';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';

/**
 * A column holding sealed values, the key family that seals it (MASTER_KEY: the identity
 * server's; VAULT_KEY: the records vault's data keys, S3) and the associated data of each row.
 */
export type SealedColumn = { table: string; column: string; key: string; family: 'master' | 'vault'; aad: (keyValue: string) => string };

/**
 * Every sealed value in the database. A new sealed column must be added here, or
 * `portcullis keys reseal` (MASTER_KEY) or `keys rewrap-vault` (VAULT_KEY) leaves it behind and it
 * is lost with the old key (test/store/sealed-columns.test.ts compares this list with the schema).
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'signing_keys', column: 'private_jwk_sealed', key: 'kid', family: 'master', aad: SEAL_CONTEXT.signingKey },
  { table: 'cookie_keys', column: 'key_sealed', key: 'id', family: 'master', aad: SEAL_CONTEXT.cookieKey },
  { table: 'oauth_clients', column: 'secret_sealed', key: 'client_id', family: 'master', aad: SEAL_CONTEXT.clientSecret },
  { table: 'user_data_keys', column: 'key_wrapped', key: 'user_id', family: 'vault', aad: SEAL_CONTEXT.dataKey },
  { table: 'mfa_totp', column: 'secret_sealed', key: 'user_id', family: 'master', aad: SEAL_CONTEXT.totpSecret },
  { table: 'server_secrets', column: 'secret_sealed', key: 'name', family: 'master', aad: SEAL_CONTEXT.serverSecret },
  { table: 'outbox', column: 'payload_sealed', key: 'id', family: 'master', aad: SEAL_CONTEXT.outboxPayload },
];

/** The identity server's sealed columns: `keys reseal` and `keys status` move and count these. */
export const MASTER_COLUMNS: readonly SealedColumn[] = SEALED_COLUMNS.filter((column) => column.family === 'master');
/** The records vault's wrapped data keys: `keys rewrap-vault` moves these. */
export const VAULT_COLUMNS: readonly SealedColumn[] = SEALED_COLUMNS.filter((column) => column.family === 'vault');

/**
 * Reads and rewrites sealed columns for `keys reseal` and `keys status`, while instances run:
 * batches in key order, and a rewrite only where the row still holds the value that was read
 * (compare and set), so a value changed meanwhile (a TOTP set up again) is never overwritten.
 */
export function createSealedColumnStore(knex: Knex) {
  return {
    async exists(spec: SealedColumn): Promise<boolean> {
      return knex.schema.hasTable(spec.table);
    },

    /** Up to `limit` rows after `afterKey` (key order) whose value is not sealed under `keyId`. */
    async notUnder(spec: SealedColumn, keyId: string, limit: number, afterKey?: string): Promise<{ key: string; sealed: string }[]> {
      const query = knex(spec.table)
        .whereNotNull(spec.column)
        // Key ids are [a-z0-9-]: nothing in the pattern is a LIKE wildcard.
        .andWhereNot(spec.column, 'like', `v1.${keyId}.%`)
        .orderBy(spec.key)
        .limit(limit)
        .select<Record<string, unknown>[]>(spec.key, spec.column);
      if (afterKey !== undefined) void query.andWhere(spec.key, '>', afterKey);
      return (await query).map((row) => ({ key: String(row[spec.key]), sealed: String(row[spec.column]) }));
    },

    /** Writes `sealed` where the row still holds `was`; false when it changed or went meanwhile. */
    async replace(spec: SealedColumn, key: string, was: string, sealed: string, trx: Knex = knex): Promise<boolean> {
      const updated = await trx(spec.table)
        .where(spec.key, key)
        .andWhere(spec.column, was)
        .update({ [spec.column]: sealed });
      return updated === 1;
    },

    /** How many values each key id seals (the id an envelope names; '' for what is no envelope). */
    async countByKeyId(spec: SealedColumn): Promise<Record<string, number>> {
      const rows = await knex(spec.table)
        .whereNotNull(spec.column)
        .groupByRaw('1')
        .select<{ key_id: string; count: string | number }[]>(
          knex.raw(`split_part(??, '.', 2) AS key_id`, [spec.column]),
          knex.raw('count(*) AS count'),
        );
      return Object.fromEntries(rows.map((row) => [row.key_id, Number(row.count)]));
    },
  };
}
