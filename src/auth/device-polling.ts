import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

/** RFC 8628 §3.2: the polling interval clients are told to use (the RFC's default, 5 s). */
export const DEVICE_POLL_INTERVAL = 5;

/**
 * RFC 8628 §3.5 slow_down: oidc-provider v9 no longer paces device-code polling, so the
 * DeviceCode adapter does it. A token request for a device code within the interval of the
 * previous one is answered `slow_down` (atomically: Redis SET NX / Postgres upsert, shared by
 * every instance).
 */
export function withDevicePollPacing(inner: Adapter, pacing: ReplayStore): Adapter {
  return {
    ...inner,
    async find(id) {
      const ctx = (Provider as unknown as { ctx?: KoaContextWithOIDC }).ctx;
      if (ctx?.oidc.route === 'token' && !(await pacing.firstUse(`device-poll:${id}`, DEVICE_POLL_INTERVAL))) {
        throw new errors.SlowDown();
      }
      return inner.find(id);
    },
  };
}
