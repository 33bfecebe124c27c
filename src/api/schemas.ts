import { RECORD_TYPES } from '../store/records.ts';

/**
 * Every JSON Schema (2020-12) of the resource API in one place. Request schemas are compiled by
 * define-route; response schemas are published as OpenAPI components and checked in the tests.
 * Objects are closed (`additionalProperties: false`) and every string and list is bounded.
 */
export type JsonSchema = Record<string, unknown>;

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const uuid = { type: 'string', format: 'uuid' } as const;
const cursor = { type: 'string', minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' } as const;
const limit = { type: 'integer', minimum: 1, maximum: 100, default: 20 } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;
const recordType = { type: 'string', enum: [...RECORD_TYPES] } as const;
const label = { type: 'string', minLength: 1, maxLength: 200 } as const;
/** Free-form record content; the body limit bounds its size. */
const recordData = { type: 'object', maxProperties: 100 } as const;
const roleName = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_-]*$' } as const;

const closed = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)): JsonSchema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});

/** Request parts. */
export const requests = {
  idParams: closed({ id: uuid }),
  shareParams: closed({ id: uuid, userId: uuid }),
  offerParams: closed({ recordId: uuid }),
  listRecordsQuery: closed({ limit, cursor, type: recordType }, []),
  createRecordBody: closed({ type: recordType, label, data: recordData }),
  updateRecordBody: { ...closed({ type: recordType, label, data: recordData }, []), minProperties: 1 },
  shareBody: closed({ userId: uuid }),
  listUsersQuery: closed({ limit, cursor, email: { type: 'string', minLength: 1, maxLength: 320 } }, []),
  updateUserBody: {
    ...closed({ disabled: { type: 'boolean' }, roles: { type: 'array', items: roleName, maxItems: 16, uniqueItems: true } }, []),
    minProperties: 1,
  },
  auditQuery: closed(
    {
      limit,
      cursor: { type: 'string', pattern: '^[0-9]{1,18}$' },
      user: { type: 'string', minLength: 1, maxLength: 128 },
      type: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-z0-9_.:-]+$' },
      since: dateTime,
      until: dateTime,
    },
    [],
  ),
} satisfies Record<string, JsonSchema>;

