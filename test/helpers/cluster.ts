import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'openid-client';
import { Browserless } from './browserless.ts';
import { signIn } from './sign-in.ts';
import { authorizationRequest } from './oidc.ts';
import { spawnNode, waitForReady, type Spawned } from './process.ts';
import { freePort, testConfigEnv } from './servers.ts';
import { eventually } from './wait.ts';

/** Real `node src/main.ts` processes for operations tests (shutdown, readiness, scale-out). */

export type Instance = Spawned & { port: number; url: string; env: Record<string, string> };

/** Starts `node src/main.ts --only <role>` on its own port and waits for /readyz. */
export async function startInstance(
  role: 'auth' | 'api',
  env: Record<string, string>,
  options: { waitReady?: boolean; port?: number } = {},
): Promise<Instance> {
  const port = options.port ?? (await freePort());
  const full = {
    ...testConfigEnv(),
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    ...(role === 'auth' ? { AUTH_PORT: String(port) } : { API_PORT: String(port) }),
    ...env,
  };
  const spawned = spawnNode(['src/main.ts', '--only', role], full);
  const url = `http://127.0.0.1:${port}`;
  if (options.waitReady ?? true) {
    try {
      await waitForReady(`${url}/readyz`);
    } catch (error) {
      spawned.child.kill('SIGKILL');
      throw new Error(`${role} instance did not become ready:\n${spawned.output()}`, { cause: error });
    }
  }
  return { ...spawned, port, url, env: full };
}

export async function stopInstance(instance: Instance | undefined): Promise<number | null> {
  if (!instance) return null;
  if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill('SIGTERM');
  return instance.exited;
}

/** A fetch that never throws on refused connections: status 0 then. */
export async function probe(url: string, init: RequestInit = {}): Promise<number> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** A private redis-server on a free port (so tests can kill it without touching the shared one). */
export type PrivateRedis = { url: string; port: number; process: ChildProcess; stop(): Promise<void> };

export async function startPrivateRedis(args: string[] = [], port?: number): Promise<PrivateRedis> {
  port ??= await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const url = `redis://127.0.0.1:${port}/0`;
  const { Redis } = await import('ioredis');
  await eventually(
    async () => {
      const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => undefined);
      try {
        await redis.connect();
        await redis.ping();
      } finally {
        redis.disconnect();
      }
    },
    { timeoutMs: 10_000, intervalMs: 100, message: `redis-server on port ${port}` },
  );
  return {
    url,
    port,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type RawResponse = { status: number; body: string };

/**
 * A POST whose body arrives in two parts: the request is in flight (headers and half the body
 * sent) until `finish()` is called. `sent` settles once the connection is open and that first
 * part is written to it. Used to hold a request across SIGTERM.
 */
export function slowPost(
  url: string,
  headers: Record<string, string>,
  body: string,
): { finish(): void; sent: Promise<void>; response: Promise<RawResponse> } {
  const target = new URL(url);
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  let finish = (): void => undefined;
  let markSent = (): void => undefined;
  let failSent = (_error: unknown): void => undefined;
  const sent = new Promise<void>((resolve, reject) => {
    markSent = resolve;
    failSent = reject;
  });
  const response = new Promise<RawResponse>((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent: false,
        headers: { ...headers, 'Content-Length': String(bytes.length) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', (error) => {
      failSent(error);
      reject(error);
    });
    req.write(bytes.subarray(0, half), (error) => (error ? failSent(error) : markSent()));
    finish = () => req.end(bytes.subarray(half));
  });
  return { finish: () => finish(), sent, response };
}

export type RelyingParty = { rp: client.Configuration; clientId: string; clientSecret: string; redirectUri: string };

export async function discover(issuer: string, clientId: string, clientSecret: string): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), clientId, clientSecret, undefined, { execute: [client.allowInsecureRequests] });
}

/** Runs login + consent through the browserless helper; returns the callback URL and PKCE verifier. */
export async function authorizeCode(
  rp: client.Configuration,
  browser: Browserless,
  user: { email: string; password: string },
  options: { resource?: string; scope?: string } = {},
): Promise<{ callback: URL; verifier: string; state: string }> {
  const { url, verifier, state } = await authorizationRequest(rp, {
    scope: options.scope ?? 'openid offline_access records:read',
    prompt: 'consent',
    ...(options.resource ? { resource: options.resource } : {}),
  });
  const callback = await signIn(browser, url, user);
  return { callback, verifier, state };
}

export { Browserless, waitForReady };

/**
 * A tiny HTTP load balancer for tests: listens on the issuer's port and forwards each request to
 * one backend, chosen per request (pinned, or round-robin). Host and every header pass through
 * unchanged, so all instances see the one public issuer URL. `served` records who answered what.
 */
export type Balancer = {
  port: number;
  url: string;
  backends: Record<string, number>;
  /** Route every following request to this backend; undefined = round-robin. */
  pin(name: string | undefined): void;
  served: { name: string; method: string; path: string; status: number }[];
  close(): Promise<void>;
};

export async function startBalancer(port: number, backends: Record<string, number>): Promise<Balancer> {
  const { createServer } = await import('node:http');
  const names = Object.keys(backends);
  let pinned: string | undefined;
  let turn = 0;
  const served: Balancer['served'] = [];
  const server = createServer((req, res) => {
    const name = pinned ?? names[turn++ % names.length]!;
    const upstream = request(
      { host: '127.0.0.1', port: backends[name], method: req.method, path: req.url, headers: req.headers, agent: false },
      (answer) => {
        served.push({ name, method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, status: answer.statusCode ?? 0 });
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'x-test-backend': name });
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      res.writeHead(502).end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    backends,
    pin(name) {
      pinned = name;
    },
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
