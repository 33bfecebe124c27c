import type { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from './oidc-adapter.ts';
import { alreadyConsumed, grantSourceModels, grantableModels } from './oidc-adapter.ts';

// Marks a stored model consumed unless it already is: 1 = consumed now, 0 = was consumed, -1 = gone.
const CONSUME_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1]) == 1 then return 1 end
return 0`;

type RedisWithConsume = Redis & { oidcConsume(key: string, now: number): Promise<number> };

function withConsumeCommand(redis: Redis): RedisWithConsume {
  if (!('oidcConsume' in redis)) redis.defineCommand('oidcConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT });
  return redis as RedisWithConsume;
}

const modelKey = (model: string, id: string): string => `oidc:${model}:${id}`;
const grantKey = (grantId: string): string => `oidc:grant:${grantId}`;
const uidKey = (uid: string): string => `oidc:uid:${uid}`;
const userCodeKey = (userCode: string): string => `oidc:userCode:${userCode}`;

/**
 * oidc-provider state in Redis. Each model is a hash {payload, consumed} with the model's TTL;
 * a per-grant set lists the token keys so revokeByGrantId can remove them all; uid and
 * userCode pointer keys serve findByUid and findByUserCode. Keys carry REDIS_KEY_PREFIX.
 */
export function createRedisAdapter(client: Redis, model: string): Adapter {
  const redis = withConsumeCommand(client);

  async function load(key: string | null): Promise<AdapterPayload | undefined> {
    if (!key) return undefined;
    const [payload, consumed] = await redis.hmget(key, 'payload', 'consumed');
    if (!payload) return undefined;
    const parsed = JSON.parse(payload) as AdapterPayload;
    return consumed ? { ...parsed, consumed: Number(consumed) } : parsed;
  }

  const adapter: Adapter = {
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

    async consume(id) {
      const result = await redis.oidcConsume(modelKey(model, id), Math.floor(Date.now() / 1000));
      // -1: the key is gone, i.e. a concurrent replay already revoked the grant; refuse too.
      if (result !== 1 && grantSourceModels.has(model)) {
        const payload = await load(modelKey(model, id));
        if (payload?.grantId) await adapter.revokeByGrantId(payload.grantId);
        throw alreadyConsumed(model);
      }
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
      await redis.multi().del(...members, grant).exec();
    },
  };
  return adapter;
}
