import type { Knex } from 'knex';
import { BackupFileError } from '../shared/backup-file.ts';
import { ADVISORY_LOCK, lockForTransaction } from './advisory-locks.ts';
import { mergeAuditLog, type AuditMerge } from './backup-audit-merge.ts';
import { insertRows, resetSequences } from './backup-rows.ts';
import { modelsKeptByRestore } from './oidc-adapter.ts';

/**
 * Logical backup of Portcullis' tables. Rows are read inside one REPEATABLE READ, READ ONLY
 * transaction (one snapshot, so the backup is consistent while instances keep writing) as
 * `to_jsonb(row)`, and written back with `jsonb_populate_recordset`, so Postgres converts every
 * type both ways (timestamps, bytea, arrays, jsonb) without JavaScript in between.
 *
 * Tables fall in four groups (the rest are durable data, replaced exactly by a restore):
 * SKIPPED and LIVE are neither exported nor touched by a restore, FLOW_STATE is exported empty
 * and emptied by a restore, MERGED is exported and merged rather than replaced (the audit log by
 * backup-audit-merge.ts).
 */

export type { AuditMerge };
export type BackupTable = { name: string; rows: unknown[] };
export type BackupDocument = {
  format: 'portcullis-backup';
  version: 1;
  created_at: string;
  migrations: string[];
  tables: BackupTable[];
};

/** The migration bookkeeping: the schema must already match (see currentMigrations). */
const SKIPPED = new Set(['knex_migrations', 'knex_migrations_lock']);
/**
 * Live state, as in Redis, which a backup does not carry and a restore leaves where it is:
 * brute-force counters and replay caches describe the present (resetting them would hand an
 * attacker a fresh budget or reopen a replay), and oidc_payloads holds the flows, which a restore
 * ends instead (endRestoredCredentials). Older backups list these tables; their rows are ignored.
 */
const LIVE = new Set(['oidc_payloads', 'lockouts', 'dpop_proof_jtis']);
/**
 * Flow state pointing at sessions, grants and ceremonies: exported empty, and a restore refills it
 * with nothing, since what it points at ends with the restore (the queue of an erased account's
 * sessions and grants too: a restore ends them all, and re-applied erasures queue their own). The
 * mail outbox too: its mails carry links into flows of the present, and a backup holds no mail;
 * and mailed codes, which belong to sign-ups and sessions of the present.
 */
const FLOW_STATE = new Set(['account_oidc_index', 'webauthn_challenges', 'oidc_state_revocations', 'outbox', 'email_codes']);
/**
 * Exported, and merged into the database's own rows by a restore, never replaced: the audit log
 * (mergeAuditLog), and the erasure journal, which must outlive every backup taken before an
 * erasure so the restore can erase those accounts again (S5; mergeErasureJournal).
 */
const MERGED = new Set(['audit_events', 'erasure_journal']);
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
      const names = await insertionOrder(
        trx,
        (await tableNames(trx)).filter((name) => !LIVE.has(name)),
      );
      const migrations = (await trx('knex_migrations').orderBy('id').select<{ name: string }[]>('name')).map((m) => m.name);
      const tables: BackupDocument['tables'] = [];
      for (const name of names) {
        const rows = FLOW_STATE.has(name)
          ? []
          : (await trx.raw<{ rows: { row: unknown }[] }>(`SELECT to_jsonb(t) AS row FROM ?? AS t`, [name])).rows.map((r) => r.row);
        tables.push({ name, rows });
        onTable?.(name, rows.length);
      }
      return { format: 'portcullis-backup', version: 1, created_at: new Date().toISOString(), migrations, tables };
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  );
}

const isRow = (row: unknown): boolean => typeof row === 'object' && row !== null && !Array.isArray(row);

