import type { Knex } from 'knex';

/**
 * Logical backup of Portcullis' tables. Rows are read inside one REPEATABLE READ, READ ONLY
 * transaction (one snapshot, so the backup is consistent while instances keep writing) as
 * `to_jsonb(row)`, and written back with `jsonb_populate_recordset`, so Postgres converts every
 * type both ways (timestamps, bytea, arrays, jsonb) without JavaScript in between.
 *
 * Flow state is left out on purpose: the oidc_payloads rows (sessions, codes, grants, tokens when
 * no Redis is configured) would resurrect consumed codes and revoked grants, like an old Redis
 * snapshot would. Only its durable registration access tokens are kept. Ephemeral counters
 * (EPHEMERAL below) are left out likewise.
 */
export type BackupDocument = {
  format: 'portcullis-backup';
  version: 1;
  created_at: string;
  migrations: string[];
  tables: { name: string; rows: unknown[] }[];
};

const SKIPPED = new Set(['knex_migrations', 'knex_migrations_lock']);
const DURABLE_OIDC_MODELS = ['RegistrationAccessToken'];
/**
 * Short-lived counters and caches, like flow state: brute-force lockout counters, DPoP proof jtis,
 * WebAuthn challenges. Exported empty, so a restore clears them rather than bringing back
 * counters and challenges from the backup's time.
 */
const EPHEMERAL = new Set(['lockouts', 'dpop_proof_jtis', 'webauthn_challenges']);
/** Tables whose rows mean "this database is in use". */
const OWNER_TABLES = ['users', 'oauth_clients', 'signing_keys'];

async function tableNames(knex: Knex): Promise<string[]> {
  const rows = await knex('information_schema.tables')
    .where({ table_schema: knex.raw('current_schema()'), table_type: 'BASE TABLE' })
    .orderBy('table_name')
    .select<{ table_name: string }[]>('table_name');
  return rows.map((r) => r.table_name).filter((name) => !SKIPPED.has(name));
}

/** Tables ordered so that every table comes after the tables its foreign keys point to. */
async function insertionOrder(knex: Knex, names: string[]): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { child: string; parent: string }[] }>(`
    SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent
    FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid <> c.confrelid`);
  const parents = new Map(names.map((n) => [n, new Set<string>()]));
  for (const { child, parent } of rows) parents.get(child.replaceAll('"', ''))?.add(parent.replaceAll('"', ''));
  const ordered: string[] = [];
  const visit = (name: string, path: Set<string>): void => {
    if (ordered.includes(name) || path.has(name)) return;
    path.add(name);
    for (const parent of parents.get(name) ?? []) if (parents.has(parent)) visit(parent, path);
    ordered.push(name);
  };
  for (const name of names) visit(name, new Set());
  return ordered;
}

export async function exportTables(knex: Knex, onTable?: (name: string, rows: number) => void): Promise<BackupDocument> {
  return knex.transaction(
    async (trx) => {
      const names = await insertionOrder(trx, await tableNames(trx));
      const migrations = (await trx('knex_migrations').orderBy('id').select<{ name: string }[]>('name')).map((m) => m.name);
      const tables: BackupDocument['tables'] = [];
      for (const name of names) {
        if (EPHEMERAL.has(name)) {
          tables.push({ name, rows: [] });
          onTable?.(name, 0);
          continue;
        }
        const filter = name === 'oidc_payloads' ? `WHERE t.type IN (${DURABLE_OIDC_MODELS.map(() => '?').join(', ')})` : '';
        const result = await trx.raw<{ rows: { row: unknown }[] }>(`SELECT to_jsonb(t) AS row FROM ?? AS t ${filter}`, [name, ...(filter ? DURABLE_OIDC_MODELS : [])]);
        const rows = result.rows.map((r) => r.row);
        tables.push({ name, rows });
        onTable?.(name, rows.length);
      }
      return { format: 'portcullis-backup', version: 1, created_at: new Date().toISOString(), migrations, tables };
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  );
}

export async function isEmpty(knex: Knex): Promise<boolean> {
  for (const table of OWNER_TABLES) {
    if (await knex(table).first(knex.raw('1'))) return false;
  }
  return true;
}

export async function currentMigrations(knex: Knex): Promise<string[]> {
  return (await knex('knex_migrations').orderBy('id').select<{ name: string }[]>('name')).map((m) => m.name);
}

/**
 * Replaces the contents of every backed-up table in one transaction; `verify` runs before the
 * commit (e.g. that the current MASTER_KEY opens what was restored) and may throw to roll back.
 */
export async function importTables(
  knex: Knex,
  document: BackupDocument,
  options: { verify?: (trx: Knex.Transaction) => Promise<void>; onTable?: (name: string, rows: number) => void } = {},
): Promise<void> {
  await knex.transaction(async (trx) => {
    const present = new Set(await tableNames(trx));
    const unknown = document.tables.filter((t) => !present.has(t.name)).map((t) => t.name);
    if (unknown.length > 0) throw new Error(`the backup has tables this database lacks: ${unknown.join(', ')}`);
    await trx.raw(`TRUNCATE ${[...present].map((n) => `"${n}"`).join(', ')} RESTART IDENTITY CASCADE`);
    for (const { name, rows } of document.tables) {
      for (let i = 0; i < rows.length; i += 500) {
        await trx.raw(`INSERT INTO ?? SELECT * FROM jsonb_populate_recordset(NULL::??, ?::jsonb)`, [name, name, JSON.stringify(rows.slice(i, i + 500))]);
      }
      // Serial and identity columns continue after the restored rows.
      const { rows: serials } = await trx.raw<{ rows: { column_name: string }[] }>(
        `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')`,
        [name],
      );
      for (const { column_name: column } of serials) {
        await trx.raw(`SELECT setval(pg_get_serial_sequence(?, ?), GREATEST((SELECT max(??) FROM ??), 1), (SELECT count(*) > 0 FROM ??))`, [name, column, column, name, name]);
      }
      options.onTable?.(name, rows.length);
    }
    await options.verify?.(trx);
  });
}
