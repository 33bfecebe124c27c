import { createHmac, createSecretKey, hkdfSync } from 'node:crypto';

/**
 * A 32-byte subkey of a root key (HKDF-SHA-256, RFC 5869) for one purpose. Each use of the root
 * key gets its own label, so a key for one job (say, hashing stored ids) never doubles as the key
 * for another (sealing them), and learning one says nothing about the root or its siblings.
 */
export function deriveKey(root: Buffer, purpose: string): Buffer {
  if (root.length < 32) throw new Error('the root key must have at least 32 bytes');
  return Buffer.from(hkdfSync('sha256', root, 'portcullis', purpose, 32));
}

/**
 * A keyed digest (HMAC-SHA-256, base64url) under the subkey of `root` for `purpose`: the name under
 * which a value that must not be stored (a session id, an email, an address) is stored instead.
 * Deterministic, so a lookup is one hash; useless without the key, so a copy of the store cannot
 * be reversed by trying candidates (an unkeyed hash of an IPv4 address falls to 2^32 tries).
 */
export function keyedDigest(root: Buffer, purpose: string): (value: string) => string {
  const key = createSecretKey(deriveKey(root, purpose));
  return (value) => createHmac('sha256', key).update(value, 'utf8').digest('base64url');
}
