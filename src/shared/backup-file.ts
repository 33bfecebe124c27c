import { constants } from 'node:buffer';
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

/**
 * The most a backup may decompress to: the longest string V8 can hold, since the document is
 * parsed as one JSON text (a larger one could not be restored anyway). Decompression stops
 * there, so a small file that inflates to gigabytes is refused instead of exhausting memory.
 */
export const MAX_BACKUP_BYTES = constants.MAX_STRING_LENGTH;

export function parseBackupKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32)
    throw new BackupFileError('BACKUP_KEY must be base64 of exactly 32 bytes (openssl rand -base64 32)');
  return key;
}

export function sealBackup(document: unknown, key: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(gzipSync(JSON.stringify(document))), cipher.final()]);
  return Buffer.concat([MAGIC, iv, body, cipher.getAuthTag()]);
}

export function openBackup(file: Buffer, key: Buffer, options: { maxBytes?: number } = {}): unknown {
  const maxBytes = options.maxBytes ?? MAX_BACKUP_BYTES;
  if (file.length < MAGIC.length + IV_BYTES + TAG_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC))
    throw new BackupFileError('not a Portcullis backup file');
  const iv = file.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
  const tag = file.subarray(file.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(file.subarray(MAGIC.length + IV_BYTES, file.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new BackupFileError('the backup cannot be decrypted: wrong BACKUP_KEY, or the file is damaged');
  }
  // Authenticated from here on: only a holder of BACKUP_KEY made these bytes. Still bounded.
  let json: Buffer;
  try {
    json = gunzipSync(plain, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new BackupFileError(
        `the backup expands to more than ${maxBytes} bytes, more than a restore can hold; refusing it (nothing was changed)`,
      );
    }
    throw new BackupFileError('the backup decrypts but does not decompress (not made by `portcullis backup create`)');
  }
  try {
    return JSON.parse(json.toString('utf8')) as unknown;
  } catch {
    throw new BackupFileError('the backup decrypts but is not a JSON document (not made by `portcullis backup create`)');
  }
}
