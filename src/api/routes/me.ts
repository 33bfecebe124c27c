import Router from '@koa/router';
import type { RoleStore } from '../../store/roles.ts';
import type { AuthState } from '../koa-bearer-auth.ts';

/** GET /v1/me: who the token speaks for. Client-credentials tokens (sub = client) have no roles. */
export function meRoutes({ roles }: { roles: RoleStore }): Router {
  const router = new Router();
  router.get('/v1/me', async function me(ctx) {
    const { token } = ctx.state.auth as AuthState;
    const isUser = token.sub !== token.client_id;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      sub: token.sub,
      client_id: token.client_id,
      scope: token.scope ?? '',
      roles: isUser ? await roles.rolesOf(token.sub) : [],
    };
  });
  return router;
}
