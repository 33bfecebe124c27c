import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Target } from './target.ts';

const script = fileURLToPath(new URL('../wrk/request.lua', import.meta.url));

export type WrkResult = {
  requests: number;
  seconds: number;
  good: number;
  bad: number;
  socketErrors: number;
  p50Ms: number;
  p99Ms: number;
  sample?: string;
};

/** Closed-loop saturation run with wrk (one thread: the generator has one core). */
export function runWrk(target: Target, options: { seconds: number; connections: number }): Promise<WrkResult> {
  const env = {
    ...process.env,
    BENCH_METHOD: target.method,
    BENCH_PATH: target.path,
    BENCH_BODY: target.body ?? '',
    BENCH_HEADERS: Object.entries(target.headers ?? {})
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n'),
    BENCH_EXPECT: target.expect.join(','),
    BENCH_MATCH: (target.match ?? []).join('|'),
  };
  const args = [
    '-t1',
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--timeout',
    '10s',
    '-s',
    script,
    `${target.origin}${target.path}`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = /^BENCH_RESULT (.+)$/m.exec(out)?.[1];
      if (code !== 0 || !line) {
        reject(new Error(`wrk failed (${String(code)}): ${out.slice(-500)}`));
        return;
      }
      const r = JSON.parse(line) as {
        requests: number;
        duration_us: number;
        good: number;
        bad: number;
        socket_errors: number;
        p50_us: number;
        p99_us: number;
      };
      const sample = /^BENCH_SAMPLE (.+)$/m.exec(out)?.[1];
      resolve({
        requests: r.requests,
        seconds: r.duration_us / 1e6,
        good: r.good,
        bad: r.bad,
        socketErrors: r.socket_errors,
        p50Ms: r.p50_us / 1000,
        p99Ms: r.p99_us / 1000,
        ...(sample ? { sample } : {}),
      });
    });
  });
}
