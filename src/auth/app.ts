import Koa from 'koa';
import type Provider from 'oidc-provider';
import type { Deps } from '../deps.ts';
import { health, type Readiness } from '../shared/health.ts';
import { storageProbes } from '../store/readiness-probes.ts';
import { problemHandler } from '../shared/koa-problem-handler.ts';
import { requestLogger } from '../shared/koa-request-logger.ts';
import { securityHeaders } from '../shared/koa-security-headers.ts';
import { createRateLimits } from '../shared/koa-rate-limit.ts';
import { attachClientGovernance } from './client-governance.ts';
import { releaseFailedClaims } from './registration-token-claim.ts';
import { cacheableMetadata } from './cacheable-metadata.ts';
import { auditRefreshReuse, recentRefreshReuse } from './refresh-reuse.ts';
import { detectConstantChallenges } from './constant-challenge.ts';
import { accessHistory } from '../services/access-history.ts';
import type { Actor } from '../services/records.ts';
import { createCsrfTokens } from './koa-csrf.ts';
import { createProvider } from './provider.ts';
import { createDevicePages } from './routes/device.ts';
import { accountRoutes } from './routes/account.ts';
import { attachAccountIndex } from './account-index.ts';
import { interactionRoutes } from './routes/interaction.ts';
import { signUpRoutes } from './routes/sign-up.ts';
import { emailGateFor, verifyEmailRoutes } from './routes/verify-email.ts';
import { verifiedEmailRequired } from '../config/sign-up.ts';
import { sessionTtl } from './session-lifetime.ts';
import { notFoundPage, render, serveStatic } from './views.ts';
import { allowedMethods } from '../shared/koa-allowed-methods.ts';
import { canonicalRequest } from './koa-canonical-request.ts';
import { clientAddressOf } from '../shared/client-address.ts';
import { bucketOfProviderRoute, nameProviderRoute, providerRouteIn, providerRouteOf } from './provider-routes.ts';

export type AuthApp = { app: Koa; provider: Provider };

/**
 * The authorization server: our routes first, then oidc-provider (which reads its own bodies
 * and ends its responses), whose unknown paths get a friendly 404 (notFoundPage). Body parsers live on our routers only.
 */
