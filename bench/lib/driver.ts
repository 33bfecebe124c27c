import { Agent, request } from 'node:http';
import { percentile } from './stats.ts';
import { accepts, type Target } from './target.ts';

export type DriverResult = {
  requests: number;
  seconds: number;
  good: number;
  bad: number;
  p50Ms: number;
  p99Ms: number;
  achievedRate?: number;
  sample?: string;
};

type Sent = { status: number; body: string };

function send(agent: Agent, target: Target): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const url = new URL(target.path, target.origin);
    const headers: Record<string, string | number> = { ...target.headers };
    if (target.body !== undefined) headers['Content-Length'] = Buffer.byteLength(target.body);
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: target.method, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(target.body);
  });
}

/**
 * Closed loop over a finite list of requests (e.g. one-use refresh tokens): `concurrency`
 * requests in flight until the list is used up.
 */
export async function runList(targets: readonly Target[], concurrency: number): Promise<DriverResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let good = 0;
  let bad = 0;
  let sample: string | undefined;
  let next = 0;
  const started = performance.now();
  async function worker(): Promise<void> {
    while (next < targets.length) {
      const target = targets[next++]!;
      const t0 = performance.now();
      try {
        const { status, body } = await send(agent, target);
        if (accepts(target, status, body)) good++;
        else {
          bad++;
          sample ??= `${status} ${body.slice(0, 160)}`;
        }
      } catch (error) {
        bad++;
        sample ??= String(error);
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: targets.length,
    seconds,
    good,
    bad,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(sample ? { sample } : {}),
  };
}

/**
 * Open loop at a fixed rate: request i is due at t0 + i/rate whatever happened before, and its
 * latency is counted from when it was due (no coordinated omission: a stall shows up as
 * queueing in the percentiles). `next(i)` gives request i.
 */
export async function runOpenLoop(
  next: (i: number) => Target,
  options: { rate: number; seconds: number; maxSockets?: number },
): Promise<DriverResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 });
  const total = Math.max(1, Math.floor(options.rate * options.seconds));
  const latencies: number[] = [];
  // A count, not an array of promises: a run keeps nothing per request but its latency.
  let pending = 0;
  let drained: () => void = () => undefined;
  let good = 0;
  let bad = 0;
  let sample: string | undefined;
  const t0 = performance.now();
  let i = 0;
  while (i < total) {
    const now = performance.now();
    // Fire everything that is due; then sleep until the next one (timers have ~1 ms grain).
    while (i < total && t0 + (i * 1000) / options.rate <= now) {
      const due = t0 + (i * 1000) / options.rate;
      const target = next(i);
      pending++;
      void send(agent, target)
        .then(
          ({ status, body }) => {
            latencies.push(performance.now() - due);
            if (accepts(target, status, body)) good++;
            else {
              bad++;
              sample ??= `${status} ${body.slice(0, 160)}`;
            }
          },
          (error: unknown) => {
            latencies.push(performance.now() - due);
            bad++;
            sample ??= String(error);
          },
        )
        .finally(() => {
          if (--pending === 0) drained();
        });
      i++;
    }
    const wait = t0 + (i * 1000) / options.rate - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, wait - 0.5)));
  }
  const sendSeconds = (performance.now() - t0) / 1000;
  if (pending > 0) await new Promise<void>((resolve) => (drained = resolve));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    seconds: sendSeconds,
    good,
    bad,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    achievedRate: total / sendSeconds,
    ...(sample ? { sample } : {}),
  };
}
