import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

/** Longest one RFC 7592 request may hold its token (a crashed request frees it after this). */
const CLAIM_SECONDS = 60;

/** The RFC 7592 routes that end a registration access token: update (rotation) and delete. */
const ENDING_ROUTES = new Set(['client_update', 'client_delete']);

const claimKey = (token: string): string => `registration-access-token:${token}`;

/** The claim a request holds, so it can be given back when the request fails. */
const claims = new WeakMap<object, string>();

const currentContext = (): KoaContextWithOIDC | undefined => (Provider as unknown as { ctx?: KoaContextWithOIDC }).ctx;

/**
 * R10: oidc-provider's RFC 7592 update is find, update the client, destroy the old token, save a
 * new one, so N concurrent PUTs with one token all succeed and leave N live tokens (and a DELETE
 * racing a PUT can be undone by it). Looking the token up for an update or a delete claims it
 * atomically (Redis SET NX / Postgres upsert, across instances): exactly one request holds it, the
 * others find no token (401 invalid_token) before anything is written. A request that fails gives
 * its claim back (releaseFailedClaims), so a refused update leaves the token usable.
 */
export function withRegistrationTokenClaim(inner: Adapter, once: ReplayStore): Adapter {
  return {
    ...inner,
    async find(id) {
      const found = await inner.find(id);
      const ctx = currentContext();
      // Only a token that exists is claimed: unknown ones write nothing.
      if (!found || !ctx || !ENDING_ROUTES.has(ctx.oidc.route)) return found;
      if (!(await once.firstUse(claimKey(id), CLAIM_SECONDS))) return undefined;
      claims.set(ctx, id);
      return found;
    },
  };
}

/** Gives a claim back when its request did not succeed (the old token was not ended). */
export function releaseFailedClaims(provider: Provider, once: ReplayStore): void {
  provider.use(async function releaseRegistrationTokenClaim(ctx, next) {
    try {
      await next();
    } finally {
      const token = claims.get(ctx);
      if (token !== undefined && (ctx.status < 200 || ctx.status >= 300)) await once.release(claimKey(token));
    }
  });
}
