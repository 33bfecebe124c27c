import type { Knex } from 'knex';
import { createPostgresLockoutCounters } from './lockout-counters-postgres.ts';
import { createRedisLockoutCounters } from './lockout-counters-redis.ts';
import type { Redis } from './redis.ts';

/**
 * The numbers of one failure budget as the counters need them (the lockout policy,
 * src/services/lockout.ts, names and configures the budgets).
 *
 * The lock rule, which each backend applies inside its one atomic step (Redis: the LOCK_RULE Lua
 * of lockout-counters-redis.ts; Postgres: lockRule() of lockout-counters-postgres.ts): a failure
 * that brings the count to `maxFailures` or more, while no lock runs, starts a lock of
 * `baseSeconds * 2^level` (capped at max(maxSeconds, baseSeconds)) and raises the level; a
 * failure during a lock neither restarts nor lengthens it. The key is forgotten `windowSeconds`
 * after the last failure or the end of the last lock. test/security/lockout-backends.test.ts
 * proves both backends answer the same.
 */
export type LockRule = { maxFailures: number; baseSeconds: number; maxSeconds: number; windowSeconds: number };

/** Counter state as stored: failures, lock level (locks so far), end of the current lock, and the store's clock. */
export type CounterState = { failures: number; level: number; lockedUntilMs: number; nowMs: number };

/** A failure counted: the state after it, and whether it started a lock. */
export type CountedFailure = CounterState & { started: boolean };

/** The lockout counters of one storage backend, each operation one atomic step shared by every instance. */
export type LockoutCounters = {
  /** Counts one failure (also while a lock runs, which it does not restart). */
  fail(key: string, rule: LockRule): Promise<CountedFailure>;
  /** Counts one attempt unless the key is locked, in one atomic step; undefined when it is locked. */
  reserve(key: string, rule: LockRule): Promise<CountedFailure | undefined>;
  /** Gives one reserved attempt back, and ends the lock it started (`startedUntilMs`) if that still runs. */
  release(key: string, startedUntilMs: number): Promise<void>;
  get(key: string): Promise<CounterState>;
  clear(key: string): Promise<void>;
};

/** Redis when configured (keys expire by themselves), else the lockouts table (swept by sweepExpiredLockouts). */
export function createLockoutCounters({ redis, knex }: { redis?: Redis | undefined; knex: Knex }): LockoutCounters {
  return redis ? createRedisLockoutCounters(redis) : createPostgresLockoutCounters(knex);
}

export { sweepExpiredLockouts } from './lockout-counters-postgres.ts';
