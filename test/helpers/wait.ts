/**
 * Waiting on a condition instead of for a fixed time. `eventually` polls until the check passes
 * (returns its value) and, once the time is up, fails with the check's last error, so the test
 * says what never came true rather than only that it timed out. `consistently` is its mirror for
 * the tests that must show something does NOT happen: the check must hold on every poll for the
 * whole window (keep that window as short as the claim honestly needs).
 */
export type PollOptions = { timeoutMs?: number; intervalMs?: number; message?: string };

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `check` until it neither throws nor rejects (an assertion inside it is the condition), and
 * returns what it returned. `check` may also return false to mean "not yet".
 */
export async function eventually<T>(check: () => T | Promise<T>, options: PollOptions = {}): Promise<Exclude<T, false>> {
  const { timeoutMs = 5000, intervalMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
      last = new Error('the check returned false');
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const what = options.message ? `${options.message}: ` : '';
      throw new Error(`${what}not true after ${timeoutMs} ms (${attempt} tries); last: ${describe(last)}`, { cause: last });
    }
    await pause(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

/**
 * Runs `check` again and again for `forMs` and fails at the first poll where it throws, rejects
 * or returns false: for "this does not happen (within the window that matters)".
 */
export async function consistently(check: () => unknown, options: { forMs: number; intervalMs?: number; message?: string }): Promise<void> {
  const { forMs, intervalMs = 20 } = options;
  const until = Date.now() + forMs;
  for (let attempt = 1; ; attempt++) {
    let failed: { error: unknown } | undefined;
    try {
      if ((await check()) === false) failed = { error: new Error('the check returned false') };
    } catch (error) {
      failed = { error };
    }
    if (failed) {
      const what = options.message ? `${options.message}: ` : '';
      throw new Error(`${what}stopped holding on try ${attempt} of a ${forMs} ms window: ${describe(failed.error)}`, {
        cause: failed.error,
      });
    }
    if (Date.now() >= until) return;
    await pause(Math.min(intervalMs, Math.max(0, until - Date.now())));
  }
}

/**
 * `promise`, or a failure saying `message` once `timeoutMs` have passed without it settling: for
 * an event the test waits on (a request the page makes, a message a process prints).
 */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (within ${timeoutMs} ms)`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until the clock reads `instantMs` (Date.now()): only for a window the server measures on
 * its own clock and the test cannot move (a grace period, a lifetime at its configured minimum).
 * Name the instant after what it is, e.g. `firstUse + graceMs`; never a bare duration.
 */
export async function waitUntil(instantMs: number): Promise<void> {
  const left = instantMs - Date.now();
  if (left > 0) await pause(left);
}
