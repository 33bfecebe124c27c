import type { Context, Middleware, Next } from 'koa';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { Config } from '../config/types.ts';
import { ipBudgetKey } from '../shared/ip-budget.ts';
import { parseOverrides, spendBudget } from '../shared/koa-rate-limit.ts';
import type { AuthState } from './koa-bearer-auth.ts';

type Budget = { limiter: RateLimiterMemory; points: number };

/**
 * Request limits of the resource API: per IP before the token is checked (floods of garbage
 * tokens count too), and per client (the token's client_id) after it. Counted in this instance's
 * memory on purpose: the API serves every page load of every relying party, and a shared store
 * would add a network round trip to each request; the token endpoint's limits, which guard
 * credentials, are the shared ones. Over the limit: 429 problem with Retry-After.
 */
export function apiRateLimits(config: Config): { perIp: Middleware; perClient: (ctx: Context, next: Next) => Promise<void> } {
  const limits = config.rateLimits;
  const budget = (points: number): Budget | undefined =>
    points > 0 ? { limiter: new RateLimiterMemory({ points, duration: limits.windowSeconds }), points } : undefined;
  const ipBudget = budget(limits.apiPerIp);
  const clientBudget = budget(limits.apiPerClient);
  // An override has its own counter, so a raised quota is not spent by the default's window.
  const overrides = new Map([...parseOverrides(limits.apiPerClientOverrides)].map(([id, points]) => [id, budget(points)]));

  const spend = (ctx: Context, { limiter, points }: Budget, key: string): Promise<void> => spendBudget(ctx, limiter, key, points);

  return {
    async perIp(ctx, next) {
      // Mounted on the /v1/ chain only (src/api/app.ts): health and metadata are not counted.
      // An IPv6 /64 is one client (R3).
      if (ipBudget) await spend(ctx, ipBudget, ipBudgetKey(ctx.ip));
      await next();
    },
    async perClient(ctx, next) {
      const clientId = (ctx.state.auth as AuthState | undefined)?.token.client_id;
      const client = clientId === undefined ? undefined : overrides.has(clientId) ? overrides.get(clientId) : clientBudget;
      if (client && clientId !== undefined) await spend(ctx, client, clientId);
      await next();
    },
  };
}
