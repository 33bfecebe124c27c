import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { ADVISORY_LOCK, transactionLockSql } from './advisory-locks.ts';
import {
  auditKeyId,
  type ChainedFields,
  GENESIS_HASH,
  KEYED_CHAIN,
  keyedHash,
  LEGACY_CHAIN,
  personalDigest,
  pseudonymisedTag,
} from './audit-mac.ts';

export { GENESIS_HASH };

export type AuditEventInput = {
  type: string;
  outcome?: 'success' | 'failure';
  actorId?: string | undefined;
  clientId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  data?: Record<string, unknown>;
};

export type AuditEventRow = ChainedFields & {
  id: number;
  /** 1: legacy unkeyed sha256 link; 2: HMAC under AUDIT_KEY (audit-mac.ts). */
  chain: number;
  key_id: string | null;
  ip_digest: string | null;
  user_agent_digest: string | null;
  /** The random nonce of the two digests; deleted with the clear values by an erasure. */
  personal_nonce: string | null;
  /** Set when an erasure removed ip and user_agent (the proof that a key holder did it). */
  pseudonymised_tag: string | null;
  prev_hash: string;
  hash: string;
};

/** Serialises writers of the chain (appends, and a restore merging its log): held until commit. */
const AUDIT_CHAIN_LOCK = transactionLockSql(ADVISORY_LOCK.auditChain);

/** Written once, by the first process of this release, after the last unkeyed event. */
export const CHAIN_KEYED_EVENT = 'audit.chain_keyed';

/**
 * The append-only, HMAC-chained audit table. `key` is AUDIT_KEY: every process that writes
 * events holds it (auth, API, CLI); MASTER_KEY is not involved.
 */
export function createAuditEventStore(knex: Knex, key: Buffer) {
  const keyId = auditKeyId(key);

  /** Lock, then read the last row, in one round trip: two statements in one simple query. */
  async function lockedHead(trx: Knex.Transaction): Promise<{ hash: string; chain: number } | undefined> {
    // Under READ COMMITTED each statement takes its own snapshot, so the SELECT (started after
    // the lock was granted) sees every event committed by the previous holder of the lock.
    const results = await trx.raw<{ rows: { hash: string; chain: number }[] }[]>(
      `SELECT ${AUDIT_CHAIN_LOCK}; SELECT hash, chain FROM audit_events ORDER BY id DESC LIMIT 1`,
    );
    return results[1]?.rows[0];
  }

  async function insertAfter(trx: Knex.Transaction, prevHash: string, event: AuditEventInput): Promise<AuditEventRow> {
    const row: ChainedFields = {
      occurred_at: new Date(),
      type: event.type,
      outcome: event.outcome ?? 'success',
      actor_id: event.actorId ?? null,
      client_id: event.clientId ?? null,
      ip: event.ip ?? null,
      // Cut on code points so no half surrogate pair is stored (it would not hash the same).
      user_agent: event.userAgent === undefined ? null : Array.from(event.userAgent).slice(0, 512).join(''),
      // Hash exactly what jsonb will hold (Dates become strings, undefined disappears).
      data: JSON.parse(JSON.stringify(event.data ?? {})) as Record<string, unknown>,
    };
    const nonce = row.ip === null && row.user_agent === null ? null : randomBytes(16).toString('hex');
    const link = {
      key_id: keyId,
      prev_hash: prevHash,
      ip_digest: personalDigest(key, nonce, 'ip', row.ip),
      user_agent_digest: personalDigest(key, nonce, 'user_agent', row.user_agent),
    };
    const hash = keyedHash(key, link, row);
    const [inserted] = await trx<AuditEventRow>('audit_events')
      .insert({
        ...row,
        ...link,
        personal_nonce: nonce,
        chain: KEYED_CHAIN,
        data: JSON.stringify(row.data) as unknown as Record<string, unknown>,
        hash,
      })
      .returning('*');
    if (!inserted) throw new Error('audit insert returned no row');
    return inserted;
  }

  return {
    keyId,

    /**
     * Appends one event to the chain; the advisory lock orders concurrent writers. Within `trx`
     * (a restore's last step), the event commits or rolls back with it.
     */
    async append(event: AuditEventInput, trx: Knex | Knex.Transaction = knex): Promise<AuditEventRow> {
      return trx.transaction(async (inner) => insertAfter(inner, (await lockedHead(inner))?.hash ?? GENESIS_HASH, event));
    },

    /**
     * When the newest event is an unkeyed one (written before this release), appends an event
     * that names it: from then on the unkeyed prefix is vouched for by a keyed link, and verify
     * accepts unkeyed events only before it. Returns the anchor, or undefined when none was needed.
     */
    async anchorLegacyChain(): Promise<AuditEventRow | undefined> {
      return knex.transaction(async (trx) => {
        const head = await lockedHead(trx);
        if (head?.chain !== LEGACY_CHAIN) return undefined;
        const count = await trx('audit_events').where('chain', LEGACY_CHAIN).count<{ count: string | number }[]>({ count: '*' });
        return insertAfter(trx, head.hash, {
          type: CHAIN_KEYED_EVENT,
          data: { legacy_events: Number(count[0]?.count ?? 0), legacy_head: head.hash, key_id: keyId },
        });
      });
    },

    /** The key id of the newest keyed event (undefined before the first one). */
    async newestKeyId(): Promise<string | undefined> {
      const row = await knex<AuditEventRow>('audit_events').where('chain', KEYED_CHAIN).orderBy('id', 'desc').first('key_id');
      return row?.key_id ?? undefined;
    },

    /**
     * Erasure (S5): removes the clear IP addresses and user agents of the user's events, and the
     * nonces of their digests. The chain covers only the digests, so it still verifies; each
     * changed row gets a tag proving that a key holder removed them. Returns the rows changed.
     */
    async pseudonymise(actorId: string, trx: Knex | Knex.Transaction = knex): Promise<number> {
      const rows = await trx<AuditEventRow>('audit_events')
        .where('actor_id', actorId)
        .andWhere((q) => void q.whereNotNull('ip').orWhereNotNull('user_agent').orWhereNotNull('personal_nonce'))
        .select('id', 'occurred_at', 'type', 'outcome', 'actor_id', 'client_id', 'data', 'hash');
      for (const row of rows) {
        await trx('audit_events')
          .where('id', row.id)
          .update({ ip: null, user_agent: null, personal_nonce: null, pseudonymised_tag: pseudonymisedTag(key, row.hash, row) });
      }
      return rows.length;
    },

    async list(filter: { actorId?: string; type?: string; limit?: number } = {}): Promise<AuditEventRow[]> {
      const query = knex<AuditEventRow>('audit_events')
        .orderBy('id', 'asc')
        .limit(filter.limit ?? 1000);
      if (filter.actorId) void query.where('actor_id', filter.actorId);
      if (filter.type) void query.where('type', filter.type);
      return query;
    },
  };
}

export type AuditEventStore = ReturnType<typeof createAuditEventStore>;
