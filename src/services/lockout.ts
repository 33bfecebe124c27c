import type { Knex } from 'knex';
import type { Config } from '../config/types.ts';
import { ipBudgetKey } from '../shared/ip-budget.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../store/redis.ts';

/**
 * One failure budget of the lockout sentinel (passwords, second factors, device user codes each
 * have their own key space). After `maxFailures` consecutive failures the key is locked for
 * `baseSeconds`; each failure after a lock has ended locks it again for twice as long, up to
 * `maxSeconds` (exponential back-off). The state is forgotten `windowSeconds` after the last
 * failure or lock, or at once by clear() on a success.
 */
export type LockoutBudget = { name: string; maxFailures: number; baseSeconds: number; maxSeconds: number; windowSeconds: number };

/**
 * `started`: this failure started a lock (only from fail()). `unavailable`: the store did not
 * answer, so the key counts as locked (fail closed).
 */
export type LockoutState = { locked: boolean; retryAfterSeconds: number; failures: number; started?: true; unavailable?: true };

/**
 * One attempt reserved before its secret is checked (R14). `granted: false`: the key is locked (or
 * the store did not answer), so nothing may be checked. Granted, the attempt already counts as a
 * failure (and may have started the lock: `started`); a success clears the key, or releases the
 * attempt where a success must not forget the other failures (a per-address budget).
 */
export type Reservation = LockoutState & { granted: boolean; lockedUntilMs?: number };

/** Counter state as stored: failures, lock level (locks so far), end of the current lock. */
type Stored = { failures: number; level: number; lockedUntilMs: number };

type Store = {
  fail(key: string, budget: LockoutBudget): Promise<Stored & { nowMs: number; started: boolean }>;
  /** Counts one attempt unless the key is locked, in one atomic step; undefined when it is locked. */
  reserve(key: string, budget: LockoutBudget): Promise<(Stored & { nowMs: number; started: boolean }) | undefined>;
  /** Gives one reserved attempt back, and ends the lock it started (`startedUntilMs`) if that still runs. */
  release(key: string, startedUntilMs: number): Promise<void>;
  get(key: string): Promise<Stored & { nowMs: number }>;
  clear(key: string): Promise<void>;
};

/** The lock to start on a failure, in ms, or 0 when none: a lock never restarts while it runs. */
function nextLockMs(state: Stored, nowMs: number, budget: LockoutBudget): number {
  if (state.failures < budget.maxFailures || nowMs < state.lockedUntilMs) return 0;
  const cap = Math.max(budget.maxSeconds, budget.baseSeconds);
  return Math.min(budget.baseSeconds * 2 ** state.level, cap) * 1000;
}

// The lock rule, shared by both scripts: the budget's last failure starts a lock that doubles per
// level up to the maximum, and the key lives for the lock plus the counting window.
const LOCK_RULE = `
local started = 0
if failures >= tonumber(ARGV[1]) and now >= untilMs then
  local lock = math.min(tonumber(ARGV[2]) * 2 ^ level, math.max(tonumber(ARGV[3]), tonumber(ARGV[2]))) * 1000
  level = level + 1
  untilMs = now + lock
  started = 1
  redis.call('HSET', KEYS[1], 'l', level, 'u', string.format('%d', untilMs))
end
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(untilMs - now, 0) + tonumber(ARGV[4]) * 1000))
`;

// Atomic in Redis: one script increments, decides the lock and sets the expiry, so parallel
// failures on any number of instances are each counted once (T34). Time is Redis's clock.
const FAIL_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local level = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
local untilMs = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
${LOCK_RULE}return {failures, level, string.format('%d', untilMs), string.format('%d', now), started}
`;

// The reservation (R14): whether the key is locked and counting the attempt are one step, so
// concurrent attempts on any number of instances cannot all pass the check before the first one
// is counted. A granted attempt counts as a failure at once and starts the lock when it is the
// budget's last; a refused one (a lock runs) counts nothing.
const RESERVE_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local level = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
local untilMs = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if now < untilMs then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'f') or '0'), level, string.format('%d', untilMs), string.format('%d', now), 0}
end
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
${LOCK_RULE}return {1, failures, level, string.format('%d', untilMs), string.format('%d', now), started}
`;

