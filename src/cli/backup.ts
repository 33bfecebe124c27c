import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Config } from '../config/types.ts';
import { createBackup, recordBackupCreated, restoreBackup } from '../services/backup.ts';
import { BackupFileError, parseBackupKey } from '../shared/backup-file.ts';
import type { Print, WithAuditLog, WithDeps } from './context.ts';

export { BackupFileError };

/** One line per table on a terminal; silent when piped. */
function progress(verb: string): (name: string, rows: number) => void {
  if (!process.stderr.isTTY) return () => undefined;
  return (name, rows) => process.stderr.write(`\r\x1b[K${verb} ${name} (${rows} rows)`);
}

function keyOf(config: Config): Buffer {
  if (!config.backupKey)
    throw new BackupFileError(
      'set BACKUP_KEY (or BACKUP_KEY_FILE): base64 of 32 random bytes, kept apart from the backups and from MASTER_KEY',
    );
  return parseBackupKey(config.backupKey);
}

/**
 * `portcullis backup create|restore`. The backup holds the durable Postgres data; flows
 * (sessions, codes, grants, tokens, in Redis or Postgres) are never in it, and a restore ends
 * every one that exists (see services/backup.ts). Secrets inside stay sealed under MASTER_KEY;
 * the file itself is sealed under BACKUP_KEY. `create` runs without MASTER_KEY.
 */
export function registerBackupCommands(
  program: Command,
  { withDeps, withAuditLog, print }: { withDeps: WithDeps; withAuditLog: WithAuditLog; print: Print },
): void {
  const backup = program.command('backup').description('encrypted logical backups of the Postgres data (AES-256-GCM under BACKUP_KEY)');
  backup
    .command('create')
    .description(
      'write a consistent backup of every Portcullis table (one snapshot) to FILE; needs BACKUP_KEY and AUDIT_KEY, not MASTER_KEY',
    )
    .requiredOption('--out <file>', 'where to write the backup (must not exist; created 0600)')
    .action(async (opts: { out: string }) => {
      // The file is recorded in the audit chain, keyed by AUDIT_KEY (never MASTER_KEY).
      const result = await withAuditLog(async ({ knex, auditStore, config }) => {
        const backupKey = keyOf(config);
        const made = await createBackup(knex, backupKey, progress('backing up'));
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the output file on the command line (and wx never overwrites)
        await writeFile(opts.out, made.sealed, { mode: 0o600, flag: 'wx' });
        try {
          await recordBackupCreated(auditStore, made);
        } catch (error) {
          // Every backup file in existence is in the audit log: no event, no file.
          await rm(opts.out, { force: true });
          throw new BackupFileError(
            `the backup could not be recorded in the audit log, so ${opts.out} was removed: ${(error as Error).message}`,
          );
        }
        return {
          file: opts.out,
          bytes: made.sealed.length,
          sha256: made.sha256,
          created_at: made.takenAt,
          migrations: made.migrations,
          tables: made.tables,
        };
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      print(result);
    });
  backup
    .command('restore <file>')
    .description('restore FILE (same release and MASTER_KEY); ends every session, grant, code and token, in Redis and Postgres')
    .option('--force', 'replace the contents of a database that is not empty (the audit log is kept and continued, never replaced)')
    .action(async (file: string, opts: { force?: boolean }) => {
      const result = await withDeps(async (deps) => {
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the backup file on the command line
        const report = await restoreBackup({ ...deps, erasure: deps.api.erasure }, await readFile(file), keyOf(deps.config), {
          force: opts.force,
          onTable: progress('restoring'),
        });
        return {
          ...report,
          cookie_keys_rotated: true,
          next: [
            ...(report.recorded === false
              ? [
                  'WARNING: this database never recorded making this file (no backup.created event with its sha256): it comes from another deployment, an older release, or whoever holds BACKUP_KEY; make sure you know where it came from',
                ]
              : []),
            typeof report.ended.redis_keys === 'number'
              ? `ended the flows in Redis (keys under REDIS_KEY_PREFIX ${JSON.stringify(deps.config.redisKeyPrefix)}) and in Postgres`
              : 'REDIS_URL is not set for this command: if the servers use Redis, their sessions and tokens were NOT ended; run the restore again with their REDIS_URL and REDIS_KEY_PREFIX',
            'running instances pick up the new cookie keys within KEYS_REFRESH_SECONDS; if COOKIE_KEYS is set, change it and restart',
            'initial access tokens were revoked and registration access tokens ended: issue new ones (portcullis iat create) where still wanted',
          ],
        };
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      print(result);
    });
}
