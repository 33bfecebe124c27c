import type { Redis } from './redis.ts';

export type EvictionCheck = { policy: string | undefined; ok: boolean; verified: boolean };

/**
 * SECURITY.md §4.1: Redis must never evict our keys. An evicted session is a logout, but an
 * evicted "code consumed" marker, replay-cache or revocation entry is a security bug. Reads
 * `maxmemory-policy`; managed services that disable CONFIG report verified = false.
 */
export async function checkEvictionPolicy(redis: Redis): Promise<EvictionCheck> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown;
    const policy = Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
    return { policy, ok: policy === 'noeviction', verified: policy !== undefined };
  } catch {
    return { policy: undefined, ok: false, verified: false };
  }
}
