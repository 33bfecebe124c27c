import cors from '@koa/cors';
import Koa, { type Middleware } from 'koa';
import compose from 'koa-compose';
import type { ApiDeps } from '../deps.ts';
import { health, type Readiness } from '../shared/health.ts';
import { storageProbes } from '../store/readiness-probes.ts';
import { problemHandler } from '../shared/koa-problem-handler.ts';
import { requestLogger } from '../shared/koa-request-logger.ts';
import { apiSecurityHeaders } from '../shared/koa-security-headers.ts';
import { notFound } from '../shared/problem.ts';
import { mountRoutes } from './define-route.ts';
import { allowedMethods } from '../shared/koa-allowed-methods.ts';
import { apiRateLimits } from './koa-api-rate-limit.ts';
import { bearerAuth } from './koa-bearer-auth.ts';
import type { BearerObserver } from '../shared/metrics.ts';
import { buildOpenApiDocument, openApiEndpoint } from './openapi.ts';
import { apiRoutes } from './routes/index.ts';
import { protectedResourceMetadata } from './routes/protected-resource.ts';
import { apiInternalFetch } from '../shared/tls.ts';
import { clientAddressOf } from '../shared/client-address.ts';

/** The resource API: JSON only, problem+json errors, bearer JWTs for the API_URL audience. */
export function buildApiApp(deps: ApiDeps, readiness: Readiness, observe?: BearerObserver): Koa {
  const { config, logger } = deps;
  // Koa's own proxy mode believes any caller's X-Forwarded-For: the client address comes from
  // the proxies TRUST_PROXY names (R13), decided once, first.
  const app = new Koa({ proxy: false });
  const allowed = new Set(config.corsOrigins);
  const clientAddress = clientAddressOf(config.trustProxy);
  app.use(async function clientAddressMiddleware(ctx, next) {
    ctx.request.ip = clientAddress.of(ctx.req);
    await next();
  });
  app.use(requestLogger({ logger, trustsPeer: clientAddress.fromTrustedProxy }));
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
  // Outside the problem handler: it adds resource_metadata to every 401/403 challenge (RFC 9728 §5.1).
  app.use(resourceMetadata.middleware);
  app.use(problemHandler({ logger }));
  const routeDefinitions = apiRoutes(deps);
  const router = mountRoutes(routeDefinitions, { rbac: deps.api.rbac });
  const internalFetch = apiInternalFetch(config);
  const authed = bearerAuth({
    issuer: config.issuer,
    audience: config.apiUrl,
    jwksUrl: config.jwksUrl ?? `${config.issuer}/jwks`,
    dpopReplay: deps.dpopReplay,
    challenge: resourceMetadata.challenge,
    ...(internalFetch ? { fetch: internalFetch } : {}),
    ...(observe ? { observe } : {}),
  });
  const limits = apiRateLimits(config);
  const fallthrough: Middleware = () => {
    throw notFound();
  };
  // The resource routes (/v1/…) serve every request of every relying party: one chain, composed
  // once (per-IP limit → token → per-client limit → route), ahead of the health and OpenAPI
  // handlers that never answer them.
  const resourceChain = compose([
    limits.perIp,
    authed,
    limits.perClient,
    router.routes() as Middleware,
    allowedMethods(router),
    fallthrough,
  ]);
  app.use(async function resourceRoutes(ctx, next) {
    if (ctx.path.startsWith('/v1/')) await resourceChain(ctx, next);
    else await next();
  });
  app.use(health({ probes: storageProbes(deps), readiness }));
  app.use(openApiEndpoint(buildOpenApiDocument(routeDefinitions, { issuer: config.issuer, apiUrl: config.apiUrl, version: '1.0.0' })));
  app.use(fallthrough);
  return app;
}
