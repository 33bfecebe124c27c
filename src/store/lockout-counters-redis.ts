import type { CounterState, LockoutCounters, LockRule } from './lockout-counters.ts';
import type { Redis } from './redis.ts';

// The lock rule (src/store/lockout-counters.ts), the only copy for Redis, shared by both scripts
// below: the budget's last failure starts a lock that doubles per level up to the maximum, and
// the key lives for the lock plus the counting window.
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

const parse = (reply: unknown): CounterState => {
  const [failures, level, lockedUntilMs, nowMs] = (reply as (string | number)[]).map(Number) as [number, number, number, number];
  return { failures, level, lockedUntilMs, nowMs };
};

/** Lockout counters as Redis hashes (f: failures, l: level, u: end of the lock in ms), one Lua script per operation. */
export function createRedisLockoutCounters(redis: Redis): LockoutCounters {
  const run = async (script: string, key: string, r: LockRule) =>
    (await redis.eval(script, 1, key, r.maxFailures, r.baseSeconds, r.maxSeconds, r.windowSeconds)) as (string | number)[];
  return {
    fail: async (key, rule) => {
      const reply = await run(FAIL_SCRIPT, key, rule);
      return { ...parse(reply), started: Number(reply[4]) === 1 };
    },
    reserve: async (key, rule) => {
      const reply = await run(RESERVE_SCRIPT, key, rule);
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
