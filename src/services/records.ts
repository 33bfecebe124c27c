import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { notFound, Problem, problemType } from '../shared/problem.ts';
import type { RecordRow, RecordStore, RecordType } from '../store/records.ts';
import type { UserStore } from '../store/users.ts';
import type { AuditService } from './audit.ts';
import type { Vault } from './vault.ts';
import { decodeCursor, encodeCursor } from '../shared/cursor.ts';

export type RecordPayload = { label: string; data: Record<string, unknown> };

export type RecordView = {
  id: string;
  type: RecordType;
  label: string;
  data: Record<string, unknown>;
  owner_id: string;
  access: 'owner' | 'shared';
  shared_with?: string[];
  created_at: string;
  updated_at: string;
};

export type Actor = { userId: string; clientId?: string | undefined; ip?: string | undefined };

/** A read of records by someone other than their owner (S11); `data.owner_ids` finds them per owner. */
export const RECORD_ACCESSED_EVENT = 'record.accessed';

const recordNotFound = (): Problem => notFound('No record with this id is available to you.');

/**
 * The records vault: owner-or-shared read, owner-only write and share. A record the caller may
 * not know exists is reported as not found (never 403), so ids cannot be probed.
 */
export function createRecordService(deps: { knex: Knex; records: RecordStore; users: UserStore; vault: Vault; audit: AuditService }) {
  const { knex, records, users, vault, audit } = deps;

  /** Unwraps each owner's data key once per request, not once per record. */
  const keyCache = () => {
    const keys = new Map<string, Promise<CryptoBox>>();
    return (ownerId: string): Promise<CryptoBox> => {
      let key = keys.get(ownerId);
      if (!key) keys.set(ownerId, (key = vault.keyOf(ownerId)));
      return key;
    };
  };

  async function present(row: RecordRow, viewer: string, sharedWith?: string[], keyOf = vault.keyOf): Promise<RecordView> {
    const key = await keyOf(row.owner_id);
    const payload = vault.open(key, row.id, row.owner_id, row.payload_sealed) as RecordPayload;
    return {
      id: row.id,
      type: row.type,
      label: payload.label,
      data: payload.data,
      owner_id: row.owner_id,
      access: row.owner_id === viewer ? 'owner' : 'shared',
      ...(sharedWith ? { shared_with: sharedWith } : {}),
      created_at: row.created_at.toISOString(),
      updated_at: row.updated_at.toISOString(),
    };
  }

  /** The row when the user may read it; otherwise not found. */
  async function readable(userId: string, id: string): Promise<RecordRow> {
    const row = await records.find(id);
    if (!row) throw recordNotFound();
    if (row.owner_id !== userId && !(await records.isSharedWith(id, userId))) throw recordNotFound();
    return row;
  }

  /** The row when the user owns it; a reader with a share learns it is read-only (403). */
  async function owned(userId: string, id: string): Promise<RecordRow> {
    const row = await readable(userId, id);
    if (row.owner_id !== userId)
      throw new Problem({
        status: 403,
        type: problemType('read-only-share'),
        title: 'Forbidden',
        detail: 'This record is shared with you read-only.',
      });
    return row;
  }

  const record = (actor: Actor, type: string, data: Record<string, unknown>) =>
    audit.record({ type, actorId: actor.userId, clientId: actor.clientId, ip: actor.ip, data });

  /**
   * S11: records read by someone other than their owner, one event per request however many
   * records it shows (a listing is one event). Owners' own reads are not disclosures and are not
   * logged. Stored before the answer leaves: an access that cannot be recorded is refused.
   */
  async function recordAccess(actor: Actor, via: 'get' | 'list', rows: readonly RecordRow[]): Promise<void> {
    const disclosed = rows.filter((row) => row.owner_id !== actor.userId);
    if (disclosed.length === 0) return;
    await audit.record(
      {
        type: RECORD_ACCESSED_EVENT,
        actorId: actor.userId,
        clientId: actor.clientId,
        ip: actor.ip,
        data: {
          via,
          records: disclosed.map((row) => ({ id: row.id, owner_id: row.owner_id, type: row.type })),
          owner_ids: [...new Set(disclosed.map((row) => row.owner_id))],
        },
      },
      { required: true },
    );
  }

  return {
    async list(actor: Actor, options: { limit: number; cursor?: string | undefined; type?: RecordType | undefined }) {
      const userId = actor.userId;
      const after = options.cursor ? decodeCursor(options.cursor) : undefined;
      const rows = await records.listVisible(userId, { limit: options.limit + 1, after, type: options.type });
      const page = rows.slice(0, options.limit);
      const last = page.at(-1);
      const keys = keyCache();
      const items = await Promise.all(page.map((row) => present(row, userId, undefined, keys)));
      await recordAccess(actor, 'list', page);
      return {
        items,
        next_cursor: rows.length > options.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
      };
    },

    async create(actor: Actor, input: { type: RecordType } & RecordPayload): Promise<RecordView> {
      const row = await knex.transaction(async (trx) => {
        const key = await vault.ensureKey(actor.userId, trx);
        const id = randomUUID();
        const sealed = vault.seal(key, id, actor.userId, { label: input.label, data: input.data });
        return records.insert({ id, owner_id: actor.userId, type: input.type, payload_sealed: sealed }, trx);
      });
      await record(actor, 'record.created', { record_id: row.id, record_type: row.type });
      return present(row, actor.userId, []);
    },

    async get(actor: Actor, id: string): Promise<RecordView> {
      const userId = actor.userId;
      const row = await readable(userId, id);
      const shares = row.owner_id === userId ? (await records.sharesOf([id])).map((s) => s.user_id) : undefined;
      const view = await present(row, userId, shares);
      await recordAccess(actor, 'get', [row]);
      return view;
    },

    async update(
      actor: Actor,
      id: string,
      patch: { type?: RecordType; label?: string; data?: Record<string, unknown> },
    ): Promise<RecordView> {
      const row = await owned(actor.userId, id);
      const key = await vault.keyOf(row.owner_id);
      const current = vault.open(key, row.id, row.owner_id, row.payload_sealed) as RecordPayload;
      const next: RecordPayload = { label: patch.label ?? current.label, data: patch.data ?? current.data };
      const updated = await records.update(id, {
        ...(patch.type ? { type: patch.type } : {}),
        payload_sealed: vault.seal(key, row.id, row.owner_id, next),
      });
      if (!updated) throw recordNotFound();
      await record(actor, 'record.updated', { record_id: id, fields: Object.keys(patch).sort() });
      return present(
        updated,
        actor.userId,
        (await records.sharesOf([id])).map((s) => s.user_id),
      );
    },

    async remove(actor: Actor, id: string): Promise<void> {
      await owned(actor.userId, id);
      await records.remove(id);
      await record(actor, 'record.deleted', { record_id: id });
    },

    async share(actor: Actor, id: string, targetUserId: string): Promise<{ created: boolean }> {
      await owned(actor.userId, id);
      if (targetUserId === actor.userId)
        throw new Problem({
          status: 422,
          type: problemType('share-with-self'),
          title: 'Cannot share with yourself',
          detail: 'You already own this record.',
        });
      const target = await users.findById(targetUserId);
      if (!target || target.disabled) throw notFound('No active user with this id.');
      const created = await records.addShare(id, targetUserId);
      if (created) await record(actor, 'record.shared', { record_id: id, with_user: targetUserId });
      return { created };
    },

    async unshare(actor: Actor, id: string, targetUserId: string): Promise<void> {
      await owned(actor.userId, id);
      if (!(await records.removeShare(id, targetUserId))) throw notFound('This record is not shared with that user.');
      await record(actor, 'record.unshared', { record_id: id, with_user: targetUserId });
    },
  };
}

export type RecordService = ReturnType<typeof createRecordService>;
