import type { ReplayStore } from '../store/dpop-replay.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

/** Longest a client assertion or DPoP proof id is remembered, seconds (assertions live minutes). */
const REMEMBER_SECONDS = 3600;

/**
 * oidc-provider's ReplayDetection (client assertion and DPoP proof `jti`s at the authorization
 * server) is find-then-save, so concurrent requests with the same jti can all pass
 * (docs/security.md T24). Claiming the id atomically in the lookup (Redis SET NX / Postgres
 * upsert) lets exactly one through; the provider's own save afterwards is harmless.
 */
export function withAtomicReplayDetection(inner: Adapter, once: ReplayStore): Adapter {
  return {
    ...inner,
    async find(id) {
      if (await once.firstUse(`replay-detection:${id}`, REMEMBER_SECONDS)) return inner.find(id);
      const now = Math.floor(Date.now() / 1000);
      return { jti: id, kind: 'ReplayDetection', iat: now, exp: now + REMEMBER_SECONDS };
    },
  };
}
