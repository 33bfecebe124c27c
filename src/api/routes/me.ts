import { defineRoute, type AnyRoute } from '../define-route.ts';

/** GET /v1/me: who the token speaks for. Client-credentials tokens (sub = client) have no roles. */
export function meRoutes(): AnyRoute[] {
  return [
    defineRoute({
      operationId: 'getMe',
      method: 'get',
      path: '/v1/me',
      summary: 'The subject of the access token, its granted scope, roles and permissions',
      tags: ['me'],
      scopes: [],
      responses: { 200: { description: 'The caller.', schema: 'Me' } },
      handler({ auth }) {
        const { token, subject } = auth;
        return Promise.resolve({
          body: {
            sub: token.sub,
            client_id: token.client_id,
            scope: token.scope ?? '',
            roles: [...(subject?.roles ?? [])],
            permissions: [...(subject?.permissions ?? [])].sort(),
          },
        });
      },
    }),
  ];
}
