import type { AuditEventInput, AuditEventStore } from '../store/audit-events.ts';
import type { Logger } from '../shared/logger.ts';

/**
 * Checking and exporting the chain (`portcullis audit verify|export`): the walk over the stored
 * events lives with the table (src/store/audit-chain.ts); commands reach it through this module.
 */
export { exportAuditEvents, verifyAuditChain } from '../store/audit-chain.ts';

/**
 * Security events go to the HMAC-chained audit table. Writing them must not break the flow
 * that triggered them when it already succeeded, so failures are logged loudly instead (unless
 * the event is `required`).
 */
export function createAuditService({ store, logger }: { store: AuditEventStore; logger: Logger }) {
  const observers: ((event: AuditEventInput) => void)[] = [];
  return {
    /** Sees every event as it is recorded (metrics count logins and lockouts from here). */
    observe(observer: (event: AuditEventInput) => void): void {
      observers.push(observer);
    },

    /**
     * `required`: the caller's answer depends on the event being stored (a disclosure of someone
     * else's data, S11): a failed write is thrown, so nothing is disclosed unrecorded.
     */
    async record(event: AuditEventInput, options: { required?: boolean } = {}): Promise<void> {
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
        if (options.required) throw error;
      }
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
