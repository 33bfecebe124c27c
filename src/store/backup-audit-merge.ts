import type { Knex } from 'knex';
import { BackupFileError } from '../shared/backup-file.ts';
import { verifyAuditChain } from './audit-chain.ts';
import { insertRows, resetSequences } from './backup-rows.ts';

export type AuditMerge = { kept_after_backup: number; restored_from_backup: number };
type StoredEvent = { id: number | string; hash: string };

/**
 * A restore never loses an audit event. The backup's log and the database's are copies of one
 * hash chain, and a hash names its event and every event before it, so comparing one hash tells
 * whether one copy continues the other:
 * - the database has no events (a new database): the backup's are restored;
 * - the database holds the backup's last event (same id and hash): its log continues the
 *   backup's and is kept as it is, with everything recorded since the backup;
 * - the backup holds the database's last event: the backup's later events are added;
 * - otherwise the histories diverge (another deployment's backup, or an altered log): refused.
 * Whatever the case, the resulting chain must verify end to end, or the restore is refused.
 */
export async function mergeAuditLog(trx: Knex.Transaction, rows: unknown[], auditKey: Buffer): Promise<AuditMerge> {
  const backup = (rows as StoredEvent[]).toSorted((a, b) => Number(a.id) - Number(b.id));
  const last = await trx<StoredEvent>('audit_events').orderBy('id', 'desc').first('id', 'hash');
  const backupLast = backup.at(-1);
  const after = async (id: number | string) =>
    Number((await trx('audit_events').where('id', '>', id).count<{ n: string }[]>('* as n'))[0]?.n ?? 0);
  let added: StoredEvent[];
  let kept = 0;
  if (!last) {
    added = backup;
  } else if (!backupLast) {
    added = [];
    kept = await after(0);
  } else if ((await trx<StoredEvent>('audit_events').where('id', backupLast.id).first('hash'))?.hash === backupLast.hash) {
    added = [];
    kept = await after(backupLast.id);
  } else if (backup.find((event) => Number(event.id) === Number(last.id))?.hash === last.hash) {
    added = backup.filter((event) => Number(event.id) > Number(last.id));
  } else {
    throw new BackupFileError(
      `the audit log in the backup and the audit log in this database diverge (neither continues the other: another deployment's backup, or an altered log); a restore never drops audit events, so export this database's log (portcullis audit export) and restore into an empty database (nothing was changed)`,
    );
  }
  await insertRows(trx, 'audit_events', added);
  await resetSequences(trx, 'audit_events');
  const chain = await verifyAuditChain(trx, auditKey);
  if (!chain.ok) {
    throw new BackupFileError(
      `the audit log would not verify after this restore (event ${chain.broken_at}: ${chain.reason}); check it with portcullis audit verify (nothing was changed)`,
    );
  }
  return { kept_after_backup: kept, restored_from_backup: added.length };
}
