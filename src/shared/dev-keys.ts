import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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
 * A 32-byte key from the environment; in embedded mode only, one generated once into DATA_DIR
 * (0600) so a fresh checkout starts with nothing configured. Outside embedded mode a missing
 * key stops the start with the command that makes one.
 */
export async function resolveKey(spec: KeySpec, options: { dataDir: string; embedded: boolean; logger: Logger }): Promise<Buffer> {
  if (spec.value) return Buffer.from(spec.value, 'base64');
  if (!options.embedded)
    throw new StartupError(`${spec.name} (or ${spec.name}_FILE) is required when DATABASE_URL is set; create one with: openssl rand -base64 32`);
  const path = join(options.dataDir, spec.fileName);
  try {
    return Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
  } catch {
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    await writeFile(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    options.logger.warn(
      { path },
      `generated a development ${spec.name} into the data directory; in production set ${spec.name} or ${spec.name}_FILE from a secret manager`,
    );
    return key;
  }
}
