import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { Problem, problemType } from './problem.ts';

/**
 * Right after `router.routes()`: a path the router knows, asked with another method (even one no
 * route implements), gets 405 with `Allow` (OPTIONS gets 200 with `Allow`), as a problem like
 * every other error; koa-router's own throw mode would lose the Allow header. A path the router does not know goes on
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
    // koa-router says 501 for a method it implements on no route (TRACE, PROPFIND …). The path
    // exists and this method is not one it serves, which is 405: a client must not be able to
    // raise a server error (R12, found by the fuzz pass).
    if (ctx.status === 405 || ctx.status === 501) {
      const allow = ctx.response.get('Allow');
      throw new Problem({
        status: 405,
        type: problemType('method-not-allowed'),
        title: 'Method not allowed',
        detail: `This resource answers ${allow || 'no methods'}.`,
        headers: { Allow: allow },
      });
    }
    if (ctx.method === 'OPTIONS' && ctx.status === 200) return;
    await next();
  };
}
