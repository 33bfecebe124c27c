import type { Adapter, AdapterPayload } from '../../src/store/oidc-adapter.ts';

/** The payload times oidc-provider and our routes read, in epoch seconds. */
const TIMES = ['iat', 'exp', 'loginTs', 'authTime'] as const;

/**
 * As if `seconds` had gone by since `id` was last saved, without waiting for them: the times in
 * its payload (iat, exp, loginTs, authTime) move that far back, through the same adapter the
 * servers use (sealed, keyed as they key it). The store's own expiry follows:
 * - `drop` (the default): kept for what is left of its lifetime, or deleted when none is left,
 *   as Redis (or the Postgres sweep) would have done by then;
 * - `keep`: kept a minute past its expiry, as a store that has not swept it yet, so that the
 *   provider's own expiry check is what must refuse it.
 * Returns the seconds of lifetime left (zero or less when expired).
 */
export async function ageStored(adapter: Adapter, id: string, seconds: number, options: { expired?: 'drop' | 'keep' } = {}) {
  const stored = await adapter.find(id);
  if (!stored) throw new Error(`nothing stored under ${id} to age`);
  const older: AdapterPayload = { ...stored };
  for (const key of TIMES) {
    const value = stored[key];
    if (typeof value === 'number') older[key] = value - seconds;
  }
  if (typeof older.exp !== 'number') throw new Error(`${id} has no expiry to age`);
  const left = older.exp - Math.floor(Date.now() / 1000);
  if (left > 0) await adapter.upsert(id, older, left);
  else if (options.expired === 'keep') await adapter.upsert(id, older, 60);
  else await adapter.destroy(id);
  return left;
}
