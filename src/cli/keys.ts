import { readFile } from 'node:fs/promises';
import type { Deps } from '../deps.ts';
import { rotateMasterKey, type RotationReport } from '../services/master-key-rotation.ts';
import { DecryptionError } from '../shared/crypto-box.ts';
import { createMasterBox } from '../shared/master-key.ts';

export class MasterKeyInputError extends Error {}

/** A master key as MASTER_KEY holds it: base64 of 32 random bytes (`openssl rand -base64 32`). */
export function parseMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32)
    throw new MasterKeyInputError('the new master key must be base64 of exactly 32 bytes (openssl rand -base64 32)');
  return key;
}

export async function readNewMasterKey(file: string | undefined): Promise<Buffer> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the key file on the command line
  if (file) return parseMasterKey(await readFile(file, 'utf8'));
  if (process.stdin.isTTY) throw new MasterKeyInputError('pass --new-key-file, or pipe the new key on standard input');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return parseMasterKey(Buffer.concat(chunks).toString('utf8'));
}

/** `portcullis keys rotate-master`: re-seal under the new key, then tell the operator what is next. */
export async function rotateMaster(deps: Deps, newKey: Buffer): Promise<RotationReport & { next: string }> {
  try {
    const report = await rotateMasterKey(deps.knex, deps.box, createMasterBox(newKey));
    return {
      ...report,
      next: `set MASTER_KEY (or MASTER_KEY_FILE) to the new key and restart every instance; until then, instances still on the old key cannot open the re-sealed values`,
    };
  } catch (error) {
    if (error instanceof DecryptionError)
      throw new MasterKeyInputError(`a stored value cannot be opened with the current MASTER_KEY (${error.message}); nothing was changed`);
    if (error instanceof Error && error.message === 'the new master key is the current one') throw new MasterKeyInputError(error.message);
    throw error;
  }
}
