import type { Knex } from 'knex';
import { type AuditEventRow, GENESIS_HASH, hashEvent } from './audit-events.ts';

/** audit_events.id is a bigint: pg returns it as a string, whatever the row type says. */
export const eventId = (id: number | string): number => Number(id);

export type ChainReport =
  | { ok: true; events: number; first_id: number | null; last_id: number | null; last_hash: string }
  | { ok: false; events: number; broken_at: number; reason: string; expected: string; found: string };

/**
 * Walks the audit chain in id order, in batches, up to the last event that existed when the walk
 * started (events appended meanwhile are checked next time). Appends take an advisory lock and
 * read the last hash inside it, so ids grow in chain order; a rolled-back append leaves an id gap,
 * which is fine: each event must link to the event stored before it, whatever its id.
 * Reports the first broken link: an edited event (its hash no longer matches its content), or a
 * deleted or inserted one (the next event's prev_hash no longer names its predecessor).
 */
export async function verifyAuditChain(knex: Knex | Knex.Transaction, options: { batchSize?: number } = {}): Promise<ChainReport> {
  const batchSize = options.batchSize ?? 1000;
  const bound = await knex('audit_events').max<{ max: number | string | null }>('id as max').first();
  const lastId = bound?.max == null ? null : Number(bound.max);
  let expectedPrev = GENESIS_HASH;
  let firstId: number | null = null;
  let afterId = 0;
  let events = 0;
  if (lastId === null) return { ok: true, events: 0, first_id: null, last_id: null, last_hash: GENESIS_HASH };
  for (;;) {
    const rows = await knex<AuditEventRow>('audit_events')
      .where('id', '>', afterId)
      .andWhere('id', '<=', lastId)
      .orderBy('id', 'asc')
      .limit(batchSize);
    if (rows.length === 0) break;
    for (const row of rows) {
      const id = eventId(row.id);
      firstId ??= id;
      if (row.prev_hash !== expectedPrev) {
        const reason =
          events === 0
            ? 'the first event does not start the chain (events before it were deleted?)'
            : 'prev_hash does not match the hash of the event before it (an event was deleted or inserted)';
        return { ok: false, events, broken_at: id, reason, expected: expectedPrev, found: row.prev_hash };
      }
      const recomputed = hashEvent(row.prev_hash, row);
      if (recomputed !== row.hash) {
        return {
          ok: false,
          events,
          broken_at: id,
          reason: 'the event was modified after it was written (its hash does not match its content)',
          expected: recomputed,
          found: row.hash,
        };
      }
      expectedPrev = row.hash;
      events += 1;
      afterId = id;
    }
  }
  return { ok: true, events, first_id: firstId, last_id: afterId, last_hash: expectedPrev };
}

/** Keys whose values never leave the database in an export, whatever an event put there. */
const SECRET_KEY =
  /pass(word|phrase)|secret|private|otp|recovery|^(access|refresh|id|registration_access|initial_access)_?token$|^code(_verifier)?$|^(cookie|master|backup)_?key/i;

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redact(v)]),
    );
  }
  return value;
}

/** A stored event as exported: `time` instead of `occurred_at`, data redacted. */
export type ExportedEvent = Omit<AuditEventRow, 'occurred_at' | 'data'> & { time: string; data: unknown };

/**
 * Events at or after `since`, oldest first, in batches, as SIEM-ready objects (one per line when
 * written). Secrets are never recorded in events (ASVS 16.2.5); the redaction is a second net.
 */
export async function* exportAuditEvents(knex: Knex, since: Date | undefined, batchSize = 1000): AsyncGenerator<ExportedEvent> {
  let afterId = 0;
  for (;;) {
    const query = knex<AuditEventRow>('audit_events').where('id', '>', afterId).orderBy('id', 'asc').limit(batchSize);
    if (since) void query.andWhere('occurred_at', '>=', since);
    const rows = await query;
    for (const row of rows) {
      afterId = eventId(row.id);
      yield {
        id: afterId,
        time: row.occurred_at.toISOString(),
        type: row.type,
        outcome: row.outcome,
        actor_id: row.actor_id,
        client_id: row.client_id,
        ip: row.ip,
        user_agent: row.user_agent,
        data: redact(row.data),
        prev_hash: row.prev_hash,
        hash: row.hash,
      };
    }
    if (rows.length < batchSize) return;
  }
}
