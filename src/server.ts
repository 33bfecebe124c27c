import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as TlsOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { buildApiApp } from './api/app.ts';
import { buildAuthApp } from './auth/app.ts';
import { createReloadingApp, type ReloadingApp } from './auth/reloading-app.ts';
import { createKeyRotation, rotationPolicyOf } from './services/key-rotation.ts';
import { startRevocationSweep } from './services/account-sessions.ts';
import { startMailWorker, type MailWorker } from './services/mail-worker.ts';
import { hasAuth, timeAdapters, type ApiDeps, type Deps } from './deps.ts';
import type { Readiness } from './shared/health.ts';
import { createMetrics, listenMetrics, type Metrics } from './shared/metrics.ts';
import { internalTlsOptions, serverTlsOptions } from './shared/tls.ts';
import { answerClientErrors } from './shared/http-client-errors.ts';
import { watchClientChanges, type ClientChangeWatch } from './store/client-changes.ts';

export type Role = 'auth' | 'api';

export type Running = {
  readiness: Readiness;
  servers: Partial<Record<Role, Server>>;
  metrics: Metrics;
  /** The auth server's mTLS-only listener, when AUTH_INTERNAL_PORT is set. */
  internalServer?: Server;
  /** The private Prometheus listener, when METRICS_PORT is set. */
  metricsServer?: Server;
  /** The auth app that follows key changes (rotation, retirement, cookie keys) without a restart. */
  authApp?: ReloadingApp;
  /**
   * Not ready (readiness 503) → wait delayMs so load balancers deregister us while we still
   * serve → stop accepting → finish in-flight requests (bounded by graceMs) → closed.
   */
  stop(graceMs?: number, delayMs?: number): Promise<void>;
};