/** Response bodies, published under components.schemas. */
export const components: Record<string, JsonSchema> = {
  Problem: {
    type: 'object',
    description: 'RFC 9457 problem details.',
    properties: {
      type: { type: 'string', format: 'uri' },
      title: { type: 'string' },
      status: { type: 'integer', minimum: 400, maximum: 599 },
      detail: { type: 'string' },
      errors: {
        type: 'array',
        items: closed({ pointer: { type: 'string' }, detail: { type: 'string' } }),
      },
    },
    required: ['type', 'title', 'status'],
  },
  Me: closed({
    sub: { type: 'string' },
    client_id: { type: 'string' },
    scope: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    permissions: { type: 'array', items: { type: 'string' } },
  }),
  Record: closed(
    {
      id: uuid,
      type: recordType,
      label: { type: 'string' },
      data: { type: 'object' },
      owner_id: uuid,
      access: { type: 'string', enum: ['owner', 'shared'] },
      shared_with: { type: 'array', items: uuid, description: 'Only shown to the owner: who accepted a share and can read the record.' },
      offered_to: {
        type: 'array',
        items: uuid,
        description:
          'Only shown to the owner: offers not accepted (yet). A declined offer is shown here too; an id that is no account stays here.',
      },
      created_at: dateTime,
      updated_at: dateTime,
    },
    ['id', 'type', 'label', 'data', 'owner_id', 'access', 'created_at', 'updated_at'],
  ),
  RecordPage: closed({ items: { type: 'array', items: ref('Record') }, next_cursor: { type: ['string', 'null'] } }),
  Share: closed({
    record_id: uuid,
    user_id: uuid,
    state: {
      type: 'string',
      enum: ['offered', 'accepted'],
      description: 'offered: waiting for the recipient to accept (or declined, which is not announced).',
    },
  }),
  IncomingOffer: closed({
    record_id: uuid,
    record_type: recordType,
    from: closed({ id: uuid, email: { type: 'string' } }),
    offered_at: dateTime,
  }),
  IncomingOfferList: closed({ items: { type: 'array', items: ref('IncomingOffer') } }),
  ReceivedShare: closed({
    record_id: uuid,
    record_type: recordType,
    from: closed({ id: uuid, email: { type: 'string' } }),
    shared_at: dateTime,
  }),
  ReceivedShareList: closed({ items: { type: 'array', items: ref('ReceivedShare') } }),
  AdminUser: closed({
    id: uuid,
    email: { type: 'string' },
    email_verified: { type: 'boolean' },
    name: { type: ['string', 'null'] },
    disabled: { type: 'boolean' },
    roles: { type: 'array', items: { type: 'string' } },
    created_at: dateTime,
    updated_at: dateTime,
  }),
  AdminUserPage: closed({ items: { type: 'array', items: ref('AdminUser') }, next_cursor: { type: ['string', 'null'] } }),
  AuditEvent: closed({
    id: { type: 'integer' },
    occurred_at: dateTime,
    type: { type: 'string' },
    outcome: { type: 'string', enum: ['success', 'failure'] },
    actor_id: { type: ['string', 'null'] },
    client_id: { type: ['string', 'null'] },
    ip: { type: ['string', 'null'] },
    user_agent: { type: ['string', 'null'] },
    data: { type: 'object' },
    hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  }),
  /** In an export: an event of someone else that names the caller (R9). */
  AuditMention: closed({
    type: { type: 'string' },
    occurred_at: dateTime,
    object_id: { type: 'string' },
  }),
  AuditPage: closed({ items: { type: 'array', items: ref('AuditEvent') }, next_cursor: { type: ['string', 'null'] } }),
  Export: closed({
    format: { const: 'portcullis-export/1' },
    exported_at: dateTime,
    subject: uuid,
    profile: closed({
      id: uuid,
      email: { type: 'string' },
      email_verified: { type: 'boolean' },
      name: { type: ['string', 'null'] },
      disabled: { type: 'boolean' },
      created_at: dateTime,
      updated_at: dateTime,
    }),
    roles: { type: 'array', items: { type: 'string' } },
    permissions: { type: 'array', items: { type: 'string' } },
    records: {
      type: 'array',
      items: closed({
        id: uuid,
        type: recordType,
        label: { type: 'string' },
        data: { type: 'object' },
        created_at: dateTime,
        updated_at: dateTime,
      }),
    },
    shares: closed({
      granted: { type: 'array', items: closed({ record_id: uuid, user_id: uuid, created_at: dateTime }) },
      received: { type: 'array', items: closed({ record_id: uuid, owner_id: uuid, created_at: dateTime }) },
      offered: { type: 'array', items: closed({ record_id: uuid, user_id: uuid, created_at: dateTime }) },
      offers_received: {
        type: 'array',
        items: closed({ record_id: uuid, owner_id: uuid, state: { type: 'string', enum: ['offered', 'declined'] }, created_at: dateTime }),
      },
    }),
    consents: {
      type: 'array',
      items: closed({
        grant_id: { type: 'string' },
        client_id: { type: ['string', 'null'] },
        scopes: { type: 'array', items: { type: 'string' } },
        resources: { type: 'array', items: { type: 'string' } },
        created_at: dateTime,
        last_used_at: { type: ['string', 'null'], format: 'date-time' },
        expires_at: { type: ['string', 'null'], format: 'date-time' },
      }),
    },
    sessions: {
      type: 'array',
      items: closed({
        created_at: dateTime,
        last_used_at: { type: ['string', 'null'], format: 'date-time' },
        expires_at: { type: ['string', 'null'], format: 'date-time' },
      }),
    },
    // The caller's own events whole; other people's events that name the caller as mentions.
    audit_trail: { type: 'array', items: { oneOf: [ref('AuditEvent'), ref('AuditMention')] } },
  }),
  Health: { type: 'object', properties: { status: { type: 'string' } } },
};
