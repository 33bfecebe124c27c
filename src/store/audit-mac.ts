import { createHash, createHmac } from 'node:crypto';

/**
 * The audit log's integrity functions. Since chain version 2 every link is an HMAC-SHA256 under
 * AUDIT_KEY, so whoever can write the table but lacks the key cannot rebuild the chain after an
 * edit. Personal fields (IP address, user agent) enter the HMAC only as commitments (a keyed
 * digest with a random nonce), so an erasure can remove the clear values and the nonce later and
 * the chain still verifies (S5).
 */

/** Rows written before keyed chaining (sha256 over the clear row, no key). */
export const LEGACY_CHAIN = 1;
/** HMAC under AUDIT_KEY over the row with digests of its personal fields. */
export const KEYED_CHAIN = 2;

export const GENESIS_HASH = '0'.repeat(64);

/** The fields of an event that the chain covers, as stored. */
export type ChainedFields = {
  occurred_at: Date;
  type: string;
  outcome: string;
  actor_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  data: Record<string, unknown>;
};

/** The personal fields an erasure may remove from the clear row. */
export const PERSONAL_FIELDS = ['ip', 'user_agent'] as const;
export type PersonalField = (typeof PERSONAL_FIELDS)[number];

/** jsonb reorders keys, so hashes are computed over a key-sorted rendering. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const hmac = (key: Buffer, parts: unknown[]): string => createHmac('sha256', key).update(canonical(parts)).digest('hex');

/**
 * AUDIT_KEY's id: a fingerprint stored on every keyed row, so a verify run with another key
 * says "wrong key" instead of "every event was modified".
 */
export function auditKeyId(key: Buffer): string {
  return `a-${createHash('sha256').update('portcullis audit key id\0').update(key).digest('hex').slice(0, 12)}`;
}

/** Chain version 1: sha256(prev_hash || canonical clear row), no key (kept to verify old rows). */
export function legacyHash(prevHash: string, row: ChainedFields): string {
  const body = canonical([
    row.occurred_at.toISOString(),
    row.type,
    row.outcome,
    row.actor_id,
    row.client_id,
    row.ip,
    row.user_agent,
    row.data,
  ]);
  return createHash('sha256').update(prevHash).update(body).digest('hex');
}

/**
 * The commitment to one personal value that the chain covers instead of the value: an HMAC over
 * the value and a random per-row nonce. While the nonce is stored it binds the clear value (no
 * other value gives the same digest); an erasure deletes the value and the nonce, and from then on
 * not even a holder of AUDIT_KEY can find the address by trying every IPv4 address, and nothing
 * links the row to other rows from the same address.
 */
export function personalDigest(key: Buffer, nonce: string | null, field: PersonalField, value: string | null): string | null {
  return value === null || nonce === null ? null : hmac(key, [`portcullis-audit/2:${field}`, nonce, value]);
}

export type KeyedLink = { key_id: string; prev_hash: string; ip_digest: string | null; user_agent_digest: string | null };

/** Chain version 2: HMAC over the row, its key id, its predecessor and its personal digests. */
export function keyedHash(key: Buffer, link: KeyedLink, row: ChainedFields): string {
  return hmac(key, [
    'portcullis-audit/2',
    link.key_id,
    link.prev_hash,
    row.occurred_at.toISOString(),
    row.type,
    row.outcome,
    row.actor_id,
    row.client_id,
    link.ip_digest,
    link.user_agent_digest,
    row.data,
  ]);
}

/**
 * Proof that a key holder (an erasure) removed the personal fields of a row: an HMAC over the
 * row's hash and every field that stays. Without it, clear values that vanish are tampering. For
 * legacy rows, whose hash covers the clear values, it is also what vouches for the rest of the row.
 */
export function pseudonymisedTag(key: Buffer, hash: string, row: Omit<ChainedFields, PersonalField>): string {
  return hmac(key, [
    'portcullis-audit/pseudonymised',
    hash,
    row.occurred_at.toISOString(),
    row.type,
    row.outcome,
    row.actor_id,
    row.client_id,
    row.data,
  ]);
}
