import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { buildApiApp } from './api/app.ts';
import { buildAuthApp } from './auth/app.ts';
import type { Deps } from './deps.ts';
import type { Readiness } from './shared/health.ts';

export type Role = 'auth' | 'api';

export type Running = {
  readiness: Readiness;
  servers: Partial<Record<Role, Server>>;
  /** Not ready → stop accepting → finish in-flight requests (bounded) → close. */
  stop(graceMs?: number): Promise<void>;
};

function listen(app: Koa, port: number, host: string): Promise<Server> {
  const handler = app.callback();
  const server = createServer((req, res) => void handler(req, res));
  // Slow-loris bounds; keep-alive above typical load-balancer idle timeouts.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function close(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs).unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

export const portOf = (server: Server): number => (server.address() as AddressInfo).port;

export async function startServers(deps: Deps, roles: readonly Role[]): Promise<Running> {
  const readiness: Readiness = { draining: false };
  const { config } = deps;
  const servers: Partial<Record<Role, Server>> = {};
  if (roles.includes('auth')) {
    const { app } = await buildAuthApp(deps, readiness);
    servers.auth = await listen(app, config.authPort, config.host);
  }
  if (roles.includes('api')) {
    servers.api = await listen(buildApiApp(deps, readiness), config.apiPort, config.host);
  }
  return {
    readiness,
    servers,
    async stop(graceMs = 10_000) {
      readiness.draining = true;
      await Promise.all(Object.values(servers).map((s) => close(s, graceMs)));
    },
  };
}
