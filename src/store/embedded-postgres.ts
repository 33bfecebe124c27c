import { chmod, lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { StartupError } from '../shared/dev-keys.ts';

/**
 * The zero-setup database: PGlite (Postgres compiled to WASM) persisted in DATA_DIR and served
 * over a Unix socket, so knex and pg run exactly the code path they run against a real server.
 *
 * PGlite accepts the `postgres` superuser without a password, so the socket is the whole access
 * control: it lives in DATA_DIR/socket, and DATA_DIR, its socket directory and pgdata are mode
 * 0700 and owned by the server's OS user; nothing listens on TCP. Another local user can neither
 * find it by a loopback port scan nor connect to it by path, nor swap the socket for their own
 * (S1). PGlite is single-process: a second process of the same OS user (the CLI while the server
 * runs) connects through that socket instead of opening the files itself.
 */
export type EmbeddedPostgres = { url: string; owner: boolean; stop(): Promise<void> };

type LockFile = { pid: number; socket: string };

/** The name libpq and pg derive from a socket directory and the default port 5432. */
const SOCKET_NAME = '.s.PGSQL.5432';
/** sun_path holds 108 bytes on Linux and 104 on macOS, including the terminating NUL. */
const MAX_SOCKET_PATH = 103;

/** pg connects over a Unix socket when host is a directory (an absolute path). */
const urlFor = (socketDir: string): string => `postgres://postgres@/postgres?host=${encodeURIComponent(socketDir)}`;

/**
 * A directory only this OS user may enter: created 0700, or tightened to 0700 when it exists.
 * A directory owned by someone else is refused, since whoever controls it could swap the socket
 * for their own (and read what the CLI sends); so is a symlink below DATA_DIR (DATA_DIR itself
 * may be one, to another disk).
 */
async function privateDirectory(path: string, options: { followSymlink: boolean }): Promise<void> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- DATA_DIR (operator configuration) or a constant directory below it
  await mkdir(path, { recursive: true, mode: 0o700 });
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- as above: DATA_DIR or a constant directory below it
  const info = options.followSymlink ? await stat(path) : await lstat(path);
  if (!info.isDirectory()) throw new StartupError(`${path} must be a directory (not a symlink) for the embedded database`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new StartupError(
      `${path} belongs to uid ${info.uid}, not to this process (uid ${uid}); run Portcullis and its CLI as the OS user that owns DATA_DIR`,
    );
  }
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- as above: DATA_DIR or a constant directory below it
  if ((info.mode & 0o077) !== 0) await chmod(path, 0o700);
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect({ path }, () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.on('error', () => {
      resolvePromise(false);
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runningOwner(lockPath: string, socketPath: string): Promise<boolean> {
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the lock file at a constant name in DATA_DIR
    const lock = JSON.parse(await readFile(lockPath, 'utf8')) as LockFile;
    return lock.pid !== process.pid && processAlive(lock.pid) && (await socketAnswers(socketPath));
  } catch {
    // No lock file, or a stale one: we become the owner.
    return false;
  }
}

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  const socketDir = resolve(dataDir, 'socket');
  const socketPath = join(socketDir, SOCKET_NAME);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new StartupError(
      `DATA_DIR is too long for the embedded database's Unix socket (${socketPath} exceeds ${MAX_SOCKET_PATH} bytes); use a shorter DATA_DIR`,
    );
  }
  // PGlite's own mkdir is not recursive; its files hold every secret the server keeps.
  await privateDirectory(dataDir, { followSymlink: true });
  await privateDirectory(socketDir, { followSymlink: false });
  await privateDirectory(join(dataDir, 'pgdata'), { followSymlink: false });
  const lockPath = join(dataDir, 'embedded-postgres.json');
  if (await runningOwner(lockPath, socketPath)) return { url: urlFor(socketDir), owner: false, stop: () => Promise.resolve() };

  // A socket file left by a process that died would make listen() fail with EADDRINUSE.
  await rm(socketPath, { force: true });
  const db = await PGlite.create({ dataDir: join(dataDir, 'pgdata') });
  // Several connections may arrive (server pool + CLI); PGlite runs their queries one at a time.
  const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 16 });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the lock file at a constant name in DATA_DIR
  await writeFile(lockPath, JSON.stringify({ pid: process.pid, socket: socketPath } satisfies LockFile), { mode: 0o600 });
  return {
    url: urlFor(socketDir),
    owner: true,
    async stop() {
      await server.stop();
      await db.close();
      await rm(lockPath, { force: true });
      await rm(socketPath, { force: true });
    },
  };
}
