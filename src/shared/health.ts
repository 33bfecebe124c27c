import type { Middleware } from 'koa';

/** Named readiness checks: each resolves when its dependency answers (the storage's: src/store/readiness-probes.ts). */
export type Probes = Record<string, () => Promise<unknown>>;

/**
 * Shared by both servers of a process: `draining` turns readiness 503 on SIGTERM; `checks` are
 * extra probes a server registers (the auth server: its signing keys are loaded).
 */
export type Readiness = { draining: boolean; checks?: Probes };

async function check(name: string, probe: () => Promise<unknown>): Promise<[string, string]> {
  try {
    await Promise.race([probe(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref())]);
    return [name, 'ok'];
  } catch {
    return [name, 'unavailable'];
  }
}

/** How long one readiness result answers every /readyz of the process. */
export const READINESS_CACHE_MS = 1000;

type Checks = Record<string, string>;
type Computation = { startedAt: number; settled: boolean; result: Promise<Checks> };

/**
 * One computation per Readiness object, i.e. per process: both servers and every rebuilt auth
 * app share it. A /readyz flood once cost four database round trips per request and slowed
 * /token for everyone (S9); now concurrent callers wait for the same in-flight check and a
 * settled result is reused until a second after it started, so a failure still shows within
 * about a second.
 */
const computations = new WeakMap<Readiness, Computation>();

function sharedChecks(readiness: Readiness, compute: () => Promise<Checks>): Promise<Checks> {
  const current = computations.get(readiness);
  if (current && (!current.settled || Date.now() - current.startedAt < READINESS_CACHE_MS)) return current.result;
  const computation: Computation = { startedAt: Date.now(), settled: false, result: Promise.resolve({}) };
  computation.result = compute().finally(() => {
    computation.settled = true;
  });
  computations.set(readiness, computation);
  return computation.result;
}

/**
 * /healthz: the process is alive (touches nothing). /readyz: the storage probes pass (Postgres
 * and Redis answer, the schema is current), registered checks pass, and we are not draining; load
 * balancers stop routing here first on shutdown. Each check is bounded (2 s) so a hung dependency
 * reads as "unavailable"; the checks run at most once a second per process (draining is read on
 * every request). /readyz is for probes that reach the pod directly: the shipped proxies do not
 * expose it publicly.
 */
export function health({ probes, readiness }: { probes: Probes; readiness: Readiness }): Middleware {
  const compute = async (): Promise<Checks> =>
    Object.fromEntries(await Promise.all(Object.entries({ ...probes, ...readiness.checks }).map(([name, probe]) => check(name, probe))));
  return async function healthMiddleware(ctx, next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      await next();
      return;
    }
    if (ctx.path === '/healthz') {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/readyz') {
      const checks = await sharedChecks(readiness, compute);
      const ready = !readiness.draining && Object.values(checks).every((v) => v === 'ok');
      ctx.set('Cache-Control', 'no-store');
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : readiness.draining ? 'draining' : 'unavailable', checks };
      return;
    }
    await next();
  };
}
