import type { UserAdminService } from '../../services/user-admin.ts';
import { defineRoute, type AnyRoute } from '../define-route.ts';
import { requests } from '../schemas.ts';

/** Account administration: needs the `admin` scope and a role granting users:read / users:write. */
export function adminUserRoutes({ userAdmin }: { userAdmin: UserAdminService }): AnyRoute[] {
  return [
    defineRoute<Record<string, never>, { limit: number; cursor?: string; email?: string }>({
      operationId: 'listUsers',
      method: 'get',
      path: '/v1/admin/users',
      summary: 'List accounts, oldest first, optionally by email prefix (cursor pagination)',
      tags: ['admin'],
      scopes: ['admin'],
      permission: 'users:read',
      query: requests.listUsersQuery,
      responses: { 200: { description: 'One page of accounts.', schema: 'AdminUserPage' } },
      async handler({ query }) {
        return { body: await userAdmin.list({ limit: query.limit, cursor: query.cursor, emailPrefix: query.email }) };
      },
    }),
    defineRoute<{ id: string }>({
      operationId: 'getUser',
      method: 'get',
      path: '/v1/admin/users/{id}',
      summary: 'Read one account',
      tags: ['admin'],
      scopes: ['admin'],
      permission: 'users:read',
      params: requests.idParams,
      problems: [404],
      responses: { 200: { description: 'The account.', schema: 'AdminUser' } },
      async handler({ params }) {
        return { body: await userAdmin.get(params.id) };
      },
    }),
    defineRoute<{ id: string }, Record<string, never>, { disabled?: boolean; roles?: string[] }>({
      operationId: 'updateUser',
      method: 'patch',
      path: '/v1/admin/users/{id}',
      summary: 'Disable or enable an account, or replace its roles',
      description:
        'A disabled account can no longer sign in, refresh tokens or use the API (its access tokens are refused within seconds). Disabling also ends every sign-in made so far (the authorization server then revokes its sessions and grants): enabling the account again brings back none of its sessions, refresh tokens or access tokens.',
      tags: ['admin'],
      scopes: ['admin'],
      permission: 'users:write',
      params: requests.idParams,
      body: requests.updateUserBody,
      problems: [404, 409, 422],
      responses: { 200: { description: 'The changed account.', schema: 'AdminUser' } },
      async handler({ params, body, auth, ctx }) {
        return { body: await userAdmin.update({ userId: auth.token.sub, clientId: auth.token.client_id, ip: ctx.ip }, params.id, body) };
      },
    }),
  ];
}
