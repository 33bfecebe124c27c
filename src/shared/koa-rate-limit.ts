import type { Context, Middleware } from 'koa';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/types.ts';
// The library's client types: shared code takes the client src/store/redis.ts makes, never the store module.
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from './logger.ts';
import { ipBudgetKey } from './ip-budget.ts';
import { PROVIDER_BODY_LIMIT, readBodyAhead } from './read-body-ahead.ts';
import { Problem, problemType, serviceUnavailable } from './problem.ts';

/**
 * The request budgets. token: the back-channel endpoints (per IP and per client); registration:
 * RFC 7591/7592; login: our sign-in form; browser: the provider's front-channel pages;
 * metadata: discovery, JWKS, userinfo and CORS preflights.
 */
export type BucketName = 'token' | 'registration' | 'login' | 'browser' | 'metadata';

type Bucket = {
  name: BucketName;
  perIp: number;
  perClient: number;
  /** Per-client quotas replacing perClient for those client_ids (0 = no limit). */
  clientOverrides?: ReadonlyMap<string, number>;
};

export type RateLimits = {
  /**
   * In front of everything: counts the request in the bucket bucketOf names (none: not counted).
   * On the auth server bucketOf is keyed on oidc-provider's own route name, never on the path's
   * spelling (R3).
   */
  byBucket(bucketOf: (ctx: Context) => BucketName | undefined): Middleware;
  /** Route middleware for our own routes: whatever spelling the router accepted, it is counted. */
  bucket(name: BucketName): Middleware;
};

/**
 * Rate limits per IP and per client on every endpoint (oidc-provider "does not implement resource
 * limits"). The IP is ctx.ip (the socket address, or X-Forwarded-For as far as the proxies
 * TRUST_PROXY names say: BCP §4.13, T34, R13), grouped by ipBudgetKey (an IPv6 /64 is one client, R3). The client is the
 * Basic-auth user or the form's client_id, read ahead and put back into the request stream.
 * Over the limit: 429 with Retry-After and RateLimit-* headers. When the limiter's store fails,
 * requests are refused with 503 (fail closed, T45).
 */
export function createRateLimits({
  config,
  redis,
  logger,
  counterKey,
}: {
  config: Config;
  redis: Redis | Cluster | undefined;
  logger: Logger;
  /** Names an address's counter by its keyed digest: a copy of Redis does not say who sent what (S12). */
  counterKey: (value: string) => string;
}): RateLimits {
  const limits = config.rateLimits;
  const buckets: Bucket[] = [
    {
      name: 'token',
      perIp: limits.tokenPerIp,
      perClient: limits.tokenPerClient,
      clientOverrides: parseOverrides(limits.tokenPerClientOverrides),
    },
    { name: 'registration', perIp: limits.registrationPerIp, perClient: 0 },
    { name: 'login', perIp: limits.loginPerIp, perClient: 0 },
    { name: 'browser', perIp: limits.browserPerIp, perClient: 0 },
    { name: 'metadata', perIp: limits.metadataPerIp, perClient: 0 },
  ];
  const limiterFor = (name: string, points: number): RateLimiterAbstract | undefined => {
    if (points <= 0) return undefined;
    // The client adds REDIS_KEY_PREFIX to every key itself (src/store/redis.ts keyPrefix).
    const options = { keyPrefix: `rl:${name}`, points, duration: limits.windowSeconds };
    // No insurance limiter: a broken store refuses requests instead of silently not limiting.
    return redis ? new RateLimiterRedis({ ...options, storeClient: redis, rejectIfRedisNotReady: true }) : new RateLimiterMemory(options);
  };
  type Limit = { limiter: RateLimiterAbstract; points: number };
  const limitOf = (name: string, points: number): Limit | undefined => {
    const limiter = limiterFor(name, points);
    return limiter && { limiter, points };
  };
  const active = new Map(
    buckets.map((bucket) => {
      // Overrides count under the same keys as the default, so changing a quota keeps the window.
      const overrides = new Map([...(bucket.clientOverrides ?? [])].map(([id, points]) => [id, limitOf(`${bucket.name}:client`, points)]));
      const client = limitOf(`${bucket.name}:client`, bucket.perClient);
      return [
        bucket.name,
        {
          ...bucket,
          ip: limiterFor(`${bucket.name}:ip`, bucket.perIp),
          countsClients: client !== undefined || [...overrides.values()].some(Boolean),
          clientLimit: (clientId: string): Limit | undefined => (overrides.has(clientId) ? overrides.get(clientId) : client),
        },
      ] as const;
    }),
  );

  let lastLogged = 0;
  const consume = async (ctx: Context, limiter: RateLimiterAbstract, key: string, points: number): Promise<void> => {
    try {
      await spendBudget(ctx, limiter, key, points);
    } catch (error) {
      if (error instanceof Problem) throw error;
      if (Date.now() - lastLogged > 60_000) {
        lastLogged = Date.now();
        logger.error({ err: error }, 'rate limiter store failed; refusing rate-limited requests (fail closed)');
      }
      throw serviceUnavailable(error);
    }
  };

  const spend = async (ctx: Context, name: BucketName): Promise<void> => {
    const bucket = active.get(name);
    if (!bucket) return;
    if (bucket.ip) await consume(ctx, bucket.ip, counterKey(ipBudgetKey(ctx.ip)), bucket.perIp);
    if (bucket.countsClients) {
      const clientId = basicClientId(ctx) ?? (await peekFormClientId(ctx));
      const limit = clientId ? bucket.clientLimit(clientId) : undefined;
      // A client_id names an application, not a person: kept as it is.
      if (limit) await consume(ctx, limit.limiter, `client:${clientId}`, limit.points);
    }
  };

  return {
    byBucket(bucketOf) {
      return async function rateLimitMiddleware(ctx, next): Promise<void> {
        const name = bucketOf(ctx);
        if (name) await spend(ctx, name);
        await next();
      };
    },
    bucket(name) {
      return async function routeRateLimit(ctx, next): Promise<void> {
        await spend(ctx, name);
        await next();
      };
    },
  };
}

