import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { Problem, problemType } from './problem.ts';

/**
 * Right after `router.routes()`: a path the router knows, asked with another method, gets 405
 * with `Allow` (OPTIONS gets 200 with `Allow`), as a problem like every other error; koa-router's
 * own throw mode would lose the Allow header. A path the router does not know goes on
 * downstream untouched (on the auth server, to oidc-provider, which answers on the raw response,
 * so the check cannot wait for downstream as koa-router's own middleware does).
 */
export function allowedMethods(router: Router): Middleware {
  const check = router.allowedMethods();
  return async function methodNotAllowed(ctx, next) {
    const matched = (ctx as { matched?: { methods: string[] }[] }).matched;
    if (!matched?.some((layer) => layer.methods.length > 0)) {
      await next();
      return;
    }
    await check(ctx as Parameters<typeof check>[0], () => Promise.resolve());
    if (ctx.status === 405 || ctx.status === 501) {
      const allow = ctx.response.get('Allow');
      throw new Problem({
        status: ctx.status,
        type: problemType(ctx.status === 405 ? 'method-not-allowed' : 'not-implemented'),
        title: ctx.status === 405 ? 'Method not allowed' : 'Not implemented',
        detail: `This resource answers ${allow || 'no methods'}.`,
        headers: { Allow: allow },
      });
    }
    if (ctx.method === 'OPTIONS' && ctx.status === 200) return;
    await next();
  };
}
