import type { Knex } from 'knex';
import type { CounterState, LockoutCounters, LockRule } from './lockout-counters.ts';

type Row = { failures: number; level: number; locked_until_ms: string; now_ms: string };

/** The statement's clock: every statement below starts WITH t AS (SELECT clock_timestamp() AS now). */
const NOW = '(SELECT now FROM t)';
// The rule's numbers as typed parameters (an untyped one is text to make_interval).
const MAX = 'CAST(:max AS integer)';
const BASE = 'CAST(:base AS float8)';
const CAP = 'CAST(:cap AS float8)';
const WINDOW = 'CAST(:window AS float8)';

const ruleParams = (rule: LockRule) => ({
  max: rule.maxFailures,
  base: rule.baseSeconds,
  cap: Math.max(rule.maxSeconds, rule.baseSeconds),
  window: rule.windowSeconds,
});

/**
 * The lock rule (src/store/lockout-counters.ts), the only copy for Postgres: the row after one
 * more failure, as SQL expressions over its state before it (`failures` already counts this one).
 * A lock starts when the count reaches the budget while no lock runs, for base * 2^level seconds
 * up to the cap; the row expires the window after the last failure or the end of the lock.
 */
function lockRule(before: { failures: string; level: string; lockedUntil: string }) {
  const starts = `(${before.failures} >= ${MAX} AND (${before.lockedUntil} IS NULL OR ${before.lockedUntil} <= ${NOW}))`;
  const lockedUntil = `CASE WHEN ${starts} THEN ${NOW} + make_interval(secs => least(${BASE} * power(2, ${before.level}), ${CAP})) ELSE ${before.lockedUntil} END`;
  return {
    failures: before.failures,
    level: `CASE WHEN ${starts} THEN ${before.level} + 1 ELSE ${before.level} END`,
    lockedUntil,
    expiresAt: `greatest(${lockedUntil}, ${NOW}) + make_interval(secs => ${WINDOW})`,
  };
}

/** A row's state before one more failure: a row past its expiry starts over. */
const EXPIRED = `l.expires_at <= ${NOW}`;
const counted = (failures: string) => ({
  failures: `(CASE WHEN ${EXPIRED} THEN 0 ELSE ${failures} END) + 1`,
  level: `(CASE WHEN ${EXPIRED} THEN 0 ELSE l.level END)`,
  lockedUntil: `(CASE WHEN ${EXPIRED} THEN NULL ELSE l.locked_until END)`,
});

const RETURNING = `l.failures, l.level, coalesce((extract(epoch FROM l.locked_until) * 1000)::bigint, 0) AS locked_until_ms,
  (extract(epoch FROM ${NOW}) * 1000)::bigint AS now_ms`;

const parse = (row: Row): CounterState => ({
  failures: row.failures,
  level: row.level,
  lockedUntilMs: Number(row.locked_until_ms),
  nowMs: Number(row.now_ms),
});

/** Without Redis: the lockouts table; a row lock serialises concurrent failures on one key. */
export function createPostgresLockoutCounters(knex: Knex): LockoutCounters {
  const fresh = lockRule({ failures: '1', level: '0', lockedUntil: 'NULL' });
  return {
    fail: (key, rule) =>
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
        const before = await trx('lockouts').where({ key }).first<{ level: number }>('level');
        const next = lockRule({ failures: 'l.failures + 1', level: 'l.level', lockedUntil: 'l.locked_until' });
        const result = await trx.raw<{ rows: Row[] }>(
          `WITH t AS (SELECT clock_timestamp() AS now)
           UPDATE lockouts AS l SET failures = ${next.failures}, level = ${next.level}, locked_until = ${next.lockedUntil},
             expires_at = ${next.expiresAt}
           WHERE l.key = :key
           RETURNING ${RETURNING}`,
          { key, ...ruleParams(rule) },
        );
        const after = parse(result.rows[0] as Row);
        return { ...after, started: after.level > before.level };
      }),
    // One statement (R14): the upsert takes the row lock, so concurrent reservations of one key
    // are decided one after another, each on the state the one before left. Its WHERE refuses a
    // key whose lock still runs (no row comes back); an expired row starts over.
    reserve: async (key, rule) => {
      const next = lockRule(counted('l.failures'));
      const result = await knex.raw<{ rows: (Row & { started: boolean })[] }>(
        `WITH t AS (SELECT clock_timestamp() AS now)
         INSERT INTO lockouts AS l (key, failures, level, locked_until, expires_at)
         SELECT :key, ${fresh.failures}, ${fresh.level}, ${fresh.lockedUntil}, ${fresh.expiresAt}
         ON CONFLICT (key) DO UPDATE SET
           failures = ${next.failures}, level = ${next.level}, locked_until = ${next.lockedUntil}, expires_at = ${next.expiresAt}
         WHERE ${EXPIRED} OR l.locked_until IS NULL OR l.locked_until <= ${NOW}
         RETURNING ${RETURNING}, coalesce(l.locked_until > ${NOW}, false) AS started`,
        { key, ...ruleParams(rule) },
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
      const result = await knex.raw<{ rows: Row[] }>(
        `SELECT failures, level, coalesce((extract(epoch FROM locked_until) * 1000)::bigint, 0) AS locked_until_ms,
           (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms
         FROM lockouts WHERE key = ? AND expires_at > clock_timestamp()`,
        [key],
      );
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
