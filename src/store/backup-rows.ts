import type { Knex } from 'knex';

/**
 * Writing a backup's rows back (src/store/backup.ts importTables, backup-audit-merge.ts): as
 * JSON through `jsonb_populate_recordset`, so Postgres converts every type itself, in batches.
 */

export async function insertRows(
  trx: Knex.Transaction,
  name: string,
  rows: unknown[],
  options: { keepExisting?: boolean } = {},
): Promise<void> {
  const merge = options.keepExisting ? ' ON CONFLICT DO NOTHING' : '';
  for (let i = 0; i < rows.length; i += 500) {
    await trx.raw(`INSERT INTO ?? SELECT * FROM jsonb_populate_recordset(NULL::??, ?::jsonb)${merge}`, [
      name,
      name,
      JSON.stringify(rows.slice(i, i + 500)),
    ]);
  }
}

/** Serial and identity columns continue after the rows now in the table. */
export async function resetSequences(trx: Knex.Transaction, name: string): Promise<void> {
  const { rows: serials } = await trx.raw<{ rows: { column_name: string }[] }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')`,
    [name],
  );
  for (const { column_name: column } of serials) {
    await trx.raw(`SELECT setval(pg_get_serial_sequence(?, ?), GREATEST((SELECT max(??) FROM ??), 1), (SELECT count(*) > 0 FROM ??))`, [
      name,
      column,
      column,
      name,
      name,
    ]);
  }
}