/** The 429 problem for a spent budget: Retry-After plus the RateLimit-* fields (RFC 9457 body). */
/**
 * Spends one point of `key` in `limiter` and says what is left (RateLimit-* headers, draft-ietf-
 * httpapi-ratelimit-headers): 429 problem with Retry-After when none is left. A store error is
 * thrown as it is, for the caller to answer (the auth server fails closed with 503).
 */
export async function spendBudget(ctx: Context, limiter: RateLimiterAbstract, key: string, points: number): Promise<void> {
  let state: RateLimiterRes;
  try {
    state = await limiter.consume(key);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) throw tooManyRequests(rejection, points);
    throw rejection;
  }
  ctx.set('RateLimit-Limit', String(points));
  ctx.set('RateLimit-Remaining', String(state.remainingPoints));
  ctx.set('RateLimit-Reset', String(Math.max(0, Math.ceil(state.msBeforeNext / 1000))));
}

export function tooManyRequests(rejection: RateLimiterRes, points: number): Problem {
  const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
  return new Problem({
    status: 429,
    type: problemType('rate-limited'),
    title: 'Too many requests',
    detail: `Too many requests; try again in ${retryAfter} seconds.`,
    headers: {
      'Retry-After': String(retryAfter),
      'RateLimit-Limit': String(points),
      'RateLimit-Remaining': '0',
      'RateLimit-Reset': String(retryAfter),
    },
  });
}

/** RATE_LIMIT_*_PER_CLIENT_OVERRIDES entries, "client_id=limit" (the schema checks the shape). */
export function parseOverrides(pairs: readonly string[]): Map<string, number> {
  return new Map(pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), Number(pair.slice(pair.indexOf('=') + 1))]));
}

function basicClientId(ctx: Context): string | undefined {
  const header = ctx.get('authorization');
  if (!/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/**
 * Reads a small urlencoded body ahead to find client_id (public clients, client_secret_post) or
 * the iss of a client_assertion (private_key_jwt; unverified, used only as a counter key). The
 * bytes are put back into the request stream, where oidc-provider reads them.
 */
async function peekFormClientId(ctx: Context): Promise<string | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const body = await readBodyAhead(ctx.req, PROVIDER_BODY_LIMIT);
  if (body === 'skipped') return undefined;
  if (body === 'mismatch')
    throw new Problem({ status: 400, type: problemType('bad-request'), title: 'Request body does not match its Content-Length' });
  if (body === 'too-large') throw new Problem({ status: 413, type: problemType('payload-too-large'), title: 'Request body too large' });
  const form = new URLSearchParams(body.toString('utf8'));
  const clientId = form.get('client_id');
  if (clientId) return clientId;
  const assertion = form.get('client_assertion');
  if (!assertion) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      iss?: unknown;
      sub?: unknown;
    };
    return typeof payload.sub === 'string' ? payload.sub : typeof payload.iss === 'string' ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}
