import type { Knex } from 'knex';

export type OutboxStatus = 'pending' | 'sent' | 'failed';

/** A row as the worker gets it when it claims it: what it needs to send and to decide a retry. */
export type ClaimedMail = { id: string; template: string; user_id: string | null; payload_sealed: string; attempts: number };

/** One claim of a row: its id and the attempt the claim counted. */
type Claim = Pick<ClaimedMail, 'id' | 'attempts'>;

export type OutboxFailure = { id: string; template: string; attempts: number; last_error: string | null; finished_at: Date };

export type OutboxCounts = {
  pending: number;
  /** Pending rows a worker holds right now (its lease runs). */
  sending: number;
  /** Pending rows that failed at least once and wait for their next attempt. */
  retrying: number;
  sent: number;
  failed: number;
  oldest_pending_at: Date | null;
};

/**
 * The mail outbox table (migrations/20261208000000_create_outbox.ts). Times come from the
 * database's clock, the one every instance shares. The payload is sealed by the caller
 * (src/services/mail.ts); this module only moves rows.
 */
export function createOutboxStore(knex: Knex) {
  return {
    /** Writes a pending mail, inside `trx` when given (the caller's change and its mail commit together). */
    async insert(row: { id: string; template: string; user_id: string | null; payload_sealed: string }, trx: Knex = knex): Promise<void> {
      await trx('outbox').insert(row);
    },

    /**
     * Claims up to `limit` due rows for `leaseSeconds`, counting the attempt now (a send that
     * crashes the process still uses one up). SKIP LOCKED: rows another worker is claiming at this
     * moment are passed over, never waited for; the lease then keeps them from every other claim
     * until it runs out.
     */
    async claim(limit: number, leaseSeconds: number): Promise<ClaimedMail[]> {
      const { rows } = await knex.raw<{ rows: ClaimedMail[] }>(
        `UPDATE outbox SET locked_until = now() + make_interval(secs => ?), attempts = attempts + 1
          WHERE id IN (
            SELECT id FROM outbox
             WHERE status = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())
             ORDER BY next_attempt_at
             LIMIT ?
             FOR UPDATE SKIP LOCKED)
          RETURNING id, template, user_id, payload_sealed, attempts`,
        [leaseSeconds, limit],
      );
      return rows;
    },

    /**
     * Sent: the content goes (it may hold a live link), the row stays for the retention period.
     * This and the two below change the row only while it is still the claim `claim` names (its
     * attempt): a worker whose lease ran out and whose row another worker took up changes nothing.
     */
    async markSent(claim: Claim): Promise<void> {
      await knex('outbox')
        .where({ id: claim.id, attempts: claim.attempts, status: 'pending' })
        .update({ status: 'sent', payload_sealed: null, locked_until: null, last_error: null, finished_at: knex.fn.now() });
    },

    /** Not sent this time: due again after `delaySeconds`. */
    async markRetry(claim: Claim, delaySeconds: number, error: string): Promise<void> {
      await knex('outbox')
        .where({ id: claim.id, attempts: claim.attempts, status: 'pending' })
        .update({
          next_attempt_at: knex.raw('now() + make_interval(secs => ?)', [delaySeconds]),
          locked_until: null,
          last_error: error,
        });
    },

    /** Given up: kept (content included, for `portcullis mail retry`) until the retention period ends. */
    async markFailed(claim: Claim, error: string): Promise<boolean> {
      const updated = await knex('outbox')
        .where({ id: claim.id, attempts: claim.attempts, status: 'pending' })
        .update({ status: 'failed', locked_until: null, last_error: error, finished_at: knex.fn.now() });
      return updated === 1;
    },

    /** Failed rows (all, or those named) become pending again with a fresh budget of attempts. */
    async requeueFailed(ids?: readonly string[]): Promise<number> {
      const query = knex('outbox').where({ status: 'failed' }).whereNotNull('payload_sealed');
      if (ids) void query.whereIn('id', ids);
      return query.update({ status: 'pending', attempts: 0, next_attempt_at: knex.fn.now(), finished_at: null, last_error: null });
    },

    /** Deletes sent and failed rows finished more than `days` ago; returns how many. */
    async prune(days: number): Promise<number> {
      return knex('outbox')
        .whereIn('status', ['sent', 'failed'])
        .andWhere('finished_at', '<', knex.raw('now() - make_interval(days => ?)', [days]))
        .delete();
    },

    async counts(): Promise<OutboxCounts> {
      const { rows } = await knex.raw<{ rows: Record<keyof OutboxCounts, string | Date | null>[] }>(
        `SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status = 'pending' AND locked_until > now()) AS sending,
                count(*) FILTER (WHERE status = 'pending' AND attempts > 0 AND (locked_until IS NULL OR locked_until <= now())) AS retrying,
                count(*) FILTER (WHERE status = 'sent') AS sent,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending_at
           FROM outbox`,
      );
      const row = rows[0];
      return {
        pending: Number(row?.pending ?? 0),
        sending: Number(row?.sending ?? 0),
        retrying: Number(row?.retrying ?? 0),
        sent: Number(row?.sent ?? 0),
        failed: Number(row?.failed ?? 0),
        oldest_pending_at: (row?.oldest_pending_at as Date | null | undefined) ?? null,
      };
    },

    /** The most recent failures, newest first: no recipient, no content. */
    async recentFailures(limit: number): Promise<OutboxFailure[]> {
      return knex('outbox')
        .where({ status: 'failed' })
        .orderBy('finished_at', 'desc')
        .limit(limit)
        .select<OutboxFailure[]>('id', 'template', 'attempts', 'last_error', 'finished_at');
    },
  };
}

export type OutboxStore = ReturnType<typeof createOutboxStore>;
