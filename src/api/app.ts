import cors from '@koa/cors';
import Koa from 'koa';
import type { Deps } from '../deps.ts';
import { health, type Readiness } from '../shared/health.ts';
import { problemHandler } from '../shared/koa-problem-handler.ts';
import { requestLogger } from '../shared/koa-request-logger.ts';
import { apiSecurityHeaders } from '../shared/koa-security-headers.ts';
import { notFound } from '../shared/problem.ts';
import { mountRoutes } from './define-route.ts';
import { allowedMethods } from '../shared/koa-allowed-methods.ts';
import { apiRateLimits } from './koa-api-rate-limit.ts';
import { bearerAuth, type BearerObserver } from './koa-bearer-auth.ts';
import { buildOpenApiDocument, openApiEndpoint } from './openapi.ts';
import { apiRoutes } from './routes/index.ts';
import { protectedResourceMetadata } from './routes/protected-resource.ts';
import { createReplayStore } from '../store/dpop-replay.ts';
import { apiInternalFetch } from '../shared/tls.ts';

/** The resource API: JSON only, problem+json errors, bearer JWTs for the API_URL audience. */
export function buildApiApp(deps: Deps, readiness: Readiness, observe?: BearerObserver): Koa {
  const { config, logger } = deps;
  const app = new Koa({ proxy: config.trustProxy });
  const allowed = new Set(config.corsOrigins);
  app.use(requestLogger({ logger, trustProxy: config.trustProxy }));
  app.use(apiSecurityHeaders({ https: config.apiUrl.startsWith('https://') }));
  app.use(
    cors({
      // An explicit allowlist; no origin is reflected that is not configured.
      origin: (ctx) => (allowed.has(ctx.get('Origin')) ? ctx.get('Origin') : ''),
      allowHeaders: ['Authorization', 'Content-Type', 'DPoP'],
      exposeHeaders: ['WWW-Authenticate', 'X-Request-Id'],
      maxAge: 600,
    }),
  );
  const resourceMetadata = protectedResourceMetadata({ apiUrl: config.apiUrl, issuer: config.issuer });
  app.use(resourceMetadata.middleware);
  app.use(problemHandler({ logger }));
  app.use(health({ knex: deps.knex, redis: deps.redis, readiness }));
  const routes = apiRoutes(deps);
  const router = mountRoutes(routes, { rbac: deps.api.rbac });
  app.use(openApiEndpoint(buildOpenApiDocument(routes, { issuer: config.issuer, apiUrl: config.apiUrl, version: '1.0.0' })));
  const internalFetch = apiInternalFetch(config);
  const authed = bearerAuth({
    issuer: config.issuer,
    audience: config.apiUrl,
    jwksUrl: config.jwksUrl ?? `${config.issuer}/jwks`,
    dpopReplay: createReplayStore({ redis: deps.redis, knex: deps.knex }),
    challenge: resourceMetadata.challenge,
    ...(internalFetch ? { fetch: internalFetch } : {}),
    ...(observe ? { observe } : {}),
  });
  const limits = apiRateLimits(config);
  app.use(limits.perIp);
  app.use(async function requireToken(ctx, next) {
    if (ctx.path.startsWith('/v1/')) await authed(ctx, () => limits.perClient(ctx, next));
    else await next();
  });
  app.use(router.routes());
  app.use(allowedMethods(router));
  app.use(function fallthrough() {
    throw notFound();
  });
  return app;
}