// Gives a reserved attempt back; the lock it started ends too, unless a later one replaced it.
const RELEASE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'f') or '0') > 0 then redis.call('HINCRBY', KEYS[1], 'f', -1) end
if ARGV[1] ~= '0' and redis.call('HGET', KEYS[1], 'u') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'l', math.max(tonumber(redis.call('HGET', KEYS[1], 'l') or '1') - 1, 0), 'u', '0')
end
return 1
`;

const GET_SCRIPT = `
local t = redis.call('TIME')
local v = redis.call('HMGET', KEYS[1], 'f', 'l', 'u')
return {v[1] or '0', v[2] or '0', v[3] or '0', string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))}
`;

function redisStore(redis: Redis): Store {
  const parse = (reply: unknown): Stored & { nowMs: number } => {
    const [failures, level, lockedUntilMs, nowMs] = (reply as (string | number)[]).map(Number) as [number, number, number, number];
    return { failures, level, lockedUntilMs, nowMs };
  };
  return {
    fail: async (key, b) => {
      const reply = (await redis.eval(FAIL_SCRIPT, 1, key, b.maxFailures, b.baseSeconds, b.maxSeconds, b.windowSeconds)) as (
        string | number
      )[];
      return { ...parse(reply), started: Number(reply[4]) === 1 };
    },
    reserve: async (key, b) => {
      const reply = (await redis.eval(RESERVE_SCRIPT, 1, key, b.maxFailures, b.baseSeconds, b.maxSeconds, b.windowSeconds)) as (
        string | number
      )[];
      if (Number(reply[0]) !== 1) return undefined;
      return { ...parse(reply.slice(1)), started: Number(reply[5]) === 1 };
    },
    release: async (key, startedUntilMs) => {
      await redis.eval(RELEASE_SCRIPT, 1, key, String(startedUntilMs));
    },
    get: async (key) => parse(await redis.eval(GET_SCRIPT, 1, key)),
    clear: async (key) => {
      await redis.del(key);
    },
  };
}

type Row = { failures: number; level: number; locked_until_ms: string; now_ms: string };

/** Without Redis: the lockouts table; a row lock serialises concurrent failures on one key. */
function postgresStore(knex: Knex): Store {
  const now = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms';
  const columns = `failures, level, coalesce((extract(epoch FROM locked_until) * 1000)::bigint, 0) AS locked_until_ms, ${now}`;
  const parse = (row: Row): Stored & { nowMs: number } => ({
    failures: row.failures,
    level: row.level,
    lockedUntilMs: Number(row.locked_until_ms),
    nowMs: Number(row.now_ms),
  });
  return {
    fail: (key, budget) =>
      knex.transaction(async (trx) => {
        // Creating the row, or starting an expired one over, also locks it: concurrent failures
        // on one key wait here, so each is counted once (T34).
        await trx.raw(
          `INSERT INTO lockouts (key, failures, level, locked_until, expires_at) VALUES (?, 0, 0, NULL, clock_timestamp() + interval '1 minute')
           ON CONFLICT (key) DO UPDATE SET failures = 0, level = 0, locked_until = NULL, expires_at = excluded.expires_at
           WHERE lockouts.expires_at <= clock_timestamp()`,
          [key],
        );
        // The upsert locked the row (even when it did not change it) until this transaction ends.
        const result = await trx.raw<{ rows: Row[] }>(`SELECT ${columns} FROM lockouts WHERE key = ?`, [key]);
        const state = parse(result.rows[0] as Row);
        const failures = state.failures + 1;
        const lockMs = nextLockMs({ ...state, failures }, state.nowMs, budget);
        const level = lockMs > 0 ? state.level + 1 : state.level;
        const lockedUntilMs = lockMs > 0 ? state.nowMs + lockMs : state.lockedUntilMs;
        const expiresMs = Math.max(lockedUntilMs, state.nowMs) + budget.windowSeconds * 1000;
        await trx('lockouts')
          .where({ key })
          .update({ failures, level, locked_until: lockedUntilMs > 0 ? new Date(lockedUntilMs) : null, expires_at: new Date(expiresMs) });
        return { failures, level, lockedUntilMs, nowMs: state.nowMs, started: lockMs > 0 };
      }),
    // One statement (R14): the upsert takes the row lock, so concurrent reservations of one key
    // are decided one after another, each on the state the one before left. Its WHERE refuses a
    // key whose lock still runs (no row comes back); an expired row starts over.
    reserve: async (key, b) => {
      // Typed parameters (an untyped one is text to make_interval).
      const [max, base, cap, window] = [
        'CAST(:max AS integer)',
        'CAST(:base AS float8)',
        'CAST(:cap AS float8)',
        'CAST(:window AS float8)',
      ];
      const expired = 'l.expires_at <= (SELECT now FROM t)';
      const failures = `(CASE WHEN ${expired} THEN 0 ELSE l.failures END) + 1`;
      const level = `(CASE WHEN ${expired} THEN 0 ELSE l.level END)`;
      const starts = `${failures} >= ${max}`;
      const lockedUntil = `CASE WHEN ${starts} THEN (SELECT now FROM t) + make_interval(secs => least(${base} * power(2, ${level}), ${cap})) WHEN ${expired} THEN NULL ELSE l.locked_until END`;
      const result = await knex.raw<{ rows: (Row & { started: boolean })[] }>(
        `WITH t AS (SELECT clock_timestamp() AS now)
         INSERT INTO lockouts AS l (key, failures, level, locked_until, expires_at)
         SELECT :key, 1, CASE WHEN 1 >= ${max} THEN 1 ELSE 0 END,
                CASE WHEN 1 >= ${max} THEN t.now + make_interval(secs => least(${base}, ${cap})) END,
                CASE WHEN 1 >= ${max} THEN t.now + make_interval(secs => least(${base}, ${cap})) ELSE t.now END + make_interval(secs => ${window})
         FROM t
         ON CONFLICT (key) DO UPDATE SET
           failures = ${failures},
           level = CASE WHEN ${starts} THEN ${level} + 1 ELSE ${level} END,
           locked_until = ${lockedUntil},
           expires_at = greatest(${lockedUntil}, (SELECT now FROM t)) + make_interval(secs => ${window})
         WHERE ${expired} OR l.locked_until IS NULL OR l.locked_until <= (SELECT now FROM t)
         RETURNING l.failures, l.level, coalesce((extract(epoch FROM l.locked_until) * 1000)::bigint, 0) AS locked_until_ms,
           (extract(epoch FROM (SELECT now FROM t)) * 1000)::bigint AS now_ms, coalesce(l.locked_until > (SELECT now FROM t), false) AS started`,
        { key, max: b.maxFailures, base: b.baseSeconds, cap: Math.max(b.maxSeconds, b.baseSeconds), window: b.windowSeconds },
      );
      const row = result.rows[0];
      return row ? { ...parse(row), started: row.started } : undefined;
    },
    release: async (key, startedUntilMs) => {
      const ended =
        'CAST(:until AS bigint) > 0 AND coalesce((extract(epoch FROM locked_until) * 1000)::bigint, 0) = CAST(:until AS bigint)';
      await knex.raw(
        `UPDATE lockouts SET failures = greatest(failures - 1, 0),
           level = CASE WHEN ${ended} THEN greatest(level - 1, 0) ELSE level END,
           locked_until = CASE WHEN ${ended} THEN NULL ELSE locked_until END
         WHERE key = :key AND expires_at > clock_timestamp()`,
        { key, until: startedUntilMs },
      );
    },
    get: async (key) => {
      const result = await knex.raw<{ rows: Row[] }>(`SELECT ${columns} FROM lockouts WHERE key = ? AND expires_at > clock_timestamp()`, [
        key,
      ]);
      const row = result.rows[0];
      return row ? parse(row) : { failures: 0, level: 0, lockedUntilMs: 0, nowMs: Date.now() };
    },
    clear: async (key) => {
      await knex('lockouts').where({ key }).delete();
    },
  };
}

/** Deletes expired rows of the Postgres store (Redis expires its keys itself). */
export async function sweepExpiredLockouts(knex: Knex): Promise<number> {
  return knex('lockouts').where('expires_at', '<=', knex.fn.now()).delete();
}

/**
 * Counter keys name an email or an address: only its keyed digest reaches the store (S12). An
 * unkeyed hash named them to anyone with a copy of Redis or the lockouts table and a list of
 * candidate emails (or the 2^32 IPv4 addresses).
 */
const keyOf = (budget: LockoutBudget, digest: string): string => `lockout:${budget.name}:${digest}`;

/**
 * The lockout sentinel for one budget, shared by every instance through Redis (or Postgres
 * without Redis). Whenever the store fails the answer is "locked" (fail closed, docs/security.md).
 */
export function createLockout({
  redis,
  knex,
  logger,
  budget,
  counterKey,
  groupKey = (id) => id,
}: {
  redis?: Redis | undefined;
  knex: Knex;
  logger: Logger;
  budget: LockoutBudget;
  /** The keyed digest that names a counter (src/shared/derive-key.ts keyedDigest under KEY_PURPOSE.counterKey). */
  counterKey: (id: string) => string;
  /** Maps an id to the key that spends the budget (per-IP budgets: ipBudgetKey, an IPv6 /64 is one client). */
  groupKey?: (id: string) => string;
}) {
  const store = redis ? redisStore(redis) : postgresStore(knex);
  const keyFor = (id: string): string => keyOf(budget, counterKey(groupKey(id)));
  const stateOf = ({ failures, lockedUntilMs, nowMs }: Stored & { nowMs: number }): LockoutState => {
    const remainingMs = Math.max(0, lockedUntilMs - nowMs);
    return { locked: remainingMs > 0, retryAfterSeconds: Math.ceil(remainingMs / 1000), failures };
  };
  const unavailable = (error: unknown): LockoutState => {
    logger.error({ err: error, budget: budget.name }, 'lockout store unavailable; treating the key as locked (fail closed)');
    return { locked: true, retryAfterSeconds: Math.min(budget.baseSeconds, 60), failures: 0, unavailable: true };
  };
  return {
    budget,
    /** Whether `id` is locked now (what a page shows; a secret is checked only under reserve()). */
    async check(id: string): Promise<LockoutState> {
      try {
        return stateOf(await store.get(keyFor(id)));
      } catch (error) {
        return unavailable(error);
      }
    },
    /**
     * Counts one failure for `id` without an attempt (operators' tools and tests); the state after
     * it (locked when this failure started a lock). Sign-ins count through reserve() (R14).
     */
    async fail(id: string): Promise<LockoutState> {
      try {
        const after = await store.fail(keyFor(id), budget);
        return { ...stateOf(after), ...(after.started ? { started: true as const } : {}) };
      } catch (error) {
        return unavailable(error);
      }
    },
    /**
     * Reserves one attempt for `id` before its secret is checked (R14): refused while `id` is
     * locked, and whenever the store fails (fail closed). A granted attempt already counts as a
     * failure; `started` when it is the one that locked the key (a wrong answer then says so).
     * A right answer clears the key, or gives the attempt back with release().
     */
    async reserve(id: string): Promise<Reservation> {
      const key = keyFor(id);
      try {
        const granted = await store.reserve(key, budget);
        if (granted)
          return {
            ...stateOf(granted),
            granted: true,
            lockedUntilMs: granted.started ? granted.lockedUntilMs : 0,
            ...(granted.started ? { started: true as const } : {}),
          };
        return { ...stateOf(await store.get(key)), locked: true, granted: false };
      } catch (error) {
        return { ...unavailable(error), granted: false };
      }
    },
    /**
     * Gives a granted attempt back (it turned out right, or it was not checked after all), ending
     * the lock it started. A store error here leaves the attempt counted (fail closed).
     */
    async release(id: string, reservation: Reservation): Promise<void> {
      if (!reservation.granted) return;
      await store.release(keyFor(id), reservation.lockedUntilMs ?? 0).catch((error: unknown) => {
        logger.warn({ err: error, budget: budget.name }, 'releasing a lockout reservation failed');
      });
    },
    /** A success forgets the failures. A store error here only leaves the count in place. */
    async clear(id: string): Promise<void> {
      await store.clear(keyFor(id)).catch((error: unknown) => {
        logger.warn({ err: error, budget: budget.name }, 'clearing lockout failures failed');
      });
    },
  };
}

export type Lockout = ReturnType<typeof createLockout>;

/** The sentinel's budgets from the configuration; the per-IP password budget only when set. */
export function createLockouts({
  config,
  redis,
  knex,
  logger,
  counterKey,
}: {
  config: Config;
  redis?: Redis | undefined;
  knex: Knex;
  logger: Logger;
  counterKey: (id: string) => string;
}) {
  const { lockout, clients } = config;
  const make = (budget: LockoutBudget): Lockout => createLockout({ redis, knex, logger, budget, counterKey });
  // Budgets keyed by client address: an IPv6 /64 is one client, an IPv4-mapped address is IPv4 (R3).
  const perAddress = (budget: LockoutBudget): Lockout => createLockout({ redis, knex, logger, budget, counterKey, groupKey: ipBudgetKey });
  const cap = lockout.maxSeconds;
  return {
    password: make({
      name: 'password',
      maxFailures: lockout.passwordMaxFailures,
      baseSeconds: lockout.baseSeconds,
      maxSeconds: cap,
      windowSeconds: lockout.windowSeconds,
    }),
    passwordIp:
      lockout.passwordIpMaxFailures > 0
        ? perAddress({
            name: 'password-ip',
            maxFailures: lockout.passwordIpMaxFailures,
            baseSeconds: lockout.baseSeconds,
            maxSeconds: cap,
            windowSeconds: lockout.windowSeconds,
          })
        : undefined,
    secondFactor: make({
      name: 'second-factor',
      maxFailures: lockout.secondFactorMaxFailures,
      baseSeconds: lockout.secondFactorSeconds,
      maxSeconds: cap,
      windowSeconds: lockout.secondFactorSeconds,
    }),
    deviceUserCode: perAddress({
      name: 'device-user-code',
      maxFailures: clients.userCodeAttempts,
      baseSeconds: clients.userCodeLockoutSeconds,
      maxSeconds: cap,
      windowSeconds: clients.userCodeLockoutSeconds,
    }),
  };
}

export type Lockouts = ReturnType<typeof createLockouts>;
