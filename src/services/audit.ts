import type { AuditEventInput, AuditEventStore } from '../store/audit-events.ts';
import type { Logger } from '../shared/logger.ts';

/**
 * Security events go to the hash-chained audit table. Writing them must not break the flow
 * that triggered them when it already succeeded, so failures are logged loudly instead.
 */
export function createAuditService({ store, logger }: { store: AuditEventStore; logger: Logger }) {
  const observers: ((event: AuditEventInput) => void)[] = [];
  return {
    /** Sees every event as it is recorded (metrics count logins and lockouts from here). */
    observe(observer: (event: AuditEventInput) => void): void {
      observers.push(observer);
    },

    async record(event: AuditEventInput): Promise<void> {
      for (const observer of observers) {
        try {
          observer(event);
        } catch (error) {
          logger.warn({ err: error, auditType: event.type }, 'audit observer failed');
        }
      }
      try {
        await store.append(event);
      } catch (error) {
        logger.error({ err: error, auditType: event.type }, 'audit event could not be written');
      }
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
