import type { RecordService } from '../../services/records.ts';
import type { RecordType } from '../../store/records.ts';
import { defineRoute, type AnyRoute, type RouteAuth } from '../define-route.ts';
import { requests } from '../schemas.ts';

type IdParams = { id: string };
type RecordBody = { type: RecordType; label: string; data: Record<string, unknown> };

const actorOf = (auth: RouteAuth, ip: string) => ({ userId: auth.token.sub, clientId: auth.token.client_id, ip });

/** The records vault: owner-or-shared read, owner-only change and share. */
export function recordRoutes({ records }: { records: RecordService }): AnyRoute[] {
  return [
    defineRoute<Record<string, never>, { limit: number; cursor?: string; type?: RecordType }>({
      operationId: 'listRecords',
      method: 'get',
      path: '/v1/records',
      summary: 'Records you own or that are shared with you, newest first (cursor pagination)',
      description: 'Records of other owners in the page are shown to their owners as read (one audit event per request).',
      tags: ['records'],
      scopes: ['records:read'],
      permission: 'records:read',
      query: requests.listRecordsQuery,
      responses: { 200: { description: 'One page of records; pass `next_cursor` as `cursor` for the next.', schema: 'RecordPage' } },
      async handler({ query, auth, ctx }) {
        return { body: await records.list(actorOf(auth, ctx.ip), query) };
      },
    }),
    defineRoute<Record<string, never>, Record<string, never>, RecordBody>({
      operationId: 'createRecord',
      method: 'post',
      path: '/v1/records',
      summary: 'Store a record (encrypted at rest with your data key)',
      tags: ['records'],
      scopes: ['records:write'],
      permission: 'records:write',
      body: requests.createRecordBody,
      responses: { 201: { description: 'The stored record.', schema: 'Record' } },
      async handler({ body, auth, ctx }) {
        const created = await records.create(actorOf(auth, ctx.ip), body);
        return { status: 201, body: created, headers: { Location: `/v1/records/${created.id}` } };
      },
    }),
    defineRoute<IdParams>({
      operationId: 'getRecord',
      method: 'get',
      path: '/v1/records/{id}',
      summary: 'Read one record you own or that is shared with you',
      description: "A read of someone else's record is shown to its owner (an audit event, in the owner's access history).",
      tags: ['records'],
      scopes: ['records:read'],
      permission: 'records:read',
      params: requests.idParams,
      problems: [404],
      responses: { 200: { description: 'The record; `shared_with` is shown to the owner only.', schema: 'Record' } },
      async handler({ params, auth, ctx }) {
        return { body: await records.get(actorOf(auth, ctx.ip), params.id) };
      },
    }),
    defineRoute<IdParams, Record<string, never>, Partial<RecordBody>>({
      operationId: 'updateRecord',
      method: 'patch',
      path: '/v1/records/{id}',
      summary: 'Change the type, label or data of a record you own',
      tags: ['records'],
      scopes: ['records:write'],
      permission: 'records:write',
      params: requests.idParams,
      body: requests.updateRecordBody,
      problems: [404],
      responses: { 200: { description: 'The changed record.', schema: 'Record' } },
      async handler({ params, body, auth, ctx }) {
        return { body: await records.update(actorOf(auth, ctx.ip), params.id, body) };
      },
    }),
    defineRoute<IdParams>({
      operationId: 'deleteRecord',
      method: 'delete',
      path: '/v1/records/{id}',
      summary: 'Delete a record you own',
      tags: ['records'],
      scopes: ['records:write'],
      permission: 'records:write',
      params: requests.idParams,
      problems: [404],
      responses: { 204: { description: 'Deleted.' } },
      async handler({ params, auth, ctx }) {
        await records.remove(actorOf(auth, ctx.ip), params.id);
        return { status: 204 };
      },
    }),
    defineRoute<IdParams, Record<string, never>, { userId: string }>({
      operationId: 'shareRecord',
      method: 'post',
      path: '/v1/records/{id}/shares',
      summary: 'Give another user read access to a record you own',
      tags: ['records'],
      scopes: ['records:write'],
      permission: 'records:share',
      params: requests.idParams,
      body: requests.shareBody,
      problems: [404, 422],
      responses: { 201: { description: 'Shared.', schema: 'Share' }, 200: { description: 'Was already shared.', schema: 'Share' } },
      async handler({ params, body, auth, ctx }) {
        const { created } = await records.share(actorOf(auth, ctx.ip), params.id, body.userId);
        return { status: created ? 201 : 200, body: { record_id: params.id, user_id: body.userId } };
      },
    }),
    defineRoute<{ id: string; userId: string }>({
      operationId: 'unshareRecord',
      method: 'delete',
      path: '/v1/records/{id}/shares/{userId}',
      summary: "Take back a user's read access",
      tags: ['records'],
      scopes: ['records:write'],
      permission: 'records:share',
      params: requests.shareParams,
      problems: [404],
      responses: { 204: { description: 'No longer shared.' } },
      async handler({ params, auth, ctx }) {
        await records.unshare(actorOf(auth, ctx.ip), params.id, params.userId);
        return { status: 204 };
      },
    }),
  ];
}
