import type { AuditEventInput, AuditEventStore } from '../store/audit-events.ts';
import type { Logger } from '../shared/logger.ts';

/**
 * Security events go to the hash-chained audit table. Writing them must not break the flow
 * that triggered them when it already succeeded, so failures are logged loudly instead.
 */
export function createAuditService({ store, logger }: { store: AuditEventStore; logger: Logger }) {
  return {
    async record(event: AuditEventInput): Promise<void> {
      try {
        await store.append(event);
      } catch (error) {
        logger.error({ err: error, auditType: event.type }, 'audit event could not be written');
      }
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
