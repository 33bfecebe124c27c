import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { BackupFileError, openBackup, sealBackup } from '../shared/backup-file.ts';
import { DecryptionError, envelopeKeyId, type CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import type { KeyRing } from '../shared/key-ring.ts';
import { isMasterKeyId } from '../shared/vault-key.ts';
import type { AuditEventStore } from '../store/audit-events.ts';
import type { Erasure } from './erasure.ts';
import { rewrapDataKeys } from './vault-rewrap.ts';
import {
  currentMigrations,
  endRestoredCredentials,
  exportTables,
  importTables,
  isEmpty,
  isRecordedBackup,
  parseBackupDocument,
  type AuditMerge,
  type BackupDocument,
  type EndedInPostgres,
} from '../store/backup.ts';
import { endOidcState } from '../store/oidc-adapter-redis.ts';
import type { Redis } from '../store/redis.ts';
import { SEALED_COLUMNS, type SealedColumn } from '../store/sealed-columns.ts';

export type OnTable = (name: string, rows: number) => void;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const summary = (doc: BackupDocument) => Object.fromEntries(doc.tables.map((t) => [t.name, t.rows.length]));

/**
 * `backup create`: one snapshot of the durable tables, sealed under BACKUP_KEY. Needs the database
 * and BACKUP_KEY only, never MASTER_KEY: whoever runs backups cannot open what is sealed inside.
 */
export async function createBackup(knex: Knex, key: Buffer, onTable?: OnTable) {
  const document = await exportTables(knex, onTable);
  const sealed = sealBackup(document, key);
  return {
    sealed,
    sha256: sha256(sealed),
    takenAt: document.created_at,
    migrations: document.migrations.length,
    tables: summary(document),
  };
}

export type CreatedBackup = Awaited<ReturnType<typeof createBackup>>;

/**
 * Recorded once the file is written (after the snapshot, so the backup never holds its own event),
 * in the audit log keyed by AUDIT_KEY (never MASTER_KEY).
 */
export async function recordBackupCreated(auditLog: AuditEventStore, backup: CreatedBackup): Promise<void> {
  await auditLog.append({
    type: 'backup.created',
    data: { sha256: backup.sha256, bytes: backup.sealed.length, taken_at: backup.takenAt, tables: Object.keys(backup.tables).length },
  });
}

/**
 * The box for one sealed value: MASTER_KEY for the identity server's columns; for the vault's
 * data keys VAULT_KEY, or MASTER_KEY for keys wrapped before VAULT_KEY existed (a backup from
 * before the upgrade, S3). Undefined when this run lacks the key.
 */
function boxFor(
  spec: SealedColumn,
  envelope: string,
  keys: { master: CryptoBox; vault: KeyRing | undefined },
): { box: CryptoBox | undefined; name: string } {
  if (spec.family === 'master' || isMasterKeyId(envelopeKeyId(envelope))) return { box: keys.master, name: 'MASTER_KEY' };
  return { box: keys.vault, name: 'VAULT_KEY' };
}

/**
 * Every sealed value in the document must open with the current keys, checked before anything
 * changes: a backup taken under other keys (or with one altered value) would otherwise restore
 * data that can never be read again.
 */
function checkSealedValues(document: BackupDocument, keys: { master: CryptoBox; vault: KeyRing | undefined }): number {
  let opened = 0;
  for (const spec of SEALED_COLUMNS) {
    const rows = (document.tables.find((t) => t.name === spec.table)?.rows ?? []) as Record<string, unknown>[];
    for (const row of rows) {
      const sealed = row[spec.column];
      if (sealed === null || sealed === undefined) continue;
      const rowKey = row[spec.key];
      const keyValue = typeof rowKey === 'string' || typeof rowKey === 'number' ? String(rowKey) : '';
      // Anything but a string (an altered document) fails as a malformed envelope.
      const envelope = typeof sealed === 'string' ? sealed : '';
      const { box, name } = boxFor(spec, envelope, keys);
      if (!box)
        throw new BackupFileError(
          `the backup holds values sealed under ${name} (${spec.table}.${spec.column}); set ${name} (or ${name}_FILE) to the key the backup was taken with (nothing was changed)`,
        );
      try {
        box.open(envelope, spec.aad(keyValue));
        opened += 1;
      } catch (error) {
        if (!(error instanceof DecryptionError)) throw error;
        throw new BackupFileError(
          `the backup holds values this ${name} cannot open (${spec.table}.${spec.column} of ${keyValue}: ${error.message}); start with the ${name} the backup was taken with (nothing was changed)`,
        );
      }
    }
  }
  return opened;
}

/** A row the database refuses (a wrong type, a broken constraint) fails the one transaction: said in one line. */
async function rolledBackOnFailure<T>(restore: Promise<T>): Promise<T> {
  try {
    return await restore;
  } catch (error) {
    if (error instanceof BackupFileError) throw error;
    throw new BackupFileError(
      `the restore failed and its transaction was rolled back (nothing was changed in Postgres): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

export type RestoreReport = {
  restored: Record<string, number>;
  taken_at: string;
  sha256: string;
  /** Made by this deployment's `backup create` (its audit log says so); null for a new database. */
  recorded: boolean | null;
  sealed_values_checked: number;
  audit: AuditMerge;
  ended: EndedInPostgres & { redis_keys: number | 'no Redis configured for this command' };
  /** Journalled erasures the restored rows had undone, erased again (S5). */
  erasures_reapplied: number;
  /** Data keys of a backup from before VAULT_KEY, moved under VAULT_KEY (S3); null without VAULT_KEY. */
  data_keys_rewrapped: number | null;
};

/**
 * `backup restore`: checks everything it can before changing anything (decryption, size, shape,
 * schema, every sealed value), then in one transaction replaces the durable tables, merges the
 * audit log, ends every credential the backup's time cannot vouch for, ends the flows in Redis
 * (last, so a failure there rolls the restore back) and appends `backup.restored` to the chain.
 */
export async function restoreBackup(
  deps: {
    knex: Knex;
    box: KeyRing;
    vaultBox: KeyRing | undefined;
    redis: Redis | undefined;
    auditKey: Buffer;
    auditStore: AuditEventStore;
    erasure: Erasure;
  },
  file: Buffer,
  key: Buffer,
  options: { force?: boolean | undefined; onTable?: OnTable | undefined } = {},
): Promise<RestoreReport> {
  const { knex, box, vaultBox, redis, auditKey, auditStore, erasure } = deps;
  const document = parseBackupDocument(openBackup(file, key));
  const migrations = await currentMigrations(knex);
  if (JSON.stringify(migrations) !== JSON.stringify(document.migrations)) {
    throw new BackupFileError(
      `the backup was taken at schema ${document.migrations.at(-1) ?? '(none)'} but this database is at ${migrations.at(-1) ?? '(none)'}; restore with the release that made it, then upgrade (nothing was changed)`,
    );
  }
  if (!options.force && !(await isEmpty(knex)))
    throw new BackupFileError('the database is not empty (users, clients or keys exist); use --force to replace its contents');
  const sealedValues = checkSealedValues(document, { master: box, vault: vaultBox });
  const digest = sha256(file);
  // BACKUP_KEY alone can make a file a restore accepts: say when this deployment never made this one.
  const recorded = await isRecordedBackup(knex, digest);
  let ended: RestoreReport['ended'] | undefined;
  let erasuresReapplied = 0;
  let dataKeysRewrapped: number | null = null;
  const { audit, restored } = await rolledBackOnFailure(
    importTables(knex, document, {
      auditKey,
      ...(options.onTable ? { onTable: options.onTable } : {}),
      async afterRefill(trx, merged) {
        // Accounts erased after the backup was taken stay erased (S5: the journal was merged).
        erasuresReapplied = await erasure.reapply(trx);
        // A backup from before VAULT_KEY brings data keys wrapped under MASTER_KEY: moved at once (S3).
        if (vaultBox) dataKeysRewrapped = Object.values((await rewrapDataKeys(trx, vaultBox, box)).resealed).reduce((sum, n) => sum + n, 0);
        const inPostgres = await endRestoredCredentials(trx, box.seal(randomBytes(32).toString('base64url'), SEAL_CONTEXT.cookieKey()));
        // Redis cannot join the transaction: emptied last, so any failure before leaves it untouched.
        const redisKeys = redis ? await endOidcState(redis) : 'no Redis configured for this command';
        ended = { ...inPostgres, redis_keys: redisKeys };
        await auditStore.append(
          {
            type: 'backup.restored',
            data: {
              sha256: digest,
              recorded,
              taken_at: document.created_at,
              audit: merged.audit,
              ended,
              erasures_reapplied: erasuresReapplied,
            },
          },
          trx,
        );
      },
    }),
  );
  if (!ended) throw new Error('the restore ended without its final step');
  return {
    restored,
    taken_at: document.created_at,
    sha256: digest,
    recorded,
    sealed_values_checked: sealedValues,
    audit,
    ended,
    erasures_reapplied: erasuresReapplied,
    data_keys_rewrapped: dataKeysRewrapped,
  };
}
