import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { withReuseDetection } from '../../src/auth/refresh-reuse.ts';
import { createRedisStateStore } from '../../src/store/oidc-adapter-redis.ts';
import { createOidcStateKeys, sealedAdapter, unsealStoredPayload } from '../../src/store/oidc-adapter-sealed.ts';
import type { AdapterPayload } from '../../src/store/oidc-adapter.ts';
import { rssBytes } from './proc.ts';

export type ModelStats = { model: string; keys: number; payloadBytes: number; memoryUsage: number };
export type GrowthPoint = {
  stored: number;
  usedMemoryDelta: number;
  authRss: number;
  results: { scenario: string; cpuUs: number; rps: number; p99Ms: number; errors: number }[];
};
export type MemoryReport = {
  ours: ModelStats[];
  floor: ModelStats[];
  perSet: { ours: number; floor: number; grantIndex: number };
  grants: number;
  usedMemoryPer100k: number;
  memoryUsagePer100k: number;
  growth: GrowthPoint[];
};

/** Average payload length and MEMORY USAGE per oidc model under a key prefix (keys oidc:<Model>:<id>). */
async function modelStats(redis: Redis, prefix: string): Promise<ModelStats[]> {
  const byModel = new Map<string, string[]>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}oidc:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const model = key.slice(prefix.length).split(':')[1] ?? '?';
      const list = byModel.get(model) ?? [];
      list.push(key);
      byModel.set(model, list);
    }
  } while (cursor !== '0');
  const stats: ModelStats[] = [];
  for (const [model, keys] of [...byModel].sort(([a], [b]) => a.localeCompare(b))) {
    const sample = keys.slice(0, 200);
    let payload = 0;
    let usage = 0;
    for (const key of sample) {
      const type = await redis.type(key);
      if (type === 'hash') payload += await redis.hstrlen(key, 'payload');
      usage += Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    }
    stats.push({ model, keys: keys.length, payloadBytes: payload / sample.length, memoryUsage: usage / sample.length });
  }
  return stats;
}

/**
 * Redis bytes for one session + grant + refresh token + the session's uid pointer. The grant's
 * token index (a set, same structure for both) is added from a cloned set: the averages seen in
 * the run are skewed by grants that collected many tokens.
 */
