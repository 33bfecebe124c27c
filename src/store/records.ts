import type { Knex } from 'knex';
import { CURSOR_AT_SQL, type KeysetCursor } from '../shared/cursor.ts';

export const RECORD_TYPES = ['note', 'identity', 'financial', 'medical', 'document'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export type RecordRow = {
  id: string;
  owner_id: string;
  type: RecordType;
  payload_sealed: string;
  created_at: Date;
  updated_at: Date;
};

export type ShareRow = { record_id: string; user_id: string; created_at: Date };

/**
 * The vault tables (records, record_shares); payloads arrive and leave sealed. A record_shares
 * row is an accepted share (read access); offers wait in record_share_offers (share-offers.ts).
 */
export function createRecordStore(knex: Knex) {
  return {
    async insert(row: Omit<RecordRow, 'created_at' | 'updated_at'>, trx: Knex = knex): Promise<RecordRow> {
      const [inserted] = await trx<RecordRow>('records').insert(row).returning('*');
      if (!inserted) throw new Error('record insert returned no row');
      return inserted;
    },

    async find(id: string, trx: Knex = knex): Promise<RecordRow | undefined> {
      return trx<RecordRow>('records').where({ id }).first();
    },

    /** The record's owner, without its payload (the auth server's role cannot read payloads, S3). */
    async ownerOf(id: string, trx: Knex = knex): Promise<string | undefined> {
      const row = await trx<RecordRow>('records').where({ id }).first('owner_id');
      return row?.owner_id;
    },

    async update(id: string, changes: { type?: RecordType; payload_sealed: string }, trx: Knex = knex): Promise<RecordRow | undefined> {
      const [row] = await trx<RecordRow>('records')
        .where({ id })
        .update({ ...changes, updated_at: trx.fn.now() as unknown as Date })
        .returning('*');
      return row;
    },

    async remove(id: string, trx: Knex = knex): Promise<boolean> {
      return (await trx('records').where({ id }).delete()) > 0;
    },

    /** Records the user owns or that are shared with them, newest first, after the cursor. */
    async listVisible(
      userId: string,
      options: { limit: number; after?: KeysetCursor | undefined; type?: RecordType | undefined },
    ): Promise<(RecordRow & { cursor_at: string })[]> {
      const query = knex<RecordRow>('records')
        .select('*', knex.raw(CURSOR_AT_SQL))
        .where((q) => {
          void q.where('owner_id', userId).orWhereIn('id', knex('record_shares').where('user_id', userId).select('record_id'));
        })
        .orderBy([
          { column: 'created_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(options.limit);
      if (options.type) void query.where('type', options.type);
      if (options.after) void query.whereRaw('(created_at, id) < (?::timestamptz, ?::uuid)', [options.after.at, options.after.id]);
      return query;
    },

    async listOwned(ownerId: string, trx: Knex = knex): Promise<RecordRow[]> {
      return trx<RecordRow>('records').where({ owner_id: ownerId }).orderBy('created_at');
    },

    async isSharedWith(recordId: string, userId: string, trx: Knex = knex): Promise<boolean> {
      return (await trx('record_shares').where({ record_id: recordId, user_id: userId }).first()) !== undefined;
    },

    async sharesOf(recordIds: readonly string[]): Promise<ShareRow[]> {
      if (recordIds.length === 0) return [];
      return knex<ShareRow>('record_shares').whereIn('record_id', recordIds).orderBy('created_at');
    },

    /** Shares others granted to this user (for the GDPR export). */
    async sharedWith(userId: string): Promise<(ShareRow & { owner_id: string })[]> {
      return knex('record_shares as s')
        .join('records as r', 'r.id', 's.record_id')
        .where('s.user_id', userId)
        .orderBy('s.created_at')
        .select<(ShareRow & { owner_id: string })[]>('s.record_id', 's.user_id', 's.created_at', 'r.owner_id');
    },

    /** Accepted shares of the user with each record's type and owner, newest first (no payload). */
    async receivedShares(
      userId: string,
    ): Promise<{ record_id: string; record_type: RecordType; owner_id: string; owner_email: string; created_at: Date }[]> {
      return knex('record_shares as s')
        .join('records as r', 'r.id', 's.record_id')
        .join('users as u', 'u.id', 'r.owner_id')
        .where('s.user_id', userId)
        .orderBy([
          { column: 's.created_at', order: 'desc' },
          { column: 's.record_id', order: 'desc' },
        ])
        .select('s.record_id', 'r.type as record_type', 'r.owner_id', 'u.email as owner_email', 's.created_at');
    },

    /** True when newly shared, false when it already was. Only for an accepted offer (R13). */
    async addShare(recordId: string, userId: string, trx: Knex = knex): Promise<boolean> {
      const rows = await trx('record_shares')
        .insert({ record_id: recordId, user_id: userId })
        .onConflict(['record_id', 'user_id'])
        .ignore()
        .returning('record_id');
      return rows.length > 0;
    },

    async removeShare(recordId: string, userId: string, trx: Knex = knex): Promise<boolean> {
      return (await trx('record_shares').where({ record_id: recordId, user_id: userId }).delete()) > 0;
    },
  };
}

export type RecordStore = ReturnType<typeof createRecordStore>;
