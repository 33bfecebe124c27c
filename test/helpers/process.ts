import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './wait.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export type RunResult = { code: number | null; stdout: string; stderr: string };

/** Runs `node <script> ...args` from the repository root with the given environment. */
export function runNode(args: string[], env: Record<string, string>, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export type Spawned = { child: ChildProcess; output: () => string; exited: Promise<number | null> };

export function spawnNode(args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, output: () => output, exited };
}

/** Polls `url` until it answers 2xx; fails with the last status or connection error. */
export async function waitForReady(url: string, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`status ${response.status}`);
    },
    { timeoutMs, intervalMs: 100, message: `${url} did not become ready` },
  );
}

/** What `node src/main.ts` printed when it refused to start in production. */
export type Refusal = { code: number | null; output: string; lines: string[] };

/**
 * Runs `node src/main.ts ...args` for a configuration production must refuse: its exit code,
 * everything it printed and the `cannot start: refusing to start in production` lines. A server
 * that starts instead is killed after `timeoutMs` (code null), so the test fails rather than hangs.
 */
export async function productionRefusal(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<Refusal> {
  const spawned = spawnNode(['src/main.ts', ...args], env);
  const timer = setTimeout(() => spawned.child.kill('SIGKILL'), timeoutMs);
  const code = await spawned.exited;
  clearTimeout(timer);
  const output = spawned.output();
  const lines = output.split('\n').filter((line) => line.startsWith('cannot start: refusing to start in production'));
  return { code, output, lines };
}
