import { errors } from 'oidc-provider';
import type { Logger } from '../shared/logger.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

/** temporarily_unavailable with HTTP 503 (the provider's own class answers 400) and still exposed. */
class StoreUnavailable extends errors.TemporarilyUnavailable {
  constructor() {
    super('the service is temporarily unavailable');
    this.status = 503;
    this.statusCode = 503;
  }
}

/**
 * Fail closed, and say so (T45): anything an adapter throws that is not a protocol error of its
 * own (InvalidGrant on a reused code, SlowDown, …) is the store failing — Redis or Postgres down
 * or timing out. oidc-provider would answer that with a 500 server_error; as
 * TemporarilyUnavailable it becomes 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1), at the
 * token endpoint as well as on our interaction pages, and nothing is issued. The cause is
 * logged here (at most once a minute) because exposed errors are not logged by the provider.
 * Returns the wrapper; one log limit for every model it wraps.
 */
export function storageFailsClosed(logger: Logger): (inner: Adapter, model: string) => Adapter {
  let lastLogged = 0;
  const unavailable = (model: string, error: unknown): never => {
    if (error instanceof errors.OIDCProviderError) throw error;
    if (Date.now() - lastLogged > 60_000) {
      lastLogged = Date.now();
      logger.error({ err: error, model }, 'token/session store failed; answering 503 temporarily_unavailable');
    }
    throw new StoreUnavailable();
  };
  return (inner, model) => {
    const guarded: Record<string, unknown> = {};
    for (const [key, method] of Object.entries(inner)) {
      if (typeof method !== 'function') continue;
      // eslint-disable-next-line security/detect-object-injection -- key is a method name of our own adapter object
      guarded[key] = async (...args: unknown[]) => {
        try {
          return await (method as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
        } catch (error) {
          return unavailable(model, error);
        }
      };
    }
    return guarded as unknown as Adapter;
  };
}
