import type { Adapter } from './oidc-adapter.ts';

export const ADAPTER_OPERATIONS = ['find', 'upsert', 'consume', 'destroy', 'revokeByGrantId', 'findByUserCode', 'findByUid'] as const;
export type AdapterOperation = (typeof ADAPTER_OPERATIONS)[number];
export type AdapterStorage = 'redis' | 'postgres';

/** Gives the recorder (seconds) for one model, operation and storage; called once per wrapped adapter. */
export type AdapterTimings = (model: string, operation: AdapterOperation, storage: AdapterStorage) => (seconds: number) => void;

/**
 * Times every adapter operation (metrics: portcullis_adapter_operation_duration_seconds). The
 * recorders are looked up once here, so a call costs one hrtime pair and one observe.
 */
export function timedAdapter(adapter: Adapter, model: string, storage: AdapterStorage, timings: AdapterTimings): Adapter {
  const timed = <A extends unknown[], R>(operation: AdapterOperation, fn: (...args: A) => Promise<R>): ((...args: A) => Promise<R>) => {
    const observe = timings(model, operation, storage);
    return async (...args: A) => {
      const start = process.hrtime.bigint();
      try {
        return await fn(...args);
      } finally {
        observe(Number(process.hrtime.bigint() - start) / 1e9);
      }
    };
  };
  return {
    find: timed('find', adapter.find.bind(adapter)),
    upsert: timed('upsert', adapter.upsert.bind(adapter)),
    consume: timed('consume', adapter.consume.bind(adapter)),
    destroy: timed('destroy', adapter.destroy.bind(adapter)),
    revokeByGrantId: timed('revokeByGrantId', adapter.revokeByGrantId.bind(adapter)),
    findByUserCode: timed('findByUserCode', adapter.findByUserCode.bind(adapter)),
    findByUid: timed('findByUid', adapter.findByUid.bind(adapter)),
  };
}
