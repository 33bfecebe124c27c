import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from './logger.ts';

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export type KeySpec = {
  /** The variable that carries the key (NAME or NAME_FILE), for messages. */
  name: string;
  /** Base64 of 32 bytes from the environment, when set. */
  value: string | undefined;
  /** File name inside DATA_DIR used in embedded (development) mode. */
  fileName: string;
};

/**
 * Reads a key file we generated earlier, or undefined when there is none. A key someone else
 * planted (while DATA_DIR was open to them, before the first start) would seal every secret with
 * a key they hold, so the file is used only when it is a regular file (not a symlink) owned by
 * this process's user that no one else may read or write (R13); otherwise the start stops with
 * the command that fixes it. The checks run on the opened file, so it cannot be swapped between
 * the check and the read.
 */
async function readOwnKeyFile(path: string): Promise<string | undefined> {
  let handle;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- DATA_DIR (operator configuration) joined with a constant file name, opened without following links
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP')
      throw new StartupError(
        `${path} is a symlink; a key file must be a regular file in the data directory: remove it (a new key is generated) or replace it with the file itself`,
      );
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new StartupError(`${path} is not a regular file; remove it (a new key is generated)`);
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) {
      throw new StartupError(
        `${path} belongs to uid ${info.uid}, not to this process (uid ${uid}): someone else may have planted it; if you made it, fix with: chown ${uid} ${path} && chmod 600 ${path}; otherwise remove it (a new key is generated, and data sealed with the old one cannot be opened)`,
      );
    }
    if ((info.mode & 0o077) !== 0) {
      throw new StartupError(
        `${path} has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}: others may read or change the key; check it is the key you generated, then fix with: chmod 600 ${path}`,
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * A 32-byte key from the environment; in embedded mode only, one generated once into DATA_DIR
 * (0600) so a fresh checkout starts with nothing configured, and read back only while it is
 * ours and private (readOwnKeyFile). Outside embedded mode a missing key stops the start with
 * the command that makes one.
 */
export async function resolveKey(spec: KeySpec, options: { dataDir: string; embedded: boolean; logger: Logger }): Promise<Buffer> {
  if (spec.value) return Buffer.from(spec.value, 'base64');
  if (!options.embedded)
    throw new StartupError(
      `${spec.name} (or ${spec.name}_FILE) is required when DATABASE_URL is set; create one with: openssl rand -base64 32`,
    );
  const path = join(options.dataDir, spec.fileName);
  const existing = await readOwnKeyFile(path);
  if (existing !== undefined) return Buffer.from(existing.trim(), 'base64');
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- DATA_DIR, operator configuration
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // wx: never follows or replaces a file that appeared meanwhile.
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- DATA_DIR (operator configuration) joined with a constant file name
  await writeFile(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  options.logger.warn(
    { path },
    `generated a development ${spec.name} into the data directory; in production set ${spec.name} or ${spec.name}_FILE from a secret manager`,
  );
  return key;
}
