import { hkdfSync } from 'node:crypto';

/**
 * A 32-byte subkey of a root key (HKDF-SHA-256, RFC 5869) for one purpose. Each use of the root
 * key gets its own label, so a key for one job (say, hashing stored ids) never doubles as the key
 * for another (sealing them), and learning one says nothing about the root or its siblings.
 */
export function deriveKey(root: Buffer, purpose: string): Buffer {
  if (root.length < 32) throw new Error('the root key must have at least 32 bytes');
  return Buffer.from(hkdfSync('sha256', root, 'portcullis', purpose, 32));
}
