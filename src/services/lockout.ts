import type { Config } from '../config/types.ts';
import { ipBudgetKey } from '../shared/ip-budget.ts';
import type { Logger } from '../shared/logger.ts';
import type { CounterState, LockoutCounters, LockRule } from '../store/lockout-counters.ts';

/**
 * The lockout policy: the failure budgets and what their counters' answers mean (locked, retry
 * after, fail closed). The counters and the lock rule itself live in the store
 * (src/store/lockout-counters.ts), one atomic step per operation in Redis or Postgres.
 */

/**
 * One failure budget of the lockout sentinel (passwords, second factors, device user codes each
 * have their own key space). After `maxFailures` consecutive failures the key is locked for
 * `baseSeconds`; each failure after a lock has ended locks it again for twice as long, up to
 * `maxSeconds` (exponential back-off). The state is forgotten `windowSeconds` after the last
 * failure or lock, or at once by clear() on a success.
 */
export type LockoutBudget = LockRule & { name: string };

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
  counters: store,
  logger,
  budget,
  counterKey,
  groupKey = (id) => id,
}: {
  /** The counters' storage (src/deps.ts builds it: Redis, or Postgres without Redis). */
  counters: LockoutCounters;
  logger: Logger;
  budget: LockoutBudget;
  /** The keyed digest that names a counter (src/shared/derive-key.ts keyedDigest under KEY_PURPOSE.counterKey). */
  counterKey: (id: string) => string;
  /** Maps an id to the key that spends the budget (per-IP budgets: ipBudgetKey, an IPv6 /64 is one client). */
  groupKey?: (id: string) => string;
}) {
  const keyFor = (id: string): string => keyOf(budget, counterKey(groupKey(id)));
  const stateOf = ({ failures, lockedUntilMs, nowMs }: CounterState): LockoutState => {
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
  counters,
  logger,
  counterKey,
}: {
  config: Config;
  counters: LockoutCounters;
  logger: Logger;
  counterKey: (id: string) => string;
}) {
  const { lockout, clients, emailCodes } = config;
  const make = (budget: LockoutBudget): Lockout => createLockout({ counters, logger, budget, counterKey });
  // Budgets keyed by client address: an IPv6 /64 is one client, an IPv4-mapped address is IPv4 (R3).
  const perAddress = (budget: LockoutBudget): Lockout => createLockout({ counters, logger, budget, counterKey, groupKey: ipBudgetKey });
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
    // Mailed codes (src/services/email-codes.ts): wrong codes per address over all its codes, a
    // quarter of an hour doubling up to a day (each guess at a six-digit code is worth a day's
    // wait); and the mails one address receives, or one client causes, per hour.
    emailCode: make({
      name: 'email-code',
      maxFailures: emailCodes.maxFailures,
      baseSeconds: 900,
      maxSeconds: 86_400,
      windowSeconds: 86_400,
    }),
    emailMail: make({
      name: 'email-mail',
      maxFailures: emailCodes.mailsPerAddress,
      baseSeconds: 3600,
      maxSeconds: 3600,
      windowSeconds: 3600,
    }),
    emailMailIp:
      emailCodes.mailsPerIp > 0
        ? perAddress({
            name: 'email-mail-ip',
            maxFailures: emailCodes.mailsPerIp,
            baseSeconds: 3600,
            maxSeconds: 3600,
            windowSeconds: 3600,
          })
        : undefined,
  };
}

export type Lockouts = ReturnType<typeof createLockouts>;