function listen(
  app: Koa | ((req: IncomingMessage, res: ServerResponse) => unknown),
  port: number,
  host: string,
  tls?: TlsOptions,
): Promise<Server> {
  const handler = typeof app === 'function' ? app : app.callback();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => void handler(req, res);
  // With TLS_CERT_FILE the servers terminate TLS themselves; https.Server is an http.Server to everything below.
  const server: Server = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  // Slow-loris bounds; keep-alive above typical load-balancer idle timeouts.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  // A request line past the header limit is 414, not Node's 431 (RFC 9112 §3).
  answerClientErrors(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * Stops accepting, lets in-flight requests finish, and reaps keep-alive connections as they go
 * idle (a connection that just finished its last request would otherwise wait for its
 * keep-alive timeout). After graceMs whatever is left is cut.
 */
function close(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const reaper = setInterval(() => server.closeIdleConnections(), 100).unref();
    const force = setTimeout(() => server.closeAllConnections(), graceMs).unref();
    server.close(() => {
      clearInterval(reaper);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export const portOf = (server: Server): number => (server.address() as AddressInfo).port;

export async function startServers(deps: ApiDeps | Deps, roles: readonly Role[]): Promise<Running> {
  const readiness: Readiness = { draining: false };
  const { config } = deps;
  const servers: Partial<Record<Role, Server>> = {};
  const tls = serverTlsOptions(config);
  let internalServer: Server | undefined;
  const metrics = createMetrics();
  deps.audit.observe((event) => metrics.observeAudit(event));
  // Before the auth app is built: the provider caches one adapter per model.
  timeAdapters(deps, metrics.adapterTimings);
  let authApp: ReloadingApp | undefined;
  let clientChanges: ClientChangeWatch | undefined;
  let revocationSweep: { stop(): Promise<void> } | undefined;
  let mailWorker: MailWorker | undefined;
  let metricsServer: Server | undefined;
  const listening = () => [
    ...Object.values(servers),
    ...(internalServer ? [internalServer] : []),
    ...(metricsServer ? [metricsServer] : []),
  ];
  try {
    if (roles.includes('auth')) {
      if (!hasAuth(deps)) throw new Error('the auth server needs the dependencies of createDeps (MASTER_KEY)');
      // Client changes made elsewhere reach this instance's client cache at once. Embedded mode
      // is one process, whose own writes already drop its cache entries.
      if (!deps.database.embedded && config.databaseUrl) {
        const clients = deps.stores.clients;
        clientChanges = watchClientChanges({
          databaseUrl: config.databaseUrl,
          onChange: (id) => clients.forget(id),
          onReset: () => clients.forgetAll(),
          logger: deps.logger,
        });
        await clientChanges.ready;
      }
      // Recovery-code hashes an earlier release stored without a key are rekeyed (S6); a no-op once done.
      const rekeyed = await deps.mfa.recovery.rekeyUnkeyed();
      if (rekeyed > 0) deps.logger.info({ rekeyed }, 'recovery codes: unkeyed hashes rekeyed under the server pepper');
      readiness.checks = {
        ...readiness.checks,
        async signingKeys() {
          if ((await deps.keys.publicJwks()).keys.length === 0) throw new Error('no published signing keys');
        },
      };
      const rotation = createKeyRotation({ store: deps.stores.keys, box: deps.box, policy: rotationPolicyOf(config) });
      authApp = await createReloadingApp({
        async build() {
          const { app, provider } = await buildAuthApp(deps, readiness);
          // Metrics wrap the app from outside: first middleware, plus the provider's route names and events.
          app.middleware.unshift(metrics.http('auth'));
          metrics.instrumentProvider(provider);
          return app;
        },
        fingerprint: () => deps.stores.keys.fingerprint(),
        advance: () => rotation.advance(),
        intervalMs: config.signingKeys.refreshSeconds * 1000,
        logger: deps.logger,
      });
      // Accounts disabled or erased through the API (which holds no key to the oidc state, S3) have
      // their sessions and grants ended here (R13).
      revocationSweep = startRevocationSweep({ sessions: deps.accountSessions, logger: deps.logger });
      // The outbox's mail leaves from here, never from a request (issue 12, docs/email.md).
      if (deps.mail.transport !== 'none') mailWorker = startMailWorker(deps.mail, deps.logger);
      // Grant rows indexed before their scopes were kept beside them (S3): filled in once, in the background.
      const oidcAdapter = deps.oidcAdapter;
      void deps.accountIndex
        .backfillGrantSummaries((id) => oidcAdapter('Grant').find(id))
        .then((filled) => {
          if (filled > 0) deps.logger.info({ grants: filled }, 'account index: filled in the scopes of grants indexed before');
        })
        .catch((error: unknown) => {
          deps.logger.warn({ err: error }, 'account index: filling in the scopes of older grants failed; retried at the next start');
        });
      const handleAuth = (req: IncomingMessage, res: ServerResponse) => {
        authApp?.handle(req, res);
      };
      servers.auth = await listen(handleAuth, config.authPort, config.host, tls);
      const internalTls = config.authInternalPort > 0 ? internalTlsOptions(config) : undefined;
      // The mTLS listener is for the API's direct calls and is never behind a proxy: whatever
      // TRUST_PROXY says, a caller there cannot name another address (R13).
      const handleInternal = (req: IncomingMessage, res: ServerResponse) => {
        Reflect.deleteProperty(req.headers, 'x-forwarded-for');
        handleAuth(req, res);
      };
      if (internalTls) internalServer = await listen(handleInternal, config.authInternalPort, config.host, internalTls);
    }
    if (roles.includes('api')) {
      const app = buildApiApp(deps, readiness, metrics.bearer);
      app.middleware.unshift(metrics.http('api'));
      servers.api = await listen(app, config.apiPort, config.host, tls);
    }
    if (config.metricsPort > 0) metricsServer = await listenMetrics(metrics, config.metricsPort, config.metricsHost);
  } catch (error) {
    // A port taken or a bad certificate half-way through: what did start must not outlive the failure
    // (a listening socket and the key-refresh timer would keep the process alive, querying forever).
    authApp?.stop();
    await revocationSweep?.stop();
    await mailWorker?.stop(0);
    await clientChanges?.close();
    await Promise.all(listening().map((s) => close(s, 0)));
    throw error;
  }
  return {
    readiness,
    servers,
    metrics,
    ...(metricsServer ? { metricsServer } : {}),
    ...(internalServer ? { internalServer } : {}),
    ...(authApp ? { authApp } : {}),
    async stop(graceMs = 10_000, delayMs = 0) {
      readiness.draining = true;
      authApp?.stop();
      if (delayMs > 0) await sleep(delayMs);
      await Promise.all([...Object.values(servers), ...(internalServer ? [internalServer] : [])].map((s) => close(s, graceMs)));
      await revocationSweep?.stop();
      // After the listeners; what the last requests queued waits in the outbox for another instance or the next start.
      await mailWorker?.stop(graceMs);
      await clientChanges?.close();
      // Scrapes may continue through the drain; the metrics listener closes last.
      if (metricsServer) await close(metricsServer, 1000);
    },
  };
}
