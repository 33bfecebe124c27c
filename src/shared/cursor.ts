import { Problem, problemType } from './problem.ts';
import { isCanonicalUuid } from './uuid.ts';

/**
 * Keyset pagination position: the last row's creation time and id (ties broken by id). The time
 * is the database's own, to the microsecond, as UTC ISO text (`at`): a JavaScript Date keeps only
 * milliseconds, and a position cut to them repeated the last user of a page forever (oldest
 * first) and skipped records created in the same millisecond (newest first) (R15).
 */
export type KeysetCursor = { at: string; id: string };

/** The select expression for a row's `at` (alias `cursor_at`); compare with `(created_at, id) > (?::timestamptz, ?::uuid)`. */
export const CURSOR_AT_SQL = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`;

/** The listings that page with a keyset cursor; a cursor is valid only in the listing that made it (R15). */
export type CursorListing = 'records' | 'users';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Opaque to clients: base64url of [listing, ISO time, uuid]. */
export const encodeCursor = (listing: CursorListing, c: KeysetCursor): string =>
  Buffer.from(JSON.stringify([listing, c.at, c.id])).toString('base64url');

const invalidCursor = (): Problem =>
  new Problem({
    status: 400,
    type: problemType('invalid-cursor'),
    title: 'Invalid cursor',
    detail: 'The cursor is not one this listing returned; start again without `cursor`.',
    extensions: { errors: [{ pointer: '/query/cursor', detail: 'is not a cursor of this listing' }] },
  });

/**
 * The position a cursor of `listing` names, or a 400 problem naming `cursor` (R15). Only the exact
 * text this API writes is taken: the listing it came from, a time after 1970 as the database
 * writes it (to the microsecond), and a lowercase canonical UUID, so nothing reaches the query that the
 * database could refuse (a 500) or read differently. A cursor is a position, not a grant: the
 * listing's own filter (the caller's records, an administrator's permission) still applies, so a
 * cursor edited to another well-formed position only pages from there through the same rows.
 */
export function decodeCursor(listing: CursorListing, cursor: string): KeysetCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw invalidCursor();
  const [from, time, id] = parsed as unknown[];
  if (from !== listing || typeof time !== 'string' || !ISO_TIME.test(time) || typeof id !== 'string' || !isCanonicalUuid(id))
    throw invalidCursor();
  // A real instant after 1970 (to the millisecond; the last three digits are microseconds).
  const milliseconds = `${time.slice(0, 23)}Z`;
  const date = new Date(milliseconds);
  if (Number.isNaN(date.getTime()) || date.getTime() < 0 || date.toISOString() !== milliseconds) throw invalidCursor();
  // The same bytes as we would write: no other base64 or JSON spelling of a position.
  if (encodeCursor(listing, { at: time, id }) !== cursor) throw invalidCursor();
  return { at: time, id };
}