export async function buildAuthApp(deps: Deps, readiness: Readiness): Promise<AuthApp> {
  const { config, logger } = deps;
  await deps.keys.ensureSigningKeys();
  const cookieKeys = config.cookieKeys ?? (await deps.keys.cookieKeys());
  // Atomic "first use" claims (Redis SET NX, or Postgres) for the listeners below.
  const { once } = deps;
  const devicePages = createDevicePages({
    lockout: deps.lockouts.deviceUserCode,
    audit: deps.audit,
    accounts: deps.accounts,
    logger,
  });
  const provider = createProvider({
    config,
    logger,
    accounts: deps.accounts,
    // Every model's storage and wrappers: src/auth/oidc-storage.ts.
    adapter: deps.oidcStorage.forProvider(),
    jwks: await deps.keys.privateJwks(),
    cookieKeys,
    devicePages,
  });
  auditRefreshReuse(provider, { audit: deps.audit, once, logger, ttlSeconds: config.ttl.refreshToken });
  detectConstantChallenges(provider, { audit: deps.audit, once, logger });
  releaseFailedClaims(provider, once);
  attachClientGovernance(provider, {
    clients: deps.stores.clients,
    initialAccessTokens: deps.stores.initialAccessTokens,
    audit: deps.audit,
    logger,
  });
  // Below the rotated-key publication delay, so a cached JWKS always has the next signing key.
  cacheableMetadata(provider, { maxAgeSeconds: Math.min(300, config.signingKeys.activateAfterSeconds) });
  provider.use(notFoundPage);
  const csrf = createCsrfTokens(cookieKeys);
  const { auditSearch } = deps.api.stores;
  const issuerOrigin = new URL(config.issuer).origin;

  // Koa's own proxy mode believes any caller's X-Forwarded-For: the edge decides instead (R13).
  const app = new Koa({ proxy: false });
  app.keys = [...cookieKeys];
  const clientAddress = clientAddressOf(config.trustProxy);
  // First: the client address from the proxies TRUST_PROXY names (R13), then host, scheme and target from ISSUER (R2).
  app.use(canonicalRequest({ issuer: config.issuer, clientAddress }));
  app.use(requestLogger({ logger, trustsPeer: clientAddress.fromTrustedProxy }));
  app.use(securityHeaders({ https: config.issuer.startsWith('https://') }));
  app.use(health({ probes: storageProbes(deps), readiness }));
  app.use(serveStatic);
  app.use(
    problemHandler({
      logger,
      renderHtml: (ctx, problem) => {
        render(
          ctx,
          'error',
          { heading: problem.title, message: problem.expose ? (problem.detail ?? '') : 'Please try again in a moment.' },
          problem.status,
        );
      },
    }),
  );
  // The provider's own name for the request (its matcher: any case, one trailing slash), so every
  // guard in front of it is keyed on the route and not on the path's spelling (R3).
  app.use(nameProviderRoute(providerRouteOf(provider)));
  // Per-IP and per-client request limits: every provider route spends a bucket (R11, T34); our
  // sign-in form spends the login bucket as middleware of its own route.
  const limits = createRateLimits({ config, redis: deps.redis, logger, counterKey: deps.counterKey });
  app.use(
    limits.byBucket((ctx) => {
      const route = providerRouteIn(ctx);
      return route === undefined ? undefined : bucketOfProviderRoute(route);
    }),
  );
  // Our sign-in and account pages spend the login bucket on every POST, as route middleware (R3, R14).
  const loginLimit = limits.bucket('login');
  // REQUIRE_VERIFIED_EMAIL: a sign-in of an unverified account waits for its address's code.
  const emailGate = verifiedEmailRequired(config) ? emailGateFor({ provider, emailVerification: deps.emailVerification }) : undefined;
  const interactions = interactionRoutes({
    provider,
    accounts: deps.accounts,
    mfa: deps.mfa,
    csrf,
    issuerOrigin,
    recentAuthSeconds: config.ttl.recentAuth,
    loginLimit,
    emailGate,
    signUp: config.signUp.enabled,
  });
  app.use(interactions.routes());
  app.use(allowedMethods(interactions));
  const interactionSteps = { provider, accounts: deps.accounts, mfa: deps.mfa, csrf, issuerOrigin, loginLimit, emailGate };
  if (emailGate) {
    const verify = verifyEmailRoutes({ ...interactionSteps, emailGate, emailVerification: deps.emailVerification });
    app.use(verify.routes());
    app.use(allowedMethods(verify));
  }
  // SELF_REGISTRATION: off, these paths do not exist.
  if (config.signUp.enabled) {
    const signUp = signUpRoutes({ ...interactionSteps, signUp: deps.signUp, passwordMinLength: config.passwords.minLength });
    app.use(signUp.routes());
    app.use(allowedMethods(signUp));
  }
  attachAccountIndex(provider, deps.accountIndex, logger);
  const { records } = deps.api;
  const shareOffers = {
    incoming: (actor: Actor) => records.incomingOffers(actor),
    accept: (actor: Actor, recordId: string) => records.acceptOffer(actor, recordId),
    decline: (actor: Actor, recordId: string) => records.declineOffer(actor, recordId),
    received: (actor: Actor) => records.receivedShares(actor),
    leave: (actor: Actor, recordId: string) => records.leaveShare(actor, recordId),
  };
  const account = accountRoutes({
    provider,
    accounts: deps.accounts,
    mfa: deps.mfa,
    sessions: deps.accountSessions,
    csrf,
    issuer: config.issuer,
    recentAuthSeconds: config.ttl.recentAuth,
    sessionLifetime: sessionTtl({ idleSeconds: config.ttl.sessionIdle, maxSeconds: config.ttl.sessionMax }),
    reuseNotices: (userId) => recentRefreshReuse(auditSearch, userId),
    accessHistory: (userId) => accessHistory(auditSearch, userId),
    offers: shareOffers,
    loginLimit,
    emailVerification: deps.emailVerification,
    mailAvailable: deps.mail.transport !== 'none',
  });
  app.use(account.routes());
  app.use(allowedMethods(account));
  app.use(devicePages.guard);
  // callback() composes the provider's middleware anew on every call: build it once, at the
  // first request (after the server has added its own provider.use() middleware).
  let providerHandler: ReturnType<Provider['callback']> | undefined;
  app.use(async function mountProvider(ctx) {
    // Everything under the issuer path that is not ours belongs to the provider.
    ctx.respond = false;
    providerHandler ??= provider.callback();
    await providerHandler(ctx.req, ctx.res);
  });
  return { app, provider };
}
