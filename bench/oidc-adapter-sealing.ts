/**
 * Micro-benchmark: what storing oidc state by keyed hash with sealed payloads (S10,
 * src/store/oidc-adapter-sealed.ts) adds per adapter call, in CPU-µs of this process.
 *
 *   node bench/oidc-adapter-sealing.ts                 # in-process only
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379 node bench/oidc-adapter-sealing.ts   # also against Redis
 *
 * 1. The wrapper alone, over an in-memory store: HMAC-SHA-256 of the id(s), AES-256-GCM seal or
 *    open, and the JSON around them. This is the whole added cost; nothing else changes.
 * 2. With BENCH_REDIS_URL, the Redis adapter plain and sealed on the same payloads, as this
 *    process's CPU per call (Redis's own CPU is not counted; it stores a somewhat longer value).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { withReuseDetection } from '../src/auth/refresh-reuse.ts';
import { createRedisStateStore } from '../src/store/oidc-adapter-redis.ts';
import { createOidcStateKeys, sealedAdapter } from '../src/store/oidc-adapter-sealed.ts';
import type { Adapter, AdapterPayload } from '../src/store/oidc-adapter.ts';

const id = () => randomBytes(32).toString('base64url');
const now = Math.floor(Date.now() / 1000);

/** Payloads shaped like oidc-provider's (fields and sizes as a code + PKCE sign-in leaves them). */
const payloads: Record<string, () => AdapterPayload> = {
  Session: () => ({
    iat: now,
    exp: now + 3600,
    uid: id(),
    acr: 'urn:portcullis:loa:1',
    amr: ['pwd'],
    accountId: '5f0c6c4e-7a53-4a43-9d5f-3b1c7f0f9a11',
    loginTs: now,
    authorizations: { 'client-0123456789abcdef': { sid: id(), grantId: id(), persistsLogout: false } },
    jti: id(),
    kind: 'Session',
  }),
  RefreshToken: () => ({
    iat: now,
    exp: now + 1_209_600,
    accountId: '5f0c6c4e-7a53-4a43-9d5f-3b1c7f0f9a11',
    acr: 'urn:portcullis:loa:1',
    amr: ['pwd'],
    authTime: now,
    claims: {},
    nonce: id(),
    scope: 'openid offline_access email profile records:read',
    sid: id(),
    sessionUid: id(),
    expiresWithSession: false,
    grantId: id(),
    gty: 'authorization_code',
    rotations: 0,
    iiat: now,
    jti: id(),
    kind: 'RefreshToken',
    clientId: 'client-0123456789abcdef',
  }),
  AccessToken: () => ({
    iat: now,
    exp: now + 600,
    accountId: '5f0c6c4e-7a53-4a43-9d5f-3b1c7f0f9a11',
    claims: {},
    grantId: id(),
    gty: 'refresh_token',
    scope: 'openid email',
    sessionUid: id(),
    expiresWithSession: false,
    extra: {},
    jti: id(),
    kind: 'AccessToken',
    clientId: 'client-0123456789abcdef',
  }),
};

/** An adapter that keeps the last value per key in a Map: only the wrapper's own work is measured. */
function memoryAdapter(): Adapter {
  const store = new Map<string, AdapterPayload>();
  return {
    upsert: (key, payload) => Promise.resolve(void store.set(key, payload)),
    find: (key) => Promise.resolve(store.get(key)),
    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),
    consume: () => Promise.resolve(),
    destroy: (key) => Promise.resolve(void store.delete(key)),
    revokeByGrantId: () => Promise.resolve(),
  };
}

/** CPU-µs (user + system) of this process per call of `call`, over `count` sequential calls. */
async function cpuPerCall(count: number, call: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(count, 2000); i++) await call(i); // warm-up (JIT, caches)
  const start = process.cpuUsage();
  for (let i = 0; i < count; i++) await call(i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

const keys = createOidcStateKeys(randomBytes(32));
const rows: string[] = [];
const report = (what: string, model: string, plain: number | undefined, sealed: number) =>
  rows.push(
    `| ${what} | ${model} | ${plain === undefined ? '—' : plain.toFixed(1)} | ${sealed.toFixed(1)} | ${plain === undefined ? sealed.toFixed(1) : (sealed - plain).toFixed(1)} |`,
  );

const N = Number(process.env.BENCH_CALLS ?? 50_000);
const hmacOnly = await cpuPerCall(N, () => Promise.resolve(keys.storageKey(id())));
const idCost = await cpuPerCall(N, () => Promise.resolve(id()));
report('storageKey (one HMAC-SHA-256, 43-char id)', '—', undefined, hmacOnly - idCost);

for (const [model, make] of Object.entries(payloads)) {
  const samples = Array.from({ length: 1000 }, make);
  const ids = samples.map((p) => p.jti ?? '');
  const bytes = JSON.stringify(samples[0]).length;
  const memory = memoryAdapter();
  const sealed = sealedAdapter(memory, model, keys);
  const plainUpsert = await cpuPerCall(N, (i) => memory.upsert(ids[i % 1000] ?? '', samples[i % 1000]!, 60));
  const sealedUpsert = await cpuPerCall(N, (i) => sealed.upsert(ids[i % 1000] ?? '', samples[i % 1000]!, 60));
  const sealedFind = await cpuPerCall(N, (i) => sealed.find(ids[i % 1000] ?? ''));
  const plainFind = await cpuPerCall(N, (i) => memory.find(ids[i % 1000] ?? ''));
  report(`in memory: upsert (${bytes} B payload)`, model, plainUpsert, sealedUpsert);
  report('in memory: find', model, plainFind, sealedFind);
}

const redisUrl = process.env.BENCH_REDIS_URL;
if (redisUrl) {
  const redis = new Redis(redisUrl, { keyPrefix: `bench:${process.pid}:sealing:` });
  try {
    const R = Math.min(N, 10_000);
    for (const [model, make] of Object.entries(payloads)) {
      const samples = Array.from({ length: 1000 }, make);
      const ids = samples.map((p) => p.jti ?? '');
      const plain = withReuseDetection((name) => createRedisStateStore(redis, name))(model);
      const sealed = sealedAdapter(plain, model, keys);
      const plainUpsert = await cpuPerCall(R, (i) => plain.upsert(ids[i % 1000] ?? '', samples[i % 1000]!, 60));
      const sealedUpsert = await cpuPerCall(R, (i) => sealed.upsert(ids[i % 1000] ?? '', samples[i % 1000]!, 60));
      const plainFind = await cpuPerCall(R, (i) => plain.find(ids[i % 1000] ?? ''));
      const sealedFind = await cpuPerCall(R, (i) => sealed.find(ids[i % 1000] ?? ''));
      report('Redis: upsert', model, plainUpsert, sealedUpsert);
      report('Redis: find', model, plainFind, sealedFind);
    }
  } finally {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `bench:${process.pid}:sealing:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length > 0) await redis.del(...found.map((key) => key.slice(`bench:${process.pid}:sealing:`.length)));
    } while (cursor !== '0');
    redis.disconnect();
  }
}

console.log(`Node ${process.version}, ${N} calls per figure, CPU-µs of this process per call\n`);
console.log('| what | model | plain | sealed | added |');
console.log('|---|---|---|---|---|');
for (const row of rows) console.log(row);
