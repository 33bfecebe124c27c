import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM sealing for data at rest. The envelope is versioned so the algorithm or key
 * can change later: `v1.<key id>.<iv>.<ciphertext+tag>` (base64url parts). Associated data
 * binds a ciphertext to its row (e.g. a key id or user id) so it cannot be moved elsewhere.
 */
export type CryptoBox = {
  readonly keyId: string;
  seal(plaintext: Buffer | string, associatedData?: string): string;
  open(envelope: string, associatedData?: string): Buffer;
};

const IV_BYTES = 12;
const TAG_BYTES = 16;

export class DecryptionError extends Error {
  constructor(reason: string) {
    super(`cannot decrypt: ${reason}`);
    this.name = 'DecryptionError';
  }
}

/** The key id an envelope names (`v1.<key id>.…`), or undefined when it is not an envelope of ours. */
export function envelopeKeyId(envelope: string): string | undefined {
  const [version, keyId] = envelope.split('.', 2);
  return version === 'v1' ? keyId : undefined;
}

export function createCryptoBox(key: Buffer, keyId = 'm1'): CryptoBox {
  if (key.length !== 32) throw new Error('crypto box key must be 32 bytes');
  if (!/^[a-z0-9-]{1,32}$/.test(keyId)) throw new Error('crypto box key id must be short and url-safe');
  return {
    keyId,
    seal(plaintext, associatedData = '') {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(`${keyId}|${associatedData}`));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return `v1.${keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(envelope, associatedData = '') {
      const [version, envelopeKeyId, ivPart, bodyPart, ...rest] = envelope.split('.');
      if (version !== 'v1' || !ivPart || !bodyPart || rest.length > 0) throw new DecryptionError('malformed envelope');
      if (envelopeKeyId !== keyId) throw new DecryptionError(`sealed under key ${String(envelopeKeyId)}`);
      const iv = Buffer.from(ivPart, 'base64url');
      const body = Buffer.from(bodyPart, 'base64url');
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new DecryptionError('malformed envelope');
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(`${keyId}|${associatedData}`));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new DecryptionError('authentication failed');
      }
    },
  };
}
