import type { AuditLog } from '../../services/audit-log.ts';
import { badRequest } from '../../shared/problem.ts';
import { defineRoute, type AnyRoute } from '../define-route.ts';
import { requests } from '../schemas.ts';

type AuditQuery = { limit: number; cursor?: string; user?: string; type?: string; since?: string; until?: string };

/** The audit log, newest first: admins and auditors (audit:read) with the `admin` scope. */
export function adminAuditRoutes({ auditLog }: { auditLog: AuditLog }): AnyRoute[] {
  return [
    defineRoute<Record<string, never>, AuditQuery>({
      operationId: 'listAuditEvents',
      method: 'get',
      path: '/v1/admin/audit',
      summary: 'Search the hash-chained audit log by user, event type and time',
      tags: ['admin'],
      scopes: ['admin'],
      permission: 'audit:read',
      query: requests.auditQuery,
      responses: { 200: { description: 'One page of events, newest first.', schema: 'AuditPage' } },
      async handler({ query }) {
        const since = query.since ? new Date(query.since) : undefined;
        const until = query.until ? new Date(query.until) : undefined;
        if (since && until && since >= until) throw badRequest('`since` must be before `until`.');
        return { body: await auditLog.page({ ...query, since, until }) };
      },
    }),
  ];
}
