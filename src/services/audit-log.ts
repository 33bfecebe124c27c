import type { AuditSearchStore } from '../store/audit-search.ts';
import { presentAuditEvent } from './gdpr.ts';

export type AuditLogQuery = {
  limit: number;
  /** The id of the last event of the previous page (the listing runs newest first). */
  cursor?: string | undefined;
  user?: string | undefined;
  type?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
};

/** The hash-chained audit log as the admin API lists it: one page, newest first, and the next page's cursor. */
export function createAuditLog(search: AuditSearchStore) {
  return {
    async page(query: AuditLogQuery) {
      // One row more than asked tells whether another page follows.
      const rows = await search.search({
        actorId: query.user,
        type: query.type,
        since: query.since,
        until: query.until,
        beforeId: query.cursor ? Number(query.cursor) : undefined,
        limit: query.limit + 1,
      });
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return { items: page.map(presentAuditEvent), next_cursor: rows.length > query.limit && last ? String(last.id) : null };
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
