import type { GdprService } from '../../services/gdpr.ts';
import { notFound, Problem, problemType } from '../../shared/problem.ts';
import { defineRoute, type AnyRoute, type RouteAuth } from '../define-route.ts';

/**
 * RFC 9470 step-up challenge: the token is fine, but the user must sign in again (max_age) and
 * the client retry with the fresh token.
 */
export function requireRecentAuthentication(auth: RouteAuth, maxAge: number, now = Date.now() / 1000): void {
  const authTime = auth.token.auth_time;
  if (typeof authTime === 'number' && now - authTime <= maxAge) return;
  const detail = `This request needs a sign-in within the last ${maxAge} seconds; authenticate again (max_age=${maxAge}) and retry.`;
  throw new Problem({
    status: 401,
    type: problemType('reauthentication-required'),
    title: 'Recent authentication required',
    detail,
    extensions: { max_age: maxAge },
    headers: {
      'WWW-Authenticate': `Bearer realm="portcullis", error="insufficient_user_authentication", error_description="${detail}", max_age="${maxAge}"`,
    },
  });
}

/** GDPR: the right of access (one JSON export) and the right to erasure. */
export function gdprRoutes({ gdpr, erasureMaxAge }: { gdpr: GdprService; erasureMaxAge: number }): AnyRoute[] {
  return [
    defineRoute({
      operationId: 'exportMe',
      method: 'get',
      path: '/v1/me/export',
      summary: 'Everything held about you, as one JSON document (GDPR Art. 15 and 20)',
      description:
        'Needs the `account:export` scope, which no client holds by default: an operator grants it (docs/clients.md). A records scope is not enough.',
      tags: ['gdpr'],
      // Its own scope: the export hands over everything held about the person at once.
      scopes: ['account:export'],
      permission: 'profile:read',
      problems: [404],
      responses: { 200: { description: 'The export.', schema: 'Export' } },
      async handler({ auth, ctx }) {
        const document = await gdpr.exportFor({ userId: auth.token.sub, clientId: auth.token.client_id, ip: ctx.ip });
        if (!document) throw notFound();
        return { body: document, headers: { 'Content-Disposition': 'attachment; filename="portcullis-export.json"' } };
      },
    }),
    defineRoute({
      operationId: 'eraseMe',
      method: 'delete',
      path: '/v1/me',
      summary: 'Erase your account (GDPR Art. 17); needs a recent sign-in',
      description: `Needs the \`account:erase\` scope, which no client holds by default (an operator grants it, and the user confirms it on every authorization). Records are crypto-shredded (your data key is deleted) and removed, sessions and grants stop working, and the audit trail keeps only a pseudonymous id. The token must carry \`auth_time\` within the last ${erasureMaxAge} seconds; otherwise the answer is 401 with \`WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age="${erasureMaxAge}"\` (RFC 9470).`,
      tags: ['gdpr'],
      // Its own scope, never records:write: a data scope must not be enough to destroy the account.
      scopes: ['account:erase'],
      permission: 'profile:read',
      problems: [404],
      responses: { 204: { description: 'Erased.' } },
      async handler({ auth }) {
        requireRecentAuthentication(auth, erasureMaxAge);
        if (!(await gdpr.erase({ userId: auth.token.sub, clientId: auth.token.client_id }))) throw notFound();
        return { status: 204 };
      },
    }),
  ];
}
