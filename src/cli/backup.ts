import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Deps } from '../deps.ts';
import { BackupFileError, openBackup, parseBackupKey, sealBackup } from '../shared/backup-file.ts';
import { DecryptionError } from '../shared/crypto-box.ts';
import { currentMigrations, exportTables, importTables, isEmpty, type BackupDocument } from '../store/backup.ts';

export { BackupFileError };

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

/** One line per table on a terminal; silent when piped. */
function progress(verb: string): (name: string, rows: number) => void {
  if (!process.stderr.isTTY) return () => undefined;
  return (name, rows) => process.stderr.write(`\r\x1b[K${verb} ${name} (${rows} rows)`);
}

function keyOf(deps: Deps): Buffer {
  if (!deps.config.backupKey) throw new BackupFileError('set BACKUP_KEY (or BACKUP_KEY_FILE): base64 of 32 random bytes, kept apart from the backups and from MASTER_KEY');
  return parseBackupKey(deps.config.backupKey);
}

function isBackupDocument(value: unknown): value is BackupDocument {
  const doc = value as Partial<BackupDocument> | null;
  return doc?.format === 'portcullis-backup' && doc.version === 1 && Array.isArray(doc.tables) && Array.isArray(doc.migrations);
}

const summary = (doc: BackupDocument) => Object.fromEntries(doc.tables.map((t) => [t.name, t.rows.length]));

/**
 * `portcullis backup create|restore`. The backup holds Postgres only: Redis (sessions, codes,
 * tokens) is never restored, since an old copy would resurrect consumed codes and revoked grants.
 * Secrets inside stay sealed under MASTER_KEY; the file itself is sealed under BACKUP_KEY.
 */
export function registerBackupCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: (value: unknown) => void }): void {
  const backup = program.command('backup').description('encrypted logical backups of the Postgres data (AES-256-GCM under BACKUP_KEY)');
  backup
    .command('create')
    .description('write a consistent backup of every Portcullis table (one snapshot) to FILE')
    .requiredOption('--out <file>', 'where to write the backup (must not exist; created 0600)')
    .action(async (opts: { out: string }) => {
      const result = await withDeps(async (deps) => {
        const key = keyOf(deps);
        const doc = await exportTables(deps.knex, progress('backing up'));
        const sealed = sealBackup(doc, key);
        await writeFile(opts.out, sealed, { mode: 0o600, flag: 'wx' });
        return { file: opts.out, bytes: sealed.length, created_at: doc.created_at, migrations: doc.migrations.length, tables: summary(doc) };
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      print(result);
    });
  backup
    .command('restore <file>')
    .description('restore FILE into an empty database (same release and MASTER_KEY); all sessions end (cookie keys rotate)')
    .option('--force', 'replace the contents of a database that is not empty')
    .action(async (file: string, opts: { force?: boolean }) => {
      const result = await withDeps(async (deps) => {
        const doc = openBackup(await readFile(file), keyOf(deps));
        if (!isBackupDocument(doc)) throw new BackupFileError('the file decrypts, but is not a backup this release understands');
        const migrations = await currentMigrations(deps.knex);
        if (JSON.stringify(migrations) !== JSON.stringify(doc.migrations)) {
          throw new BackupFileError(
            `the backup was taken at schema ${doc.migrations.at(-1) ?? '(none)'} but this database is at ${migrations.at(-1) ?? '(none)'}; restore with the release that made it, then upgrade`,
          );
        }
        if (!opts.force && !(await isEmpty(deps.knex))) throw new BackupFileError('the database is not empty (users, clients or keys exist); use --force to replace its contents');
        await importTables(deps.knex, doc, {
          onTable: progress('restoring'),
          async verify(trx) {
            // Sealed values must open with this MASTER_KEY, or the restore would be unusable.
            const sealed = await trx('signing_keys').first<{ kid: string; private_jwk_sealed: string } | undefined>('kid', 'private_jwk_sealed');
            try {
              if (sealed) deps.box.open(sealed.private_jwk_sealed, `signing-key:${sealed.kid}`);
            } catch (error) {
              if (error instanceof DecryptionError) throw new BackupFileError('the backup was sealed under a different MASTER_KEY; start with the key it was taken with (nothing was changed)');
              throw error;
            }
            // Every session signed with a restored cookie key ends: new key first, old ones retired.
            await trx('cookie_keys').whereNull('retired_at').update({ retired_at: trx.fn.now() });
            await trx('cookie_keys').insert({ key_sealed: deps.box.seal(randomBytes(32).toString('base64url'), 'cookie-key') });
          },
        });
        return { restored: summary(doc), taken_at: doc.created_at, cookie_keys_rotated: true, next: 'Redis was not restored (sessions, codes and tokens start empty); running instances pick up the new cookie keys within KEYS_REFRESH_SECONDS' };
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      print(result);
    });
}
