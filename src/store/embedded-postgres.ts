import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * The zero-setup database: PGlite (Postgres compiled to WASM) persisted in DATA_DIR and served
 * over a loopback socket, so knex and pg run exactly the code path they run against a real
 * server. PGlite is single-process: the owner writes its port to `embedded-postgres.json`, and
 * a second process (the CLI while the server runs) connects through that socket instead of
 * opening the files itself.
 */
export type EmbeddedPostgres = { url: string; owner: boolean; stop(): Promise<void> };

type LockFile = { pid: number; port: number };

const urlFor = (port: number): string => `postgres://postgres@127.0.0.1:${port}/postgres`;

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => {
      resolve(false);
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

async function runningOwner(lockPath: string): Promise<LockFile | undefined> {
  try {
    const lock = JSON.parse(await readFile(lockPath, 'utf8')) as LockFile;
    if (lock.pid !== process.pid && processAlive(lock.pid) && (await portAnswers(lock.port))) return lock;
  } catch {
    // No lock file, or a stale one: we become the owner.
  }
  return undefined;
}

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  // PGlite's own mkdir is not recursive.
  await mkdir(join(dataDir, 'pgdata'), { recursive: true, mode: 0o700 });
  const lockPath = join(dataDir, 'embedded-postgres.json');
  const owner = await runningOwner(lockPath);
  if (owner) return { url: urlFor(owner.port), owner: false, stop: () => Promise.resolve() };

  const db = await PGlite.create({ dataDir: join(dataDir, 'pgdata') });
  // Several sockets may connect (server pool + CLI); PGlite runs their queries one at a time.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 });
  await server.start();
  const port = Number(server.getServerConn().split(':').at(-1));
  await writeFile(lockPath, JSON.stringify({ pid: process.pid, port } satisfies LockFile), { mode: 0o600 });
  return {
    url: urlFor(port),
    owner: true,
    async stop() {
      await server.stop();
      await db.close();
      await rm(lockPath, { force: true });
    },
  };
}
