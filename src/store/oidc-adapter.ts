import { errors } from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';

export type { Adapter, AdapterPayload };

/** Models whose tokens belong to a grant and die with it (revokeByGrantId). */
export const grantableModels = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Models that are redeemed once; a second redemption is refused by the adapter itself. */
export const grantSourceModels = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * Models a restore leaves alone when it ends every flow (oidc-adapter-redis endOidcState, and
 * oidc_payloads in store/backup.ts): the replay cache of client assertion jtis holds no grant,
 * and emptying it would let a captured assertion be replayed.
 */
export const modelsKeptByRestore: ReadonlySet<string> = new Set(['ReplayDetection']);

/**
 * oidc-provider checks `consumed` and then calls consume(): two concurrent redemptions can
 * both pass the check. Our adapters mark consumption atomically and, when they lose the race,
 * revoke the grant and answer with invalid_grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
 */
export function alreadyConsumed(model: string): Error {
  return new errors.InvalidGrant(`${model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
}

/**
 * REFRESH_REUSE_GRACE_SECONDS / _COUNT: a rotated refresh token may be presented again `count`
 * more times within `seconds` of its first use (a client retrying after a lost response, or
 * two tabs racing), like Okta's "grace period for token rotation" and Hydra's
 * refresh_token_rotation_grace_period. Off (0) by default: then every reuse revokes the grant.
 */
export type RefreshGrace = Readonly<{ seconds: number; count: number }>;

export const NO_GRACE: RefreshGrace = { seconds: 0, count: 0 };

export const graceApplies = (model: string, grace: RefreshGrace): boolean => model === 'RefreshToken' && grace.seconds > 0 && grace.count > 0;

/**
 * oidc-provider revokes the grant as soon as `find` returns a consumed refresh token, before our
 * consume() can decide. Within the grace window `find` therefore hides the consumed mark, and
 * consume() alone decides atomically (window and count); outside it the provider's own path runs.
 */
export function hideConsumedWithinGrace(payload: AdapterPayload | undefined, consumedAtMs: number | undefined, grace: RefreshGrace): AdapterPayload | undefined {
  if (!payload?.consumed || consumedAtMs === undefined || Date.now() - consumedAtMs > grace.seconds * 1000) return payload;
  const rest: AdapterPayload = { ...payload };
  delete rest.consumed;
  return rest;
}

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
