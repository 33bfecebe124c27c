import { createServer, type IncomingMessage, type Server } from 'node:http';
import type Koa from 'koa';
import type Provider from 'oidc-provider';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** What the API's bearer authentication reports (src/api/koa-bearer-auth.ts). */
export type BearerObserver = {
  jwksFetch(result: 'ok' | 'error'): void;
  verification(result: 'valid' | 'invalid' | 'error'): void;
};

/** The fields of an audit event (src/services/audit.ts) the login counters read. */
type ObservedAuditEvent = { type: string; outcome?: 'success' | 'failure' | undefined; data?: Record<string, unknown> | undefined };

/**
 * Prometheus metrics (docs/operations.md, Metrics): one registry per process, served on its own port
 * (METRICS_PORT, bound to METRICS_HOST = 127.0.0.1 by default), never on the public ports.
 * Labels are bounded: route templates or oidc-provider route names, never raw paths.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const httpDuration = new Histogram({
    name: 'portcullis_http_request_duration_seconds',
    help: 'HTTP request duration by server, method, route template and status',
    labelNames: ['server', 'method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const tokensIssued = new Counter({
    name: 'portcullis_tokens_issued_total',
    help: 'Successful token endpoint responses by grant type',
    labelNames: ['grant_type'] as const,
    registers: [registry],
  });
  const oidcErrors = new Counter({
    name: 'portcullis_oidc_errors_total',
    help: 'Refused OAuth/OIDC requests by provider event and error code',
    labelNames: ['event', 'error'] as const,
    registers: [registry],
  });
  const oidcEvents = new Counter({
    name: 'portcullis_oidc_events_total',
    help: 'oidc-provider lifecycle events',
    labelNames: ['event'] as const,
    registers: [registry],
  });
  const logins = new Counter({
    name: 'portcullis_logins_total',
    help: 'Sign-in factor checks by factor (password, passkey, totp, recovery_code, webauthn) and result',
    labelNames: ['factor', 'result'] as const,
    registers: [registry],
  });
  const lockouts = new Counter({
    name: 'portcullis_lockouts_total',
    help: 'Accounts locked out after repeated second-factor failures',
    labelNames: ['factor'] as const,
    registers: [registry],
  });

  const adapterDuration = new Histogram({
    name: 'portcullis_adapter_operation_duration_seconds',
    help: 'oidc-provider adapter operation duration by model, operation and storage (redis, postgres)',
    labelNames: ['model', 'operation', 'storage'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const jwksFetches = new Counter({
    name: 'portcullis_jwks_fetches_total',
    help: "The API's HTTP fetches of the issuer's JWKS (cache misses) by result",
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const jwtVerifications = new Counter({
    name: 'portcullis_jwt_verifications_total',
    help: 'Access token verifications at the API by result (valid, invalid, error = JWKS unavailable)',
    labelNames: ['result'] as const,
    registers: [registry],
  });

  /** The route a request matched, recorded by whichever router handled it. */
  const routes = new WeakMap<IncomingMessage, string>();
  const GRANT_TYPES = /^(authorization_code|refresh_token|client_credentials|urn:ietf:params:oauth:grant-type:[a-z_-]{1,40})$/;
  const FACTOR = /^[a-z_]{1,24}$/;

  return {
    registry,

    /** Koa middleware, first in the stack: times every request and labels it by route template. */
    http(server: 'auth' | 'api'): Koa.Middleware {
      // One child per label set, looked up by a joined key: startTimer/end built, merged and
      // validated label objects and a closure on every request (issue 8). The sets are bounded by
      // methods × route templates × statuses, as the series themselves are.
      const children = new Map<string, Histogram.Internal<'server' | 'method' | 'route' | 'status'>>();
      return async function httpMetrics(ctx, next) {
        const started = process.hrtime.bigint();
        try {
          await next();
        } finally {
          const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
          const route =
            routes.get(ctx.req) ??
            (typeof matched === 'string' ? matched : undefined) ??
            (ctx.path === '/healthz' || ctx.path === '/readyz' || ctx.path === '/openapi.json'
              ? ctx.path
              : ctx.path.startsWith('/static/')
                ? '/static/*'
                : 'unmatched');
          // The provider writes to ctx.res directly (respond = false), so read the status there.
          const status = String(ctx.respond === false ? ctx.res.statusCode : ctx.status);
          const key = `${ctx.method} ${status} ${route}`;
          let child = children.get(key);
          if (!child) {
            child = httpDuration.labels(server, ctx.method, route, status);
            children.set(key, child);
          }
          child.observe(Number(process.hrtime.bigint() - started) / 1e9);
        }
      };
    },

    /** Provider routes carry their name (ctx.oidc.route); grant and error events become counters. */
    instrumentProvider(provider: Provider): void {
      provider.use(async function recordRoute(ctx, next) {
        await next();
        const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
        if (route) routes.set(ctx.req, `oidc:${route}`);
      });
      provider.on('grant.success', (ctx) => {
        const raw = ctx.oidc.params?.grant_type;
        const grantType = typeof raw === 'string' ? raw : '';
        tokensIssued.inc({ grant_type: GRANT_TYPES.test(grantType) ? grantType : 'other' });
      });
      // The typings overload on() per event name; a loop over names needs the plain emitter signature.
      const on = provider.on.bind(provider) as (event: string, listener: (...args: unknown[]) => void) => unknown;
      for (const event of [
        'grant.error',
        'authorization.error',
        'introspection.error',
        'revocation.error',
        'userinfo.error',
        'end_session.error',
        'registration_create.error',
        'server_error',
      ] as const) {
        on(event, (_ctx: unknown, error: unknown) => {
          const code = (error as { error?: unknown } | undefined)?.error;
          oidcErrors.inc({ event, error: typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : 'other' });
        });
      }
      for (const event of [
        'interaction.started',
        'interaction.ended',
        'authorization.success',
        'refresh_token.consumed',
        'grant.revoked',
        'session.destroyed',
      ] as const) {
        on(event, () => oidcEvents.inc({ event }));
      }
    },

    /**
     * The adapter recorder for one model and operation (src/store/oidc-adapter-timed.ts names
     * them from fixed lists, so the labels stay bounded); the factory asks once per adapter.
     */
    adapterTimings: (model: string, operation: string, storage: string): ((seconds: number) => void) => {
      const child = adapterDuration.labels(model, operation, storage);
      return (seconds) => child.observe(seconds);
    },

    /** JWKS fetches and token verifications, reported by the API's bearer authentication. */
    bearer: ((fetches, verifications) => ({
      // eslint-disable-next-line security/detect-object-injection -- result is the literal 'ok' | 'error' the bearer check reports
      jwksFetch: (result) => fetches[result].inc(),
      // eslint-disable-next-line security/detect-object-injection -- result is a literal outcome of the bearer check (typed union)
      verification: (result) => verifications[result].inc(),
    }))(
      // Children made once: this runs on every API request.
      { ok: jwksFetches.labels('ok'), error: jwksFetches.labels('error') },
      { valid: jwtVerifications.labels('valid'), invalid: jwtVerifications.labels('invalid'), error: jwtVerifications.labels('error') },
    ) satisfies BearerObserver,

    /** Logins and lockouts from audit events: login.password, login.passkey, mfa.<factor>.used. */
    observeAudit(event: ObservedAuditEvent): void {
      const result = event.outcome ?? 'success';
      const login = /^login\.([a-z_]+)$/.exec(event.type);
      const factor = login?.[1] ?? /^mfa\.([a-z_]+)\.used$/.exec(event.type)?.[1];
      if (!factor || !FACTOR.test(factor)) return;
      logins.inc({ factor, result });
      if (event.data?.reason === 'invalid_now_locked') lockouts.inc({ factor });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** GET /metrics on a private listener; everything else is 404. */
export function listenMetrics(metrics: Metrics, port: number, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' }).end(text);
      },
      () => {
        res.writeHead(500).end();
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
