import type { Knex } from 'knex';
import type { AuditEventRow } from './audit-events.ts';
import {
  auditKeyId,
  GENESIS_HASH,
  KEYED_CHAIN,
  keyedHash,
  LEGACY_CHAIN,
  legacyHash,
  PERSONAL_FIELDS,
  personalDigest,
  pseudonymisedTag,
} from './audit-mac.ts';

/** audit_events.id is a bigint: pg returns it as a string, whatever the row type says. */
export const eventId = (id: number | string): number => Number(id);

export type ChainReport =
  | { ok: true; events: number; legacy_events: number; key_id: string; first_id: number | null; last_id: number | null; last_hash: string }
  | { ok: false; events: number; broken_at: number; reason: string; expected: string; found: string };

/** Why a row does not verify, or undefined when it does (its link was checked before). */
function rowProblem(key: Buffer, keyId: string, row: AuditEventRow): { reason: string; expected: string; found: string } | undefined {
  const modified = 'the event was modified after it was written (its hash does not match its content)';
  if (row.chain === LEGACY_CHAIN) {
    if (row.pseudonymised_tag !== null) {
      // The legacy hash covers the clear values an erasure removed; the tag vouches for the rest.
      const tag = pseudonymisedTag(key, row.hash, row);
      if (row.ip !== null || row.user_agent !== null || tag !== row.pseudonymised_tag)
        return { reason: modified, expected: tag, found: row.pseudonymised_tag };
      return undefined;
    }
    const recomputed = legacyHash(row.prev_hash, row);
    return recomputed === row.hash ? undefined : { reason: modified, expected: recomputed, found: row.hash };
  }
  if (row.key_id !== keyId) {
    return {
      reason: `the event was chained under AUDIT_KEY ${String(row.key_id)}, not under the configured AUDIT_KEY (${keyId}): run verify with the key the log was written with (if that is the configured key, the event was forged)`,
      expected: keyId,
      found: String(row.key_id),
    };
  }
  let removed = false;
  for (const field of PERSONAL_FIELDS) {
    const digest = row[`${field}_digest`];
    // eslint-disable-next-line security/detect-object-injection -- field is one of the constant PERSONAL_FIELDS
    const clear = row[field];
    if (clear === null) {
      removed ||= digest !== null;
      continue;
    }
    const expected = personalDigest(key, row.personal_nonce, field, clear);
    if (expected !== digest) return { reason: modified, expected: expected ?? '', found: String(digest) };
  }
  if (removed) {
    // Clear values may only vanish through an erasure, which holds the key and leaves a tag.
    const tag = pseudonymisedTag(key, row.hash, row);
    if (tag !== row.pseudonymised_tag) {
      return {
        reason: 'a personal field (ip, user agent) was removed without AUDIT_KEY (not by an erasure)',
        expected: tag,
        found: String(row.pseudonymised_tag),
      };
    }
  }
  const recomputed = keyedHash(key, { ...row, key_id: keyId }, row);
  return recomputed === row.hash ? undefined : { reason: modified, expected: recomputed, found: row.hash };
}

/**
 * Walks the audit chain in id order, in batches, up to the last event that existed when the walk
 * started (events appended meanwhile are checked next time). Appends take an advisory lock and
 * read the last hash inside it, so ids grow in chain order; a rolled-back append leaves an id gap,
 * which is fine: each event must link to the event stored before it, whatever its id.
 * Keyed events (chain 2) are checked with AUDIT_KEY; unkeyed events written before this release
 * (chain 1) are accepted only as a prefix that a keyed event links to: without the key nobody can
 * add one at the end or relabel keyed events as unkeyed.
 * Reports the first broken link: an edited event (its hash no longer matches its content), or a
 * deleted or inserted one (the next event's prev_hash no longer names its predecessor).
 */
