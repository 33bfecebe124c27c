import type { AuditSearchStore } from '../store/audit-search.ts';

/** One read of some of the owner's records by someone else, as the owner may see it. */
export type RecordAccess = {
  at: Date;
  /** The reader's account id: the id the owner shared with, so nothing new about the reader. */
  readerId: string | null;
  clientId: string | null;
  via: string;
  records: { id: string; type: string }[];
};

type AccessData = { via?: unknown; records?: unknown };
type AccessedRecord = { id: string; owner_id: string; type: string };

const isAccessedRecord = (value: unknown): value is AccessedRecord => {
  const r = value as Partial<AccessedRecord> | null;
  return typeof r?.id === 'string' && typeof r.owner_id === 'string' && typeof r.type === 'string';
};

/**
 * The owner's access history (S11): who read which of their records, when, through which app.
 * Only the owner's own records of each event are shown (a listing may show other owners' too),
 * and nothing of the reader beyond their account id and app: no address, user agent or email
 * (the owner shared with the account id; showing the email would let a sharer learn the email
 * of any account id they can guess).
 */
export async function accessHistory(search: AuditSearchStore, ownerId: string, limit = 20): Promise<RecordAccess[]> {
  const rows = await search.accessesOf(ownerId, limit);
  return rows.flatMap((row) => {
    const data = row.data as AccessData;
    const records = (Array.isArray(data.records) ? data.records : []).filter(isAccessedRecord).filter((r) => r.owner_id === ownerId);
    if (records.length === 0) return [];
    return [
      {
        at: row.occurred_at,
        readerId: row.actor_id,
        clientId: row.client_id,
        via: typeof data.via === 'string' ? data.via : 'get',
        records: records.map((r) => ({ id: r.id, type: r.type })),
      },
    ];
  });
}
