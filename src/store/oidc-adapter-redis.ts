import { once } from 'node:events';
import { Cluster, type Redis as IORedis } from 'ioredis';
import type { Redis } from './redis.ts';
import type { AdapterPayload, ConsumeMark, OidcStateStore } from './oidc-adapter.ts';
import { grantableModels, modelsKeptByRestore } from './oidc-adapter.ts';

// Marks a stored model consumed unless it already is: 1 = consumed now, 2 = was consumed but
// reused within the grace window (ARGV[3] ms, ARGV[4] reuses; 0 = none), 0 = was consumed, -1 = gone.
const CONSUME_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'consumed_ms', ARGV[2])
  return 1
end
if tonumber(ARGV[3]) > 0 then
  local at = tonumber(redis.call('HGET', KEYS[1], 'consumed_ms') or '0')
  if tonumber(ARGV[2]) - at <= tonumber(ARGV[3]) and redis.call('HINCRBY', KEYS[1], 'reuses', 1) <= tonumber(ARGV[4]) then return 2 end
end
return 0`;

type RedisWithConsume = Redis & {
  oidcConsume(key: string, nowSeconds: number, nowMs: number, graceMs: number, graceCount: number): Promise<number>;
};

function withConsumeCommand(redis: Redis): RedisWithConsume {
  if (!('oidcConsume' in redis)) redis.defineCommand('oidcConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT });
  return redis as RedisWithConsume;
}

/**
 * Key names under a namespace. On a Redis Cluster the namespace is the hash tag {oidc}, so
 * every adapter key lives in one slot: the MULTI in upsert/destroy spans a model, its grant
 * index and its uid/userCode pointers, and revokeByGrantId deletes a grant's tokens at once;
 * a key derived from the grant id cannot work because find(id) knows only the id. The cost
 * is that this state is not sharded (one primary and its replicas hold it); rate limits and
 * replay caches are single-key and spread over the Cluster. Standalone and Sentinel keep the
 * untagged names, so existing sessions and tokens survive an upgrade.
 */
const namespaceOf = (client: Redis): string => (client.isCluster ? '{oidc}' : 'oidc');

const keyspace = (ns: string) => ({
  modelKey: (model: string, id: string): string => `${ns}:${model}:${id}`,
  grantKey: (grantId: string): string => `${ns}:grant:${grantId}`,
  uidKey: (uid: string): string => `${ns}:uid:${uid}`,
  userCodeKey: (userCode: string): string => `${ns}:userCode:${userCode}`,
});

/** CONSUME_SCRIPT's answers; -1 (gone) is a refusal too: a concurrent replay already revoked the grant. */
const MARKS: ReadonlyMap<number, ConsumeMark> = new Map([
  [1, 'first'],
  [2, 'grace'],
]);

/**
 * oidc-provider state in Redis. Each model is a hash {payload, consumed} with the model's TTL;
 * a per-grant set lists the token keys so revokeByGrantId can remove them all; uid and
 * userCode pointer keys serve findByUid and findByUserCode. Keys carry REDIS_KEY_PREFIX (and,
 * on a Cluster, the {oidc} hash tag: see keyspace). consume() is the reuse rule's
 * (src/auth/refresh-reuse.ts); this gives it the atomic mark (markConsumed, one Lua script).
 */
export function createRedisStateStore(client: Redis, model: string): OidcStateStore {
  const redis = withConsumeCommand(client);
  const { modelKey, grantKey, uidKey, userCodeKey } = keyspace(namespaceOf(client));

  async function load(key: string | null): Promise<AdapterPayload | undefined> {
    if (!key) return undefined;
    const [payload, consumed] = await redis.hmget(key, 'payload', 'consumed');
    if (!payload) return undefined;
    const parsed = JSON.parse(payload) as AdapterPayload;
    return consumed ? { ...parsed, consumed: Number(consumed) } : parsed;
  }

  return {
    async upsert(id, payload, expiresIn) {
      const key = modelKey(model, id);
      const tx = redis.multi();
      // A re-save replaces the payload but keeps an existing consumed mark (HSET leaves it).
      tx.hset(key, 'payload', JSON.stringify(payload));
      if (expiresIn) tx.expire(key, expiresIn);
      if (grantableModels.has(model) && payload.grantId) {
        const grant = grantKey(payload.grantId);
        tx.sadd(grant, key);
        // The index lives as long as its longest-lived token: set when new, then only extended.
        if (expiresIn) tx.expire(grant, expiresIn, 'NX').expire(grant, expiresIn, 'GT');
        else tx.persist(grant);
      }
      for (const pointer of [payload.uid && uidKey(payload.uid), payload.userCode && userCodeKey(payload.userCode)]) {
        if (!pointer) continue;
        if (expiresIn) tx.set(pointer, id, 'EX', expiresIn);
        else tx.set(pointer, id);
      }
      await tx.exec();
    },

    async find(id) {
      return load(modelKey(model, id));
    },

    async findByUid(uid) {
      const id = await redis.get(uidKey(uid));
      return id ? load(modelKey(model, id)) : undefined;
    },

    async findByUserCode(userCode) {
      const id = await redis.get(userCodeKey(userCode));
      return id ? load(modelKey(model, id)) : undefined;
    },

    async markConsumed(id, grace) {
      const now = Date.now();
      const result = await redis.oidcConsume(modelKey(model, id), Math.floor(now / 1000), now, grace.seconds * 1000, grace.count);
      return MARKS.get(result) ?? 'refused';
    },

    async consumedAtMs(id) {
      const consumedMs = await redis.hget(modelKey(model, id), 'consumed_ms');
      return consumedMs ? Number(consumedMs) : undefined;
    },

    async grantIdOf(id) {
      return (await load(modelKey(model, id)))?.grantId;
    },

    async destroy(id) {
      const key = modelKey(model, id);
      const payload = await load(key);
      const tx = redis.multi().del(key);
      if (payload?.uid) tx.del(uidKey(payload.uid));
      if (payload?.userCode) tx.del(userCodeKey(payload.userCode));
      await tx.exec();
    },

    async revokeByGrantId(grantId) {
      const grant = grantKey(grantId);
      const members = await redis.smembers(grant);
      await redis
        .multi()
        .del(...members, grant)
        .exec();
    },
  };
}

/** Redis glob metacharacters in a literal part of a SCAN pattern. */
const globLiteral = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Ends every session, interaction, grant, code and token this deployment holds in Redis (what
 * `backup restore` does, so a restore ends the flows begun after the backup). Only keys under
 * REDIS_KEY_PREFIX in the adapter's namespace are touched, never FLUSHDB: the Redis may be shared.
 * SCAN runs on every primary (on a Cluster the {oidc} hash tag puts all of them in one slot, but
 * which node holds it is the Cluster's business); each batch is deleted through the client, which
 * adds the prefix back and routes by slot. Returns the number of keys deleted.
 */
export async function endOidcState(client: Redis): Promise<number> {
  const prefix = client.options.keyPrefix ?? '';
  const pattern = `${globLiteral(prefix)}${globLiteral(namespaceOf(client))}:*`;
  // A Cluster client knows its primaries once connected: an empty list would end nothing, silently.
  if (client instanceof Cluster && client.status !== 'ready') await once(client, 'ready', { signal: AbortSignal.timeout(30_000) });
  const nodes: IORedis[] = client instanceof Cluster ? client.nodes('master') : [client];
  if (nodes.length === 0) throw new Error('no Redis Cluster primary is known: cannot end the sessions and tokens held there');
  let deleted = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      // SCAN answers full key names; commands through the client get the prefix added again.
      const names = keys.map((key) => key.slice(prefix.length)).filter((name) => !modelsKeptByRestore.has(name.split(':')[1] ?? ''));
      if (names.length > 0) deleted += await client.unlink(...names);
    } while (cursor !== '0');
  }
  return deleted;
}