export async function verifyAuditChain(
  knex: Knex | Knex.Transaction,
  key: Buffer,
  options: { batchSize?: number } = {},
): Promise<ChainReport> {
  const batchSize = options.batchSize ?? 1000;
  const keyId = auditKeyId(key);
  const bound = await knex('audit_events').max<{ max: number | string | null }>('id as max').first();
  const lastId = bound?.max == null ? null : Number(bound.max);
  let expectedPrev = GENESIS_HASH;
  let firstId: number | null = null;
  let firstLegacyId: number | null = null;
  let afterId = 0;
  let events = 0;
  let legacyEvents = 0;
  let keyedEvents = 0;
  if (lastId === null)
    return { ok: true, events: 0, legacy_events: 0, key_id: keyId, first_id: null, last_id: null, last_hash: GENESIS_HASH };
  for (;;) {
    const rows = await knex<AuditEventRow>('audit_events')
      .where('id', '>', afterId)
      .andWhere('id', '<=', lastId)
      .orderBy('id', 'asc')
      .limit(batchSize);
    if (rows.length === 0) break;
    for (const row of rows) {
      const id = eventId(row.id);
      firstId ??= id;
      const broken = (reason: string, expected: string, found: string): ChainReport => ({
        ok: false,
        events,
        broken_at: id,
        reason,
        expected,
        found,
      });
      if (row.chain !== KEYED_CHAIN && row.chain !== LEGACY_CHAIN)
        return broken('unknown chain version', `${LEGACY_CHAIN} or ${KEYED_CHAIN}`, String(row.chain));
      if (row.chain === LEGACY_CHAIN && keyedEvents > 0) {
        return broken(
          'an unkeyed event after keyed ones (unkeyed events are accepted only before the first keyed event)',
          String(KEYED_CHAIN),
          String(row.chain),
        );
      }
      if (row.prev_hash !== expectedPrev) {
        const reason =
          events === 0
            ? 'the first event does not start the chain (events before it were deleted?)'
            : 'prev_hash does not match the hash of the event before it (an event was deleted or inserted)';
        return broken(reason, expectedPrev, row.prev_hash);
      }
      const problem = rowProblem(key, keyId, row);
      if (problem) return broken(problem.reason, problem.expected, problem.found);
      if (row.chain === LEGACY_CHAIN) {
        legacyEvents += 1;
        firstLegacyId ??= id;
      } else keyedEvents += 1;
      expectedPrev = row.hash;
      events += 1;
      afterId = id;
    }
  }
  if (legacyEvents > 0 && keyedEvents === 0) {
    // Anyone can write unkeyed events; only a keyed event after them says they were there before.
    return {
      ok: false,
      events,
      broken_at: firstLegacyId ?? 0,
      reason:
        'unkeyed events with no keyed event after them: nothing vouches for them (every process of this release anchors them at start)',
      expected: String(KEYED_CHAIN),
      found: String(LEGACY_CHAIN),
    };
  }
  return { ok: true, events, legacy_events: legacyEvents, key_id: keyId, first_id: firstId, last_id: afterId, last_hash: expectedPrev };
}

/** Keys whose values never leave the database in an export, whatever an event put there. */
const SECRET_KEY =
  /pass(word|phrase)|secret|private|otp|recovery|^(access|refresh|id|registration_access|initial_access)_?token$|^code(_verifier)?$|^(cookie|master|backup)_?key/i;

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redact(v)]),
    );
  }
  return value;
}

/** A stored event as exported: `time` instead of `occurred_at`, data redacted. */
export type ExportedEvent = Pick<
  AuditEventRow,
  'id' | 'type' | 'outcome' | 'actor_id' | 'client_id' | 'ip' | 'user_agent' | 'prev_hash' | 'hash'
> & {
  time: string;
  data: unknown;
};

/**
 * Events at or after `since`, oldest first, in batches, as SIEM-ready objects (one per line when
 * written). Secrets are never recorded in events (ASVS 16.2.5); the redaction is a second net.
 */
export async function* exportAuditEvents(knex: Knex, since: Date | undefined, batchSize = 1000): AsyncGenerator<ExportedEvent> {
  let afterId = 0;
  for (;;) {
    const query = knex<AuditEventRow>('audit_events').where('id', '>', afterId).orderBy('id', 'asc').limit(batchSize);
    if (since) void query.andWhere('occurred_at', '>=', since);
    const rows = await query;
    for (const row of rows) {
      afterId = eventId(row.id);
      yield {
        id: afterId,
        time: row.occurred_at.toISOString(),
        type: row.type,
        outcome: row.outcome,
        actor_id: row.actor_id,
        client_id: row.client_id,
        ip: row.ip,
        user_agent: row.user_agent,
        data: redact(row.data),
        prev_hash: row.prev_hash,
        hash: row.hash,
      };
    }
    if (rows.length < batchSize) return;
  }
}
