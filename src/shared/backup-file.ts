import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * The backup file: `PORTCULLIS-BACKUP-1\n`, a 12-byte IV, the AES-256-GCM ciphertext of the
 * gzipped JSON document, and the 16-byte tag. The magic line is authenticated as associated
 * data, so a truncated, altered or wrong-key file fails as a whole.
 */
const MAGIC = Buffer.from('PORTCULLIS-BACKUP-1\n');
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class BackupFileError extends Error {}

export function parseBackupKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32) throw new BackupFileError('BACKUP_KEY must be base64 of exactly 32 bytes (openssl rand -base64 32)');
  return key;
}

export function sealBackup(document: unknown, key: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(gzipSync(JSON.stringify(document))), cipher.final()]);
  return Buffer.concat([MAGIC, iv, body, cipher.getAuthTag()]);
}

export function openBackup(file: Buffer, key: Buffer): unknown {
  if (file.length < MAGIC.length + IV_BYTES + TAG_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC)) throw new BackupFileError('not a Portcullis backup file');
  const iv = file.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
  const tag = file.subarray(file.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  try {
    const plain = Buffer.concat([decipher.update(file.subarray(MAGIC.length + IV_BYTES, file.length - TAG_BYTES)), decipher.final()]);
    return JSON.parse(gunzipSync(plain).toString('utf8')) as unknown;
  } catch {
    throw new BackupFileError('the backup cannot be decrypted: wrong BACKUP_KEY, or the file is damaged');
  }
}
