import type { Knex } from 'knex';
import type { AuditEventRow } from './audit-events.ts';

export type AuditSearch = {
  actorId?: string | undefined;
  type?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Events with an id below this one (the listing runs newest first). */
  beforeId?: number | undefined;
  limit: number;
};

/** Read side of the audit log for the admin API and the GDPR export. */
export function createAuditSearch(knex: Knex) {
  return {
    async search(filter: AuditSearch): Promise<AuditEventRow[]> {
      const query = knex<AuditEventRow>('audit_events').orderBy('id', 'desc').limit(filter.limit);
      if (filter.actorId) void query.where('actor_id', filter.actorId);
      if (filter.type) void query.where('type', filter.type);
      if (filter.since) void query.where('occurred_at', '>=', filter.since);
      if (filter.until) void query.where('occurred_at', '<', filter.until);
      if (filter.beforeId !== undefined) void query.where('id', '<', filter.beforeId);
      return query;
    },

    /**
     * Reads of the owner's records by others (S11, `record.accessed`), newest first. Found through
     * `data.owner_ids` (a GIN index on it for these events only).
     */
    async accessesOf(ownerId: string, limit: number): Promise<AuditEventRow[]> {
      return knex<AuditEventRow>('audit_events')
        .where('type', 'record.accessed')
        .whereRaw(`data->'owner_ids' @> ?::jsonb`, [JSON.stringify([ownerId])])
        .orderBy('id', 'desc')
        .limit(limit);
    },

    /** Every event about one user: as actor, or named in the event data (e.g. a share with them). */
    async trailOf(userId: string): Promise<AuditEventRow[]> {
      return knex<AuditEventRow>('audit_events')
        .where('actor_id', userId)
        .orWhereRaw(`data->>'user_id' = ?`, [userId])
        .orWhereRaw(`data->>'with_user' = ?`, [userId])
        .orderBy('id', 'asc');
    },
  };
}

export type AuditSearchStore = ReturnType<typeof createAuditSearch>;
