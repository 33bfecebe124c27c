import type { Knex } from 'knex';
import { ADVISORY_LOCK_NAMESPACE, lockUuidForTransaction } from './advisory-locks.ts';
import type { RecordType } from './records.ts';

/** `declined` offers look `offered` to the sharer (a decline is not announced). */
export type OfferState = 'offered' | 'declined';

export type OfferRow = {
  record_id: string;
  recipient_id: string;
  sharer_id: string;
  state: OfferState;
  created_at: Date;
  decided_at: Date | null;
};

/** An offer as its recipient sees it: who offered which record (id and type only), when. */
export type IncomingOfferRow = {
  record_id: string;
  record_type: RecordType;
  sharer_id: string;
  sharer_email: string;
  created_at: Date;
};

/**
 * Record share offers (migrations/…_create_share_offers.ts): waiting for the recipient, who
 * accepts (the row moves to record_shares) or declines. The recipient id need not be an account.
 */
export function createShareOfferStore(knex: Knex) {
  return {
    /**
     * Serialises offers by the same sharer and to the same recipient until the transaction ends,
     * so two concurrent offers cannot both pass a pending-offer limit.
     */
    async lockParties(trx: Knex.Transaction, sharerId: string, recipientId: string): Promise<void> {
      // One namespace per role, so A→B and B→A never wait on each other's locks.
      await lockUuidForTransaction(trx, ADVISORY_LOCK_NAMESPACE.shareSharer, sharerId);
      await lockUuidForTransaction(trx, ADVISORY_LOCK_NAMESPACE.shareRecipient, recipientId);
    },

    async find(recordId: string, recipientId: string, trx: Knex = knex): Promise<OfferRow | undefined> {
      return trx<OfferRow>('record_share_offers').where({ record_id: recordId, recipient_id: recipientId }).first();
    },

    /** The recipient's offer of this record if still waiting for them, locked for the decision. */
    async findPendingForUpdate(recordId: string, recipientId: string, trx: Knex.Transaction): Promise<OfferRow | undefined> {
      return (
        trx<OfferRow>('record_share_offers')
          .where({ record_id: recordId, recipient_id: recipientId, state: 'offered' })
          // As in the listing: offers of a disabled sharer are held back.
          .whereExists(
            (q) =>
              void q.select(trx.raw('1')).from('users').whereRaw('users.id = record_share_offers.sharer_id').where('users.disabled', false),
          )
          .forUpdate()
          .first()
      );
    },

    /** Offers the sharer has made that are not accepted (declined ones too: the sharer sees them as waiting). */
    async countBySharer(sharerId: string, trx: Knex = knex): Promise<number> {
      const row = await trx('record_share_offers').where({ sharer_id: sharerId }).count<{ count: string | number }>({ count: '*' }).first();
      return Number(row?.count ?? 0);
    },

    /** Offers waiting for the recipient's answer. */
    async countPendingFor(recipientId: string, trx: Knex = knex): Promise<number> {
      const row = await trx('record_share_offers')
        .where({ recipient_id: recipientId, state: 'offered' })
        .count<{ count: string | number }>({ count: '*' })
        .first();
      return Number(row?.count ?? 0);
    },

    /** Whether the recipient declined an offer of this sharer since the given time. */
    async declinedSince(recipientId: string, sharerId: string, since: Date, trx: Knex = knex): Promise<boolean> {
      const row: unknown = await trx('share_declines')
        .where({ recipient_id: recipientId, sharer_id: sharerId })
        .where('declined_at', '>', since)
        .first(trx.raw('1'));
      return row !== undefined;
    },

    async insert(row: { record_id: string; recipient_id: string; sharer_id: string; state: OfferState }, trx: Knex = knex): Promise<void> {
      await trx('record_share_offers').insert(row);
    },

    async remove(recordId: string, recipientId: string, trx: Knex = knex): Promise<OfferRow | undefined> {
      const [row] = await trx<OfferRow>('record_share_offers')
        .where({ record_id: recordId, recipient_id: recipientId })
        .delete()
        .returning('*');
      return row;
    },

    async markDeclined(offer: OfferRow, trx: Knex.Transaction): Promise<void> {
      await trx('record_share_offers')
        .where({ record_id: offer.record_id, recipient_id: offer.recipient_id })
        .update({ state: 'declined', decided_at: trx.fn.now() });
    },

    /** Starts (or restarts) the cooldown in which the sharer's new offers to the recipient are held back. */
    async holdOff(recipientId: string, sharerId: string, trx: Knex.Transaction): Promise<void> {
      await trx('share_declines')
        .insert({ recipient_id: recipientId, sharer_id: sharerId })
        .onConflict(['recipient_id', 'sharer_id'])
        .merge({ declined_at: trx.fn.now() });
    },

    /** Offers of these records not (yet) accepted, for their owner. */
    async ofRecords(recordIds: readonly string[], trx: Knex = knex): Promise<OfferRow[]> {
      if (recordIds.length === 0) return [];
      return trx<OfferRow>('record_share_offers')
        .whereIn('record_id', recordIds)
        .orderBy([{ column: 'created_at' }, { column: 'recipient_id' }]);
    },

    /**
     * Offers waiting for the recipient, newest first, at most `limit`; offers of a disabled sharer
     * are held back. Only the record's id and type are read: its label stays sealed.
     */
    async incoming(recipientId: string, limit: number): Promise<IncomingOfferRow[]> {
      return knex('record_share_offers as o')
        .join('records as r', 'r.id', 'o.record_id')
        .join('users as u', 'u.id', 'o.sharer_id')
        .where({ 'o.recipient_id': recipientId, 'o.state': 'offered', 'u.disabled': false })
        .orderBy([
          { column: 'o.created_at', order: 'desc' },
          { column: 'o.record_id', order: 'desc' },
        ])
        .limit(limit)
        .select<IncomingOfferRow[]>('o.record_id', 'r.type as record_type', 'o.sharer_id', 'u.email as sharer_email', 'o.created_at');
    },

    /** Offers the user has received (any state), for their export. */
    async receivedBy(recipientId: string): Promise<OfferRow[]> {
      return knex<OfferRow>('record_share_offers').where({ recipient_id: recipientId }).orderBy('created_at');
    },

    /** Offers made to an erased account id: the recipient id has no foreign key to cascade. */
    async removeAllTo(recipientId: string, trx: Knex = knex): Promise<number> {
      return trx('record_share_offers').where({ recipient_id: recipientId }).delete();
    },
  };
}

export type ShareOfferStore = ReturnType<typeof createShareOfferStore>;
