import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

export type AuditEventInput = {
  type: string;
  outcome?: 'success' | 'failure';
  actorId?: string | undefined;
  clientId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  data?: Record<string, unknown>;
};

export type AuditEventRow = {
  id: number;
  occurred_at: Date;
  type: string;
  outcome: string;
  actor_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  data: Record<string, unknown>;
  prev_hash: string;
  hash: string;
};

export const GENESIS_HASH = '0'.repeat(64);

/** Serialises writers of the chain (appends, and a restore merging its log): held until commit. */
export const AUDIT_CHAIN_LOCK = "pg_advisory_xact_lock(hashtext('portcullis:audit'))";

/** jsonb reorders keys, so hashes are computed over a key-sorted rendering. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function hashEvent(prevHash: string, row: Omit<AuditEventRow, 'id' | 'prev_hash' | 'hash'>): string {
  const body = canonical([
    row.occurred_at.toISOString(),
    row.type,
    row.outcome,
    row.actor_id,
    row.client_id,
    row.ip,
    row.user_agent,
    row.data,
  ]);
  return createHash('sha256').update(prevHash).update(body).digest('hex');
}

export function createAuditEventStore(knex: Knex) {
  return {
    /** Appends one event to the chain; the advisory lock orders concurrent writers. */
    async append(event: AuditEventInput): Promise<AuditEventRow> {
      return knex.transaction(async (trx) => {
        // Lock, then read the last hash, in one round trip: two statements in one simple query.
        // Under READ COMMITTED each statement takes its own snapshot, so the SELECT (started after
        // the lock was granted) sees every event committed by the previous holder of the lock.
        const results = await trx.raw<{ rows: { hash: string }[] }[]>(
          `SELECT ${AUDIT_CHAIN_LOCK}; SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`,
        );
        const prevHash = results[1]?.rows[0]?.hash ?? GENESIS_HASH;
        const row = {
          occurred_at: new Date(),
          type: event.type,
          outcome: event.outcome ?? 'success',
          actor_id: event.actorId ?? null,
          client_id: event.clientId ?? null,
          ip: event.ip ?? null,
          // Cut on code points so no half surrogate pair is stored (it would not hash the same).
          user_agent: event.userAgent === undefined ? null : Array.from(event.userAgent).slice(0, 512).join(''),
          // Hash exactly what jsonb will hold (Dates become strings, undefined disappears).
          data: JSON.parse(JSON.stringify(event.data ?? {})) as Record<string, unknown>,
        };
        const hash = hashEvent(prevHash, row);
        const [inserted] = await trx<AuditEventRow>('audit_events')
          .insert({ ...row, data: JSON.stringify(row.data) as unknown as Record<string, unknown>, prev_hash: prevHash, hash })
          .returning('*');
        if (!inserted) throw new Error('audit insert returned no row');
        return inserted;
      });
    },

    async list(filter: { actorId?: string; type?: string; limit?: number } = {}): Promise<AuditEventRow[]> {
      const query = knex<AuditEventRow>('audit_events').orderBy('id', 'asc').limit(filter.limit ?? 1000);
      if (filter.actorId) void query.where('actor_id', filter.actorId);
      if (filter.type) void query.where('type', filter.type);
      return query;
    },
  };
}

export type AuditEventStore = ReturnType<typeof createAuditEventStore>;
