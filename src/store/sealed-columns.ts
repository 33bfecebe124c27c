import type { Knex } from 'knex';

/** A column holding values sealed under the master key, and the associated data of each row. */
export type SealedColumn = { table: string; column: string; key: string; aad: (keyValue: string) => string };

/**
 * Every master-key-sealed value in the database. A new sealed column must be added here, or
 * `portcullis keys rotate-master` leaves it behind (the rotation test lists the tables).
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'signing_keys', column: 'private_jwk_sealed', key: 'kid', aad: (kid) => `signing-key:${kid}` },
  { table: 'cookie_keys', column: 'key_sealed', key: 'id', aad: () => 'cookie-key' },
  { table: 'oauth_clients', column: 'secret_sealed', key: 'client_id', aad: (id) => `client:${id}` },
  { table: 'user_data_keys', column: 'key_wrapped', key: 'user_id', aad: (id) => `data-key:${id}` },
  { table: 'mfa_totp', column: 'secret_sealed', key: 'user_id', aad: (id) => `totp:${id}` },
];

/** Reads and rewrites sealed columns inside one transaction (for master-key rotation). */
export function createSealedColumnStore(trx: Knex.Transaction) {
  return {
    async exists(spec: SealedColumn): Promise<boolean> {
      return trx.schema.hasTable(spec.table);
    },

    /** Rows with a value, locked against concurrent writers until the transaction ends. */
    async rows(spec: SealedColumn): Promise<{ key: string; sealed: string }[]> {
      const rows = await trx(spec.table).whereNotNull(spec.column).forUpdate().select<Record<string, unknown>[]>(spec.key, spec.column);
      return rows.map((row) => ({ key: String(row[spec.key]), sealed: String(row[spec.column]) }));
    },

    async update(spec: SealedColumn, key: string, sealed: string): Promise<void> {
      await trx(spec.table)
        .where(spec.key, key)
        .update({ [spec.column]: sealed });
    },
  };
}
