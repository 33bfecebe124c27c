/**
 * UUIDs from requests (R15). Postgres compares UUIDs by value, whatever their case, while our
 * code compared the strings requests spelled: an uppercase spelling of one's own id passed every
 * "is this me?" check (sharing with oneself, an administrator's guard against locking themselves
 * out) and keyed advisory locks apart. So every UUID a request carries is validated in the
 * hyphenated form, in either case (RFC 9562 §4: case-insensitive on input), and lowercased, the
 * spelling the database writes, before any code sees it. Other spellings Postgres would also take
 * (braces, no hyphens, `urn:uuid:`) are refused: one value, one spelling.
 */
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The lowercase spelling of a hyphenated UUID, or undefined for anything else. */
export function canonicalUuid(text: string): string | undefined {
  return UUID_PATTERN.test(text) ? text.toLowerCase() : undefined;
}

/** Whether the text is a UUID as the database writes it (lowercase, hyphenated). */
export const isCanonicalUuid = (text: string): boolean => canonicalUuid(text) === text;
