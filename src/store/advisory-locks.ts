import type { Knex } from 'knex';

/**
 * Every Postgres advisory lock Portcullis takes, in one place (issue 18). Two code paths exclude
 * each other only while they name the same lock, so each is named once here and taken through
 * the functions below; a rename changes both sides at once instead of silently splitting them.
 *
 * Whole-database locks are keyed by hashtext(name) (a single bigint key). Per-row locks are
 * keyed by (namespace, hashtext(id)): the two-int key space never overlaps the bigint one, and
 * each namespace is its own number so locks of one role never wait on another role's.
 */
export const ADVISORY_LOCK = {
  /** Signing and cookie key creation and rotation: concurrent first starts create keys once. */
  signingKeys: 'portcullis:keys',
  /** The audit chain: appends and a restore merging its log, in chain order. */
  auditChain: 'portcullis:audit',
} as const;

export type AdvisoryLockName = (typeof ADVISORY_LOCK)[keyof typeof ADVISORY_LOCK];

/** Namespaces of per-row locks. */
export const ADVISORY_LOCK_NAMESPACE = {
  /** Share offers by one sharer (a pending-offer limit per sharer). */
  shareSharer: 7301,
  /** Share offers to one recipient (a pending-offer limit per recipient). */
  shareRecipient: 7302,
} as const;

/**
 * The SQL expression that takes a whole-database lock until the transaction ends. A literal, so
 * it can start a multi-statement query (lock and read in one round trip); the names are the
 * constants above, never input.
 */
export function transactionLockSql(name: AdvisoryLockName): string {
  return `pg_advisory_xact_lock(hashtext('${name}'))`;
}

/** Takes a whole-database lock until the transaction ends. */
export async function lockForTransaction(trx: Knex.Transaction, name: AdvisoryLockName): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [name]);
}

/**
 * Takes the lock on one UUID within a namespace until the transaction ends. Keyed by the UUID's
 * value, not the caller's spelling of it (R15): ::uuid::text is one text per id.
 */
export async function lockUuidForTransaction(
  trx: Knex.Transaction,
  namespace: (typeof ADVISORY_LOCK_NAMESPACE)[keyof typeof ADVISORY_LOCK_NAMESPACE],
  id: string,
): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?::uuid::text))', [namespace, id]);
}