/** The decrypted document, checked for shape before anything reads it (a BACKUP_KEY holder can write anything). */
export function parseBackupDocument(value: unknown): BackupDocument {
  const doc = value as Partial<BackupDocument> | null;
  const wellFormed =
    doc?.format === 'portcullis-backup' &&
    doc.version === 1 &&
    typeof doc.created_at === 'string' &&
    Array.isArray(doc.migrations) &&
    doc.migrations.every((m) => typeof m === 'string') &&
    Array.isArray(doc.tables) &&
    doc.tables.every((t: Partial<BackupTable> | null) => typeof t?.name === 'string' && Array.isArray(t.rows) && t.rows.every(isRow));
  if (!wellFormed) throw new BackupFileError('the file decrypts, but is not a backup this release understands (nothing was changed)');
  return doc as BackupDocument;
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
 * Whether this database's audit log records making a backup with this SHA-256 (`backup.created`);
 * null when the log is empty (a new database has no history to check against).
 */
export async function isRecordedBackup(knex: Knex, sha256: string): Promise<boolean | null> {
  if (!(await knex('audit_events').first(knex.raw('1')))) return null;
  return (
    (await knex('audit_events').where({ type: 'backup.created' }).whereRaw(`data->>'sha256' = ?`, [sha256]).first(knex.raw('1'))) !==
    undefined
  );
}

/**
 * The document must name every table the restore empties (or merges), once, and nothing this
 * database lacks: a partial document would otherwise empty tables it cannot refill.
 */
function checkTables(document: BackupDocument, present: string[], required: string[]): void {
  const named = new Set<string>();
  for (const { name } of document.tables) {
    if (named.has(name))
      throw new BackupFileError(`the backup lists table ${JSON.stringify(name)} twice; refusing it (nothing was changed)`);
    named.add(name);
  }
  const unknown = [...named].filter((name) => !present.includes(name));
  if (unknown.length > 0)
    throw new BackupFileError(
      `the backup has tables this database lacks: ${unknown.map((n) => JSON.stringify(n)).join(', ')}; refusing it (nothing was changed)`,
    );
  const missing = required.filter((name) => !named.has(name));
  if (missing.length > 0)
    throw new BackupFileError(
      `the backup lacks tables a restore replaces: ${missing.join(', ')}; refusing a partial backup (nothing was changed)`,
    );
}

/**
 * Replaces the contents of every restored table in one transaction, merges the audit log, then
 * runs `afterRefill` (what the restore ends, its own audit event); any throw rolls all of it back.
 * Appends to the audit chain wait for the commit (its lock is held throughout), so the merged
 * chain and the restore's own event link up.
 */
export async function importTables(
  knex: Knex,
  document: BackupDocument,
  options: {
    /** AUDIT_KEY: the merged audit chain must verify under it. */
    auditKey: Buffer;
    afterRefill?: (trx: Knex.Transaction, merged: { audit: AuditMerge }) => Promise<void>;
    onTable?: (name: string, rows: number) => void;
  },
): Promise<{ audit: AuditMerge; restored: Record<string, number> }> {
  return knex.transaction(async (trx) => {
    await lockForTransaction(trx, ADVISORY_LOCK.auditChain);
    const present = await tableNames(trx);
    const replaced = present.filter((name) => !LIVE.has(name) && !MERGED.has(name));
    checkTables(
      document,
      present,
      present.filter((name) => !LIVE.has(name)),
    );
    // No CASCADE: a table outside this list that points into it makes the TRUNCATE fail, never empties it.
    await trx.raw(`TRUNCATE ${replaced.map((name) => `"${name}"`).join(', ')} RESTART IDENTITY`);
    const rowsOf = new Map(document.tables.map((table) => [table.name, table.rows]));
    const restored: Record<string, number> = {};
    for (const name of await insertionOrder(trx, replaced)) {
      const rows = FLOW_STATE.has(name) ? [] : (rowsOf.get(name) ?? []);
      await insertRows(trx, name, rows);
      await resetSequences(trx, name);
      // eslint-disable-next-line security/detect-object-injection -- name is a table that exists in this database (tableNames), checked against the backup by checkTables
      restored[name] = rows.length;
      options.onTable?.(name, rows.length);
    }
    // The journal keeps its rows and gains the backup's; afterRefill erases again what they name.
    const journal = rowsOf.get('erasure_journal') ?? [];
    await insertRows(trx, 'erasure_journal', journal, { keepExisting: true });
    options.onTable?.('erasure_journal', journal.length);
    const audit = await mergeAuditLog(trx, rowsOf.get('audit_events') ?? [], options.auditKey);
    restored.audit_events = audit.restored_from_backup;
    options.onTable?.('audit_events', audit.restored_from_backup);
    await options.afterRefill?.(trx, { audit });
    return { audit, restored };
  });
}

export type EndedInPostgres = { oidc_rows: number; initial_access_tokens_revoked: number; cookie_keys_retired: number };

/**
 * What a restore ends in Postgres, inside its transaction: every oidc-provider flow in
 * oidc_payloads (sessions, interactions, grants, codes, tokens, registration access tokens; the
 * replay cache stays), every initial access token (the backup predates revocations made since),
 * and every cookie key, replaced by `newCookieKeySealed` so sessions signed before end wherever
 * their state is.
 */
export async function endRestoredCredentials(trx: Knex.Transaction, newCookieKeySealed: string): Promise<EndedInPostgres> {
  const oidcRows = await trx('oidc_payloads')
    .whereNotIn('type', [...modelsKeptByRestore])
    .delete();
  const revoked = await trx('initial_access_tokens').whereNull('revoked_at').update({ revoked_at: trx.fn.now() });
  const retired = await trx('cookie_keys').whereNull('retired_at').update({ retired_at: trx.fn.now() });
  await trx('cookie_keys').insert({ key_sealed: newCookieKeySealed });
  return { oidc_rows: oidcRows, initial_access_tokens_revoked: revoked, cookie_keys_retired: retired };
}
