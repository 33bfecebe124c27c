import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Redis } from './redis.ts';

/** Remembers DPoP proof ids (RFC 9449 §11.1) for their acceptance window. */
export type ReplayStore = {
  /** True the first time a key is seen within ttlSeconds; false for a replay. Throws when the store is down. */
  firstUse(key: string, ttlSeconds: number): Promise<boolean>;
  /** Forgets a key, so its next firstUse is first again (a claim given back). */
  release(key: string): Promise<void>;
};

const digest = (key: string): string => createHash('sha256').update(key, 'utf8').digest('base64url');

/** The namespace of the auth server's claims; the API's DPoP proofs have their own (API_REPLAY_NAMESPACE). */
export const DEFAULT_REPLAY_NAMESPACE = 'once:';
/**
 * The API's DPoP proof ids. Their own Redis keys, so the API's Redis user may touch these and
 * nothing else (`portcullis redis acl`, S3): not the auth server's claims, not the oidc state.
 */
export const API_REPLAY_NAMESPACE = 'api-dpop:';

/** Redis SET NX EX when configured (atomic across instances), else an INSERT … ON CONFLICT in Postgres. */
export function createReplayStore({
  redis,
  knex,
  namespace = DEFAULT_REPLAY_NAMESPACE,
}: {
  redis: Redis | undefined;
  knex: Knex;
  namespace?: string;
}): ReplayStore {
  if (redis) {
    return {
      async firstUse(key, ttlSeconds) {
        return (await redis.set(`${namespace}${digest(key)}`, '1', 'EX', ttlSeconds, 'NX')) === 'OK';
      },
      async release(key) {
        await redis.del(`${namespace}${digest(key)}`);
      },
    };
  }
  // The auth server's rows keep their unprefixed digests (as stored before namespaces existed).
  const rowId = (key: string): string => (namespace === DEFAULT_REPLAY_NAMESPACE ? digest(key) : `${namespace}${digest(key)}`);
  let inserts = 0;
  return {
    async firstUse(key, ttlSeconds) {
      if (++inserts % 500 === 0) await knex('dpop_proof_jtis').where('expires_at', '<', knex.fn.now()).delete();
      const rows = await knex('dpop_proof_jtis')
        .insert({ jti_hash: rowId(key), expires_at: new Date(Date.now() + ttlSeconds * 1000) })
        .onConflict('jti_hash')
        .merge({ expires_at: knex.raw('EXCLUDED.expires_at') })
        .where('dpop_proof_jtis.expires_at', '<', knex.fn.now())
        .returning('jti_hash');
      return rows.length > 0;
    },
    async release(key) {
      await knex('dpop_proof_jtis')
        .where({ jti_hash: rowId(key) })
        .delete();
    },
  };
}
