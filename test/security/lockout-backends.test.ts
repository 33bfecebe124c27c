import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import type { CountedFailure, CounterState, LockoutCounters, LockRule } from '../../src/store/lockout-counters.ts';
import { createPostgresLockoutCounters } from '../../src/store/lockout-counters-postgres.ts';
import { createRedisLockoutCounters } from '../../src/store/lockout-counters-redis.ts';
import { testEnv } from '../setup.ts';
import { eventually } from '../helpers/wait.ts';

/** What a step left, with times as whole seconds of lock left (the stores' clocks differ by milliseconds). */
type Step = { step: string; failures: number; level: number; lockSeconds: number; started?: boolean; refused?: true };

const seen = (step: string, state: CounterState & { started?: boolean }): Step => ({
  step,
  failures: state.failures,
  level: state.level,
  lockSeconds: Math.max(0, Math.ceil((state.lockedUntilMs - state.nowMs) / 1000)),
  ...(state.started === undefined ? {} : { started: state.started }),
});

/**
 * One script of failures, reservations, releases and clears, through the counters of one backend;
 * what each step left. It reads nothing but what the counters answer.
 */
async function script(counters: LockoutCounters, prefix: string): Promise<Step[]> {
  const rule: LockRule = { maxFailures: 2, baseSeconds: 1, maxSeconds: 2, windowSeconds: 60 };
  const key = `${prefix}:doubling`;
  const steps: Step[] = [];
  const granted = async (k: string, r: LockRule): Promise<CountedFailure> => {
    const reservation = await counters.reserve(k, r);
    if (!reservation) throw new Error(`a reservation of ${k} was refused`);
    return reservation;
  };
  // The lock runs on the store's clock: polled until the store says it is over.
  const unlocked = () =>
    eventually(
      async () => {
        const state = await counters.get(key);
        expect(state.lockedUntilMs, 'locked until').to.be.at.most(state.nowMs);
      },
      { timeoutMs: 5000 },
    );
  steps.push(seen('fail 1', await counters.fail(key, rule)));
  steps.push(seen('fail 2 starts a 1 s lock', await counters.fail(key, rule)));
  steps.push(seen('fail during the lock neither restarts nor lengthens it', await counters.fail(key, rule)));
  const refused = await counters.reserve(key, rule);
  steps.push(
    refused ? seen('reserve during the lock', refused) : { ...seen('reserve during the lock', await counters.get(key)), refused: true },
  );
  await unlocked();
  const reserved = await granted(key, rule);
  steps.push(seen('reserve after the lock starts a 2 s lock', reserved));
  await counters.release(key, reserved.lockedUntilMs);
  steps.push(seen('release ends the lock it started', await counters.get(key)));
  steps.push(seen('reserve again: the 2 s lock again', await granted(key, rule)));
  await unlocked();
  steps.push(seen('fail after it: 4 s capped at 2 s', await counters.fail(key, rule)));
  await counters.release(key, 0);
  steps.push(seen('release of an attempt that started no lock', await counters.get(key)));
  await counters.clear(key);
  steps.push(seen('clear', await counters.get(key)));

  // A new key whose first failure is the budget's last (the rows and hashes created by the step).
  const one: LockRule = { maxFailures: 1, baseSeconds: 3, maxSeconds: 1, windowSeconds: 60 };
  steps.push(seen('fail on a new key of a one-failure budget: the base beats a lower cap', await counters.fail(`${prefix}:one-a`, one)));
  steps.push(seen('reserve on a new key of a one-failure budget', await granted(`${prefix}:one-b`, one)));

  // The window: a key is forgotten this long after its last failure, then counts from zero again.
  const brief: LockRule = { maxFailures: 5, baseSeconds: 1, maxSeconds: 1, windowSeconds: 1 };
  const briefKey = `${prefix}:window`;
  await counters.fail(briefKey, brief);
  steps.push(seen('a second failure within the window', await counters.fail(briefKey, brief)));
  // The store forgets the key once the window has passed since its last failure: polled for.
  const forgotten = await eventually(
    async () => {
      const state = await counters.get(briefKey);
      expect(state.failures, 'failures still counted').to.equal(0);
      return state;
    },
    { timeoutMs: 5000 },
  );
  steps.push(seen('after the window', forgotten));
  steps.push(seen('a failure after the window counts from zero', await granted(briefKey, brief)));
  return steps;
}

/**
 * The lock rule is written once per backend, in Lua for Redis and in SQL for Postgres
 * (src/store/lockout-counters.ts): the same script of steps must leave the same counts, levels
 * and locks in both, step by step, and those must be the rule's.
 */
describe('issue 18 the lockout counters of both backends apply the same lock rule', function () {
  this.timeout(60_000);
  let knex: Knex;
  let redis: Redis;

  before(function () {
    // This file's database and prefix exist once its first suite starts (test/setup.ts).
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 2 } });
    redis = new Redis(testEnv.redisUrl, { keyPrefix: `${testEnv.redisKeyPrefix}lockout-backends:` });
  });

  after(async function () {
    redis.disconnect();
    await knex.destroy();
  });

  it('leaves the same state after every step in Redis and in Postgres, and that state is the rule', async function () {
    const prefix = `agree-${randomBytes(4).toString('hex')}`;
    const [inRedis, inPostgres] = await Promise.all([
      script(createRedisLockoutCounters(redis), prefix),
      script(createPostgresLockoutCounters(knex), prefix),
    ]);
    expect(inPostgres).to.deep.equal(inRedis);
    expect(inRedis).to.deep.equal([
      { step: 'fail 1', failures: 1, level: 0, lockSeconds: 0, started: false },
      { step: 'fail 2 starts a 1 s lock', failures: 2, level: 1, lockSeconds: 1, started: true },
      { step: 'fail during the lock neither restarts nor lengthens it', failures: 3, level: 1, lockSeconds: 1, started: false },
      { step: 'reserve during the lock', failures: 3, level: 1, lockSeconds: 1, refused: true },
      { step: 'reserve after the lock starts a 2 s lock', failures: 4, level: 2, lockSeconds: 2, started: true },
      { step: 'release ends the lock it started', failures: 3, level: 1, lockSeconds: 0 },
      { step: 'reserve again: the 2 s lock again', failures: 4, level: 2, lockSeconds: 2, started: true },
      { step: 'fail after it: 4 s capped at 2 s', failures: 5, level: 3, lockSeconds: 2, started: true },
      { step: 'release of an attempt that started no lock', failures: 4, level: 3, lockSeconds: 2 },
      { step: 'clear', failures: 0, level: 0, lockSeconds: 0 },
      {
        step: 'fail on a new key of a one-failure budget: the base beats a lower cap',
        failures: 1,
        level: 1,
        lockSeconds: 3,
        started: true,
      },
      { step: 'reserve on a new key of a one-failure budget', failures: 1, level: 1, lockSeconds: 3, started: true },
      { step: 'a second failure within the window', failures: 2, level: 0, lockSeconds: 0, started: false },
      { step: 'after the window', failures: 0, level: 0, lockSeconds: 0 },
      { step: 'a failure after the window counts from zero', failures: 1, level: 0, lockSeconds: 0, started: false },
    ]);
  });
});
