import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Below Linux's ephemeral range (32768–60999): a port chosen there cannot be taken by the local end
// of an outgoing connection (to Postgres, Redis, our own servers) between choosing and listening.
const LOW = 20_000;
const HIGH = 32_000;
const handedOut = new Set<number>();

// Test files run in parallel processes (mocha --parallel), each choosing ports: a port is reserved
// for the process that chose it by a file named after it, so two processes that both find it free
// before either listens cannot both take it. A reservation lasts while its process runs (at most
// an hour, in case the pid was reused).
const RESERVATIONS = join(tmpdir(), 'portcullis-test-ports');
const STALE_MS = 3_600_000;
const mine: string[] = [];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function reserve(port: number, retry = true): boolean {
  const path = join(RESERVATIONS, String(port));
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx' });
    mine.push(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  let owner = 0;
  let stale = false;
  try {
    owner = Number(readFileSync(path, 'utf8'));
    stale = Date.now() - statSync(path).mtimeMs > STALE_MS;
  } catch {
    // released meanwhile
  }
  if (owner > 0 && !stale && isAlive(owner)) return false;
  if (!retry) return false;
  rmSync(path, { force: true });
  return reserve(port, false);
}

process.once('exit', () => {
  for (const path of mine) rmSync(path, { force: true });
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A loopback port free right now, never the same twice in one process nor handed to two test
 * processes at once (tests and benchmarks start their own servers on it, often two at once).
 */
export async function freePort(): Promise<number> {
  mkdirSync(RESERVATIONS, { recursive: true });
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (!reserve(port)) continue;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free loopback port found in ${LOW}-${HIGH}`);
}
