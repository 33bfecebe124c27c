// Over 250 lines: the vault's records and their sharing (shares, offers, cooldowns) are one set
// of rules over the same rows, checked in the same transactions; splitting sharing into its own
// service is left to a later step of issue 18.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { notFound, Problem, problemType } from '../shared/problem.ts';
import type { RecordRow, RecordStore, RecordType } from '../store/records.ts';
import type { ShareOfferStore } from '../store/share-offers.ts';
import type { AuditService } from './audit.ts';
import type { Vault } from './vault.ts';
import { decodeCursor, encodeCursor } from '../shared/cursor.ts';

/** The kinds of record the vault holds (the store's column values). */
export type { RecordType } from '../store/records.ts';

export type RecordPayload = { label: string; data: Record<string, unknown> };

export type RecordView = {
  id: string;
  type: RecordType;
  label: string;
  data: Record<string, unknown>;
  owner_id: string;
  access: 'owner' | 'shared';
  /** Owner only: who accepted a share (and can read the record). */
  shared_with?: string[];
  /** Owner only: offers not (yet) accepted; a declined offer is shown as waiting too. */
  offered_to?: string[];
  created_at: string;
  updated_at: string;
};

export type Actor = { userId: string; clientId?: string | undefined; ip?: string | undefined };

/** What the sharer learns about a share: offered (waiting, or declined unknown to them) or accepted. */
export type ShareState = 'offered' | 'accepted';

/** An offer as its recipient sees it (R13): who offered, which record (id and type), when. */
export type IncomingOffer = {
  record_id: string;
  record_type: RecordType;
  from: { id: string; email: string };
  offered_at: string;
};

/** An accepted share as its recipient sees it. */
export type ReceivedShare = {
  record_id: string;
  record_type: RecordType;
  from: { id: string; email: string };
  shared_at: string;
};

export type ShareLimits = { pendingPerSharer: number; pendingPerRecipient: number; declineCooldownDays: number };

/** A read of records by someone other than their owner (S11); `data.owner_ids` finds them per owner. */
export const RECORD_ACCESSED_EVENT = 'record.accessed';

const recordNotFound = (): Problem => notFound('No record with this id is available to you.');
const offerNotFound = (): Problem => notFound('No offer of this record is waiting for you.');
const DAY_MS = 86_400_000;

/**
 * The records vault: owner-or-shared read, owner-only write and share. A record the caller may
 * not know exists is reported as not found (never 403), so ids cannot be probed.
 */
