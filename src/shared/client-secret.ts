import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Client secrets are 256 random bits made by the server, so a fast hash is enough (there is
 * nothing to guess from a dictionary). The stored form is marked so it can never be mistaken
 * for, or accepted as, the secret itself.
 */
export const SECRET_HASH_PREFIX = '$sha256$';

export const isHashedSecret = (value: string): boolean => value.startsWith(SECRET_HASH_PREFIX);

export const hashClientSecret = (secret: string): string =>
  `${SECRET_HASH_PREFIX}${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;

/** Constant-time check of a presented secret against the stored hash (or a legacy plain secret). */
export function verifyClientSecret(stored: string | undefined, presented: unknown): boolean {
  if (!stored || typeof presented !== 'string' || presented.length === 0 || presented.length > 1000) return false;
  if (isHashedSecret(presented)) return false;
  const expected = Buffer.from(stored, 'utf8');
  const actual = Buffer.from(isHashedSecret(stored) ? hashClientSecret(presented) : presented, 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
