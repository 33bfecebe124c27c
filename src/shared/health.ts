import type { Knex } from 'knex';
import type { Redis } from '../store/redis.ts';
import type { Middleware } from 'koa';
import { pendingMigrations } from '../store/migrate.ts';

/**
 * Shared by both servers of a process: `draining` turns readiness 503 on SIGTERM; `checks` are
 * extra probes a server registers (the auth server: its signing keys are loaded).
 */
export type Readiness = { draining: boolean; checks?: Record<string, () => Promise<unknown>> };

async function check(name: string, probe: () => Promise<unknown>): Promise<[string, string]> {
  try {
    await Promise.race([probe(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref())]);
    return [name, 'ok'];
  } catch {
    return [name, 'unavailable'];
  }
}

/**
 * /healthz: the process is alive (touches nothing). /readyz: Postgres and Redis answer, the schema
 * is current, registered checks pass, and we are not draining; load balancers stop routing here
 * first on shutdown. Each check is bounded (2 s) so a hung dependency reads as "unavailable".
 */
export function health({ knex, redis, readiness }: { knex: Knex; redis?: Redis | undefined; readiness: Readiness }): Middleware {
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
      const checks = Object.fromEntries(
        await Promise.all([
          check('postgres', async () => { await knex.raw('SELECT 1'); }),
          ...(redis ? [check('redis', () => redis.ping())] : []),
          check('migrations', async () => {
            // A newer release migrated the schema, or this one's migrations are missing.
            const pending = await pendingMigrations(knex);
            if (pending.length > 0) throw new Error(`${pending.length} pending`);
          }),
          ...Object.entries(readiness.checks ?? {}).map(([name, probe]) => check(name, probe)),
        ]),
      );
      const ready = !readiness.draining && Object.values(checks).every((v) => v === 'ok');
      ctx.set('Cache-Control', 'no-store');
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : readiness.draining ? 'draining' : 'unavailable', checks };
      return;
    }
    await next();
  };
}
