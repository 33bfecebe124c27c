import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/helpers/ports.ts';

export { freePort };

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export type Server = { name: string; pid: number; origin: string; child: ChildProcess; output: () => string; stop(): Promise<void> };

async function waitFor(url: string, child: ChildProcess, output: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${String(child.exitCode)}): ${output().slice(-1500)}`);
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer: ${output().slice(-1500)}`);
}

/**
 * Spawns `node <args>` pinned with taskset to `cpu` (taskset execs node, so the pid is the
 * server's), waits until `readyPath` answers, and returns a handle that stops it with SIGTERM.
 */
export async function startServer(options: {
  name: string;
  args: string[];
  env: Record<string, string>;
  origin: string;
  readyPath: string;
  cpu: string;
  nodeFlags?: string[];
}): Promise<Server> {
  const child = spawn('taskset', ['-c', options.cpu, process.execPath, ...(options.nodeFlags ?? []), ...options.args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Keep the tail only: a server logging every rejected request writes megabytes in a run.
  let output = '';
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 65_536) output = output.slice(-32_768);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  // With extra node flags (--node-flags, e.g. --trace-gc) the whole output is kept in a file.
  const logDir = process.env.BENCH_SERVER_LOG_DIR;
  if (logDir) {
    const file = createWriteStream(`${logDir}/${options.name}-${child.pid ?? 'x'}.log`);
    child.stdout.pipe(file);
    child.stderr.pipe(file);
  }
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const getOutput = () => output;
  await waitFor(`${options.origin}${options.readyPath}`, child, getOutput);
  if (child.pid === undefined) throw new Error(`${options.name} has no pid`);
  return {
    name: options.name,
    pid: child.pid,
    origin: options.origin,
    child,
    output: getOutput,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