export function createRecordService(deps: {
  knex: Knex;
  records: RecordStore;
  offers: ShareOfferStore;
  vault: Vault;
  audit: AuditService;
  limits: ShareLimits;
}) {
  const { knex, records, offers, vault, audit, limits } = deps;

  /** Unwraps each owner's data key once per request, not once per record. */
  const keyCache = () => {
    const keys = new Map<string, Promise<CryptoBox>>();
    return (ownerId: string): Promise<CryptoBox> => {
      let key = keys.get(ownerId);
      if (!key) keys.set(ownerId, (key = vault.keyOf(ownerId)));
      return key;
    };
  };

  /** The owner's view of who may read, and who was offered, the record. */
  async function sharing(id: string): Promise<{ shared_with: string[]; offered_to: string[] }> {
    const [accepted, waiting] = await Promise.all([records.sharesOf([id]), offers.ofRecords([id])]);
    return { shared_with: accepted.map((s) => s.user_id), offered_to: waiting.map((o) => o.recipient_id) };
  }

  async function present(
    row: RecordRow,
    viewer: string,
    shares?: { shared_with: string[]; offered_to: string[] },
    keyOf = vault.keyOf,
  ): Promise<RecordView> {
    const key = await keyOf(row.owner_id);
    const payload = vault.open(key, row.id, row.owner_id, row.payload_sealed) as RecordPayload;
    return {
      id: row.id,
      type: row.type,
      label: payload.label,
      data: payload.data,
      owner_id: row.owner_id,
      access: row.owner_id === viewer ? 'owner' : 'shared',
      ...shares,
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
      const after = options.cursor ? decodeCursor('records', options.cursor) : undefined;
      const rows = await records.listVisible(userId, { limit: options.limit + 1, after, type: options.type });
      const page = rows.slice(0, options.limit);
      const last = page.at(-1);
      const keys = keyCache();
      const items = await Promise.all(page.map((row) => present(row, userId, undefined, keys)));
      await recordAccess(actor, 'list', page);
      return {
        items,
        next_cursor: rows.length > options.limit && last ? encodeCursor('records', { at: last.cursor_at, id: last.id }) : null,
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
      return present(row, actor.userId, { shared_with: [], offered_to: [] });
    },

    async get(actor: Actor, id: string): Promise<RecordView> {
      const userId = actor.userId;
      const row = await readable(userId, id);
      const shares = row.owner_id === userId ? await sharing(id) : undefined;
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
      return present(updated, actor.userId, await sharing(id));
    },

    async remove(actor: Actor, id: string): Promise<void> {
      await owned(actor.userId, id);
      await records.remove(id);
      await record(actor, 'record.deleted', { record_id: id });
    },

    /**
     * Offers read access to a record the actor owns (R13): the recipient sees the offer and
     * nothing of the record (its label stays sealed) until they accept it. The answer and the
     * queries behind it are the same whether or not `targetUserId` is an account, so offers do
     * not tell which account ids exist; an offer to an id that is no account is never delivered.
     * Offers from a sharer the recipient declined within the cooldown are stored declined.
     */
    async share(actor: Actor, id: string, targetUserId: string): Promise<{ created: boolean; state: ShareState }> {
      await owned(actor.userId, id);
      if (targetUserId === actor.userId)
        throw new Problem({
          status: 422,
          type: problemType('share-with-self'),
          title: 'Cannot share with yourself',
          detail: 'You already own this record.',
        });
      const outcome = await knex.transaction(async (trx) => {
        await offers.lockParties(trx, actor.userId, targetUserId);
        if (await records.isSharedWith(id, targetUserId, trx)) return { created: false, state: 'accepted' as const };
        if (await offers.find(id, targetUserId, trx)) return { created: false, state: 'offered' as const };
        if ((await offers.countBySharer(actor.userId, trx)) >= limits.pendingPerSharer)
          throw new Problem({
            status: 409,
            type: problemType('share-offers-limit'),
            title: 'Too many offers waiting',
            detail: `You have ${limits.pendingPerSharer} offers that are not accepted; revoke some before offering more.`,
          });
        if ((await offers.countPendingFor(targetUserId, trx)) >= limits.pendingPerRecipient)
          throw new Problem({
            status: 409,
            type: problemType('share-recipient-full'),
            title: 'The recipient has too many offers waiting',
            detail: 'This recipient cannot receive more offers until they answer some. Try again later.',
          });
        const cooldownStart = new Date(Date.now() - limits.declineCooldownDays * DAY_MS);
        const heldOff = await offers.declinedSince(targetUserId, actor.userId, cooldownStart, trx);
        await offers.insert(
          { record_id: id, recipient_id: targetUserId, sharer_id: actor.userId, state: heldOff ? 'declined' : 'offered' },
          trx,
        );
        return { created: true, state: 'offered' as const };
      });
      if (outcome.created) await record(actor, 'record.shared', { record_id: id, with_user: targetUserId });
      return outcome;
    },

    /** Takes back an accepted share or an offer (answered or not); 404 when there is neither. */
    async unshare(actor: Actor, id: string, targetUserId: string): Promise<void> {
      await owned(actor.userId, id);
      const was = await knex.transaction(async (trx) => {
        if (await records.removeShare(id, targetUserId, trx)) return 'accepted';
        if (await offers.remove(id, targetUserId, trx)) return 'offered';
        return undefined;
      });
      if (!was) throw notFound('This record is not shared with that user.');
      await record(actor, 'record.unshared', { record_id: id, with_user: targetUserId, was });
    },

    /** Offers waiting for the actor, newest first. Reads no record content: no access event. */
    async incomingOffers(actor: Actor): Promise<IncomingOffer[]> {
      const rows = await offers.incoming(actor.userId, limits.pendingPerRecipient);
      return rows.map((row) => ({
        record_id: row.record_id,
        record_type: row.record_type,
        from: { id: row.sharer_id, email: row.sharer_email },
        offered_at: row.created_at.toISOString(),
      }));
    },

    /**
     * The recipient accepts: from now on the record is in their listings and reads of it are
     * accesses (S11). The same 404 for anything not offered to them, so the sharer's other
     * records cannot be probed.
     */
    async acceptOffer(actor: Actor, recordId: string): Promise<void> {
      const ownerId = await knex.transaction(async (trx) => {
        const offer = await offers.findPendingForUpdate(recordId, actor.userId, trx);
        if (!offer) throw offerNotFound();
        await offers.remove(recordId, actor.userId, trx);
        await records.addShare(recordId, actor.userId, trx);
        return offer.sharer_id;
      });
      await record(actor, 'record.share_accepted', { record_id: recordId, owner_id: ownerId });
    },

    /**
     * The recipient declines: the offer leaves their list, the sharer still sees it as offered,
     * and the sharer's new offers to them are held back for the cooldown. The event names the
     * sharer as `owner_id`, not as a user the event is about, so it is not in the sharer's export.
     */
    async declineOffer(actor: Actor, recordId: string): Promise<void> {
      const ownerId = await knex.transaction(async (trx) => {
        const offer = await offers.findPendingForUpdate(recordId, actor.userId, trx);
        if (!offer) throw offerNotFound();
        await offers.markDeclined(offer, trx);
        await offers.holdOff(actor.userId, offer.sharer_id, trx);
        return offer.sharer_id;
      });
      await record(actor, 'record.share_declined', { record_id: recordId, owner_id: ownerId });
    },

    /** Accepted shares of the actor (whose reads their owners see): record id and type, owner, since when. */
    async receivedShares(actor: Actor): Promise<ReceivedShare[]> {
      return (await records.receivedShares(actor.userId)).map((row) => ({
        record_id: row.record_id,
        record_type: row.record_type,
        from: { id: row.owner_id, email: row.owner_email },
        shared_at: row.created_at.toISOString(),
      }));
    },

    /**
     * The recipient leaves a share they accepted: the record leaves their listings, so their
     * later reads are no longer shown to its owner, and the owner's new offers are held back for
     * the cooldown as after a decline. 404 alike for anything not shared with them.
     */
    async leaveShare(actor: Actor, recordId: string): Promise<void> {
      const ownerId = await knex.transaction(async (trx) => {
        const owner = await records.ownerOf(recordId, trx);
        if (!owner || owner === actor.userId || !(await records.removeShare(recordId, actor.userId, trx))) throw recordNotFound();
        await offers.holdOff(actor.userId, owner, trx);
        return owner;
      });
      await record(actor, 'record.share_left', { record_id: recordId, owner_id: ownerId });
    },
  };
}

export type RecordService = ReturnType<typeof createRecordService>;
