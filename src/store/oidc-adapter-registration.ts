import { createHash } from 'node:crypto';
import type { InitialAccessTokenStore } from './initial-access-tokens.ts';
import type { Adapter } from './oidc-adapter.ts';

const epoch = (date: Date): number => Math.floor(date.getTime() / 1000);

/** The policy every initial access token carries (implemented in the provider configuration). */
export const BASE_REGISTRATION_POLICY = 'portcullis';

/**
 * The policy name that says "an operator allowed this scope" (e.g. `grant:account:erase`).
 * Policies are the one thing oidc-provider copies from an initial access token to the
 * registration access tokens of the client it made, so RFC 7592 updates see the same grant.
 */
export const grantPolicy = (scope: string): string => `grant:${scope}`;

/**
 * oidc-provider's InitialAccessToken model over our own table: the presented token is hashed
 * and redeemed (one use counted atomically) in the lookup. The payload's jti is the token's
 * row id, so what the provider remembers about it is never the secret itself. Tokens are
 * made by `portcullis iat create`, never by the provider.
 */
export function createInitialAccessTokenAdapter(
  store: InitialAccessTokenStore,
  { grantableScopes }: { grantableScopes: readonly string[] },
): Adapter {
  const refuse = (): Promise<never> => Promise.reject(new Error('initial access tokens are managed with `portcullis iat`'));
  return {
    async find(value) {
      const record = await store.redeem(value);
      if (!record) return undefined;
      return {
        jti: record.id,
        kind: 'InitialAccessToken',
        iat: epoch(record.created_at),
        ...(record.expires_at ? { exp: epoch(record.expires_at) } : {}),
        // Only scopes a token may grant become policies: a row edited to say "admin" grants nothing.
        policies: [
          BASE_REGISTRATION_POLICY,
          ...record.allowed_scope
            .split(' ')
            .filter((scope) => grantableScopes.includes(scope))
            .map(grantPolicy),
        ],
      };
    },
    upsert: refuse,
    destroy: () => Promise.resolve(),
    consume: () => Promise.resolve(),
    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),
    revokeByGrantId: () => Promise.resolve(),
  };
}

const sha256 = (value: string): string => createHash('sha256').update(value, 'utf8').digest('base64url');

/**
 * Stores a bearer-token model under the SHA-256 of its value, without the value in the payload:
 * a database dump does not yield usable registration access tokens.
 */
export function hashedIdAdapter(inner: Adapter): Adapter {
  return {
    ...inner,
    async upsert(id, payload, expiresIn) {
      const { jti: _jti, ...rest } = payload;
      await inner.upsert(sha256(id), rest, expiresIn);
    },
    async find(id) {
      const payload = await inner.find(sha256(id));
      return payload ? { ...payload, jti: id } : undefined;
    },
    destroy: (id) => inner.destroy(sha256(id)),
    consume: (id) => inner.consume(sha256(id)),
  };
}