function perSet(stats: ModelStats[], grantIndex: number): number {
  const m = (name: string) => stats.find((s) => s.model === name)?.memoryUsage ?? 0;
  return m('Session') + m('Grant') + m('RefreshToken') + m('uid') + grantIndex;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

/**
 * Memory per stored grant and cost growth with stored state. Real Session, Grant and
 * RefreshToken payloads written by Portcullis during the run are cloned with fresh ids into
 * Portcullis's own key prefix through our Redis adapter, up to each growth level; at each level
 * Redis used_memory, the auth server's RSS, and `remeasure()` (scenarios 1 and 3) are recorded.
 */
export async function measureMemory(options: {
  redisUrl: string;
  oursPrefix: string;
  floorPrefix: string;
  grants: number;
  growthLevels: number[];
  authPid: number;
  /** The Portcullis server's `oidc-state` server secret: its oidc state is sealed under keys derived from it. */
  oidcStateRoot: Buffer;
  log: (message: string) => void;
  remeasure: () => Promise<GrowthPoint['results']>;
}): Promise<MemoryReport> {
  const plain = new Redis(options.redisUrl);
  const prefixed = new Redis(options.redisUrl, { keyPrefix: options.oursPrefix });
  try {
    const ours = await modelStats(plain, options.oursPrefix);
    const floor = await modelStats(plain, options.floorPrefix);

    // Templates: one refresh token with its grant and session.
    // Stored by keyed hash with sealed payloads (S10): opened with keys from the server's oidc-state secret.
    const keys = createOidcStateKeys(options.oidcStateRoot);
    const opened = async (model: string, storageKey: string | null | undefined): Promise<AdapterPayload | undefined> => {
      if (!storageKey) return undefined;
      const stored = JSON.parse((await plain.hget(`${options.oursPrefix}oidc:${model}:${storageKey}`, 'payload')) ?? '{}') as unknown;
      return unsealStoredPayload(keys, model, stored);
    };
    const tokenKeys = (await plain.keys(`${options.oursPrefix}oidc:RefreshToken:*`)).slice(0, 1);
    const tokenKey = tokenKeys[0];
    if (!tokenKey) throw new Error('no refresh token in Redis to clone (run scenario 2 first)');
    const token = ((await opened('RefreshToken', tokenKey.split(':').at(-1))) ?? {}) as AdapterPayload & {
      grantId: string;
      sessionUid?: string;
    };
    const grant = (await opened('Grant', token.grantId ? keys.storageKey(token.grantId) : undefined)) ?? {};
    const sessionId = token.sessionUid ? await plain.get(`${options.oursPrefix}oidc:uid:${keys.storageKey(token.sessionUid)}`) : null;
    const session = await opened('Session', sessionId);
    const templates = [
      { model: 'Session', payload: session, ttl: 1209600 },
      { model: 'Grant', payload: grant, ttl: 1209600 },
      { model: 'RefreshToken', payload: token, ttl: 1209600 },
    ].filter((t) => t.payload?.jti);
    const oldIds = [token.jti, token.grantId, token.sessionUid, sessionId, session?.jti].filter(
      (x): x is string => typeof x === 'string' && x.length > 0,
    );
    const adapters = new Map(
      templates.map((t) => [
        t.model,
        sealedAdapter(withReuseDetection((model) => createRedisStateStore(prefixed, model))(t.model), t.model, keys),
      ]),
    );

    let lastGrantId = '';
    const writeSet = async (): Promise<void> => {
      const fresh = new Map(
        oldIds.map((id) => [
          id,
          randomBytes(Math.max(16, Math.floor((id.length * 3) / 4)))
            .toString('base64url')
            .slice(0, id.length),
        ]),
      );
      for (const t of templates) {
        let json = JSON.stringify(t.payload);
        for (const [from, to] of fresh) json = json.replaceAll(from, to);
        const payload = JSON.parse(json) as AdapterPayload;
        await adapters.get(t.model)!.upsert(String(payload.jti), payload, t.ttl);
        if (t.model === 'RefreshToken') lastGrantId = String(payload.grantId);
      }
    };

    const growth: GrowthPoint[] = [];
    const base = await usedMemory(plain);
    let written = 0;
    const levels = [...new Set([...options.growthLevels, options.grants])].sort((a, b) => a - b);
    let usedMemoryPer100k = Number.NaN;
    for (const level of levels) {
      options.log(`memory: storing ${level} grant sets`);
      while (written < level) {
        const batch = Math.min(500, level - written);
        await Promise.all(Array.from({ length: batch }, writeSet));
        written += batch;
      }
      const delta = (await usedMemory(plain)) - base;
      if (level === options.grants) usedMemoryPer100k = (delta / level) * 100_000;
      const point: GrowthPoint = { stored: level, usedMemoryDelta: delta, authRss: rssBytes(options.authPid), results: [] };
      point.results = await options.remeasure();
      growth.push(point);
    }
    const grantIndex = lastGrantId
      ? Number(await plain.call('MEMORY', 'USAGE', `${options.oursPrefix}oidc:grant:${keys.storageKey(lastGrantId)}`, 'SAMPLES', '0'))
      : 0;
    return {
      ours,
      floor,
      perSet: { ours: perSet(ours, grantIndex), floor: perSet(floor, grantIndex), grantIndex },
      grants: options.grants,
      usedMemoryPer100k,
      memoryUsagePer100k: perSet(ours, grantIndex) * 100_000,
      growth,
    };
  } finally {
    plain.disconnect();
    prefixed.disconnect();
  }
}
