import { Cluster, type Redis as IORedis } from 'ioredis';
import type { Redis } from './redis.ts';

/** `node` (host:port) names the Cluster primary the result is about. */
export type EvictionCheck = { policy: string | undefined; ok: boolean; verified: boolean; node?: string };

async function checkNode(redis: IORedis, node?: string): Promise<EvictionCheck> {
  const at = node ? { node } : {};
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown;
    const policy = Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
    return { policy, ok: policy === 'noeviction', verified: policy !== undefined, ...at };
  } catch {
    return { policy: undefined, ok: false, verified: false, ...at };
  }
}

/**
 * docs/security.md: Redis must never evict our keys. An evicted session is a logout, but an
 * evicted "code consumed" marker, replay-cache or revocation entry is a security bug. Reads
 * `maxmemory-policy`; managed services that disable CONFIG report verified = false. On a
 * Cluster every primary holds some of our keys, so each is read: the worst answer is returned,
 * naming its node (eviction on first, then unverifiable).
 */
export async function checkEvictionPolicy(redis: Redis): Promise<EvictionCheck> {
  if (!(redis instanceof Cluster)) return checkNode(redis);
  const results = await Promise.all(
    redis.nodes('master').map((node) => checkNode(node, `${node.options.host ?? ''}:${node.options.port ?? ''}`)),
  );
  return (
    results.find((r) => r.verified && !r.ok) ??
    results.find((r) => !r.verified) ??
    results[0] ?? { policy: undefined, ok: false, verified: false }
  );
}
