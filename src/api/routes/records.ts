import type { RecordService, RecordType } from '../../services/records.ts';
import { defineRoute, type AnyRoute, type RouteAuth } from '../define-route.ts';
import { requests } from '../schemas.ts';

type IdParams = { id: string };
type OfferParams = { recordId: string };
type RecordBody = { type: RecordType; label: string; data: Record<string, unknown> };

const actorOf = (auth: RouteAuth, ip: string) => ({ userId: auth.token.sub, clientId: auth.token.client_id, ip });

/** The records vault: owner-or-shared read, owner-only change and share; offers the recipient accepts (R13). */
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
      summary: 'Offer another user read access to a record you own',
      description:
        'A share is an offer until the recipient accepts it (`GET /v1/shares/incoming`, then accept or decline): until then the record is not in their listings or reads. ' +
        'The answer is the same whether or not `userId` is an account (an offer to an id that is no account is never delivered), and does not say whether an offer was declined. ' +
        'Pending offers are limited per sharer and per recipient (409).',
      tags: ['records', 'shares'],
      scopes: ['records:write'],
      permission: 'records:share',
      params: requests.idParams,
      body: requests.shareBody,
      problems: [404, 409, 422],
      responses: {
        201: { description: 'Offered.', schema: 'Share' },
        200: { description: 'Was already offered (`state: offered`) or accepted (`state: accepted`).', schema: 'Share' },
      },
      async handler({ params, body, auth, ctx }) {
        const { created, state } = await records.share(actorOf(auth, ctx.ip), params.id, body.userId);
        return { status: created ? 201 : 200, body: { record_id: params.id, user_id: body.userId, state } };
      },
    }),
    defineRoute<{ id: string; userId: string }>({
      operationId: 'unshareRecord',
      method: 'delete',
      path: '/v1/records/{id}/shares/{userId}',
      summary: "Take back a user's read access, or an offer (accepted, waiting or declined)",
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
    defineRoute({
      operationId: 'listIncomingOffers',
      method: 'get',
      path: '/v1/shares/incoming',
      summary: 'Records other users offered to share with you, waiting for your answer (newest first)',
      description:
        "Each offer names the sharer (id and email) and the record's id and type; the record's label and data stay sealed until you accept. Listing offers is not a read of the records (no access event).",
      tags: ['shares'],
      scopes: ['records:read'],
      permission: 'records:read',
      responses: { 200: { description: 'The waiting offers (at most SHARE_OFFERS_PENDING_PER_RECIPIENT).', schema: 'IncomingOfferList' } },
      async handler({ auth, ctx }) {
        return { body: { items: await records.incomingOffers(actorOf(auth, ctx.ip)) } };
      },
    }),
    defineRoute<OfferParams>({
      operationId: 'acceptOffer',
      method: 'post',
      path: '/v1/shares/incoming/{recordId}/accept',
      summary: 'Accept an offer: the record joins your records (read only)',
      description: 'From now on your reads of the record are shown to its owner in their access history.',
      tags: ['shares'],
      scopes: ['records:write'],
      permission: 'records:read',
      params: requests.offerParams,
      problems: [404],
      responses: { 204: { description: 'Accepted.' } },
      async handler({ params, auth, ctx }) {
        await records.acceptOffer(actorOf(auth, ctx.ip), params.recordId);
        return { status: 204 };
      },
    }),
    defineRoute<OfferParams>({
      operationId: 'declineOffer',
      method: 'post',
      path: '/v1/shares/incoming/{recordId}/decline',
      summary: 'Decline an offer',
      description:
        'The offer leaves your list; the sharer is not told (they still see it as offered). New offers from the same sharer are held back for SHARE_DECLINE_COOLDOWN_DAYS.',
      tags: ['shares'],
      scopes: ['records:write'],
      permission: 'records:read',
      params: requests.offerParams,
      problems: [404],
      responses: { 204: { description: 'Declined.' } },
      async handler({ params, auth, ctx }) {
        await records.declineOffer(actorOf(auth, ctx.ip), params.recordId);
        return { status: 204 };
      },
    }),
    defineRoute({
      operationId: 'listReceivedShares',
      method: 'get',
      path: '/v1/shares/received',
      summary: 'Shares you accepted: which records other users let you read (no content)',
      description:
        "Each share names the owner (id and email) and the record's id and type. Unlike `GET /v1/records`, this reads no record and is not shown to the owners.",
      tags: ['shares'],
      scopes: ['records:read'],
      permission: 'records:read',
      responses: { 200: { description: 'The accepted shares, newest first.', schema: 'ReceivedShareList' } },
      async handler({ auth, ctx }) {
        return { body: { items: await records.receivedShares(actorOf(auth, ctx.ip)) } };
      },
    }),
    defineRoute<OfferParams>({
      operationId: 'leaveShare',
      method: 'delete',
      path: '/v1/shares/received/{recordId}',
      summary: 'Leave a share you accepted: the record leaves your records',
      description:
        "Your later listings no longer show the record, so they are no longer shown to its owner. The owner's new offers are held back for SHARE_DECLINE_COOLDOWN_DAYS, as after a decline.",
      tags: ['shares'],
      scopes: ['records:write'],
      permission: 'records:read',
      params: requests.offerParams,
      problems: [404],
      responses: { 204: { description: 'Left.' } },
      async handler({ params, auth, ctx }) {
        await records.leaveShare(actorOf(auth, ctx.ip), params.recordId);
        return { status: 204 };
      },
    }),
  ];
}
