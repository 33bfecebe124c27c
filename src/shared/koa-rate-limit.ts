import type { Context, Middleware } from 'koa';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/types.ts';
import type { Redis } from '../store/redis.ts';
import type { Logger } from './logger.ts';
import { Problem, problemType } from './problem.ts';

/** Largest form body we read ahead to find a client_id (oidc-provider's own limit is 56 KiB). */
const PEEK_LIMIT = 56 * 1024;

type Bucket = {
  name: string;
  perIp: number;
  perClient: number;
  /** Per-client quotas replacing perClient for those client_ids (0 = no limit). */
  clientOverrides?: ReadonlyMap<string, number>;
  matches: (ctx: Context) => boolean;
};

/**
 * Rate limits per client and per IP on the endpoints oidc-provider leaves unprotected ("does not
 * implement resource limits"): /token, /token/introspection, /device/auth, /reg, and our login
 * POSTs. The IP is ctx.ip: the socket address, or X-Forwarded-For only when TRUST_PROXY is set
 * (BCP §4.13, T34). The client is the Basic-auth user or the form's client_id, read ahead and
 * handed to oidc-provider as req.body. Over the limit: 429 with Retry-After and RateLimit-*
 * headers. When the limiter's store fails, requests are refused with 503 (fail closed, T45).
 */
export function rateLimits({ config, redis, logger }: { config: Config; redis: Redis | undefined; logger: Logger }): Middleware {
  const limits = config.rateLimits;
  const base = new URL(config.issuer).pathname.replace(/\/$/, '');
  const buckets: Bucket[] = [
    {
      name: 'token',
      perIp: limits.tokenPerIp,
      perClient: limits.tokenPerClient,
      clientOverrides: parseOverrides(limits.tokenPerClientOverrides),
      matches: (ctx) => ctx.path === `${base}/token` || ctx.path === `${base}/token/introspection` || ctx.path === `${base}/device/auth`,
    },
    {
      name: 'registration',
      perIp: limits.registrationPerIp,
      perClient: 0,
      matches: (ctx) => ctx.path === `${base}/reg` || ctx.path.startsWith(`${base}/reg/`),
    },
    { name: 'login', perIp: limits.loginPerIp, perClient: 0, matches: (ctx) => /^\/interaction\/[^/]+\/login$/.test(ctx.path) },
  ];
  const limiterFor = (name: string, points: number): RateLimiterAbstract | undefined => {
    if (points <= 0) return undefined;
    const options = { keyPrefix: `${config.redisKeyPrefix}rl:${name}`, points, duration: limits.windowSeconds };
    // No insurance limiter: a broken store refuses requests instead of silently not limiting.
    return redis ? new RateLimiterRedis({ ...options, storeClient: redis, rejectIfRedisNotReady: true }) : new RateLimiterMemory(options);
  };
  type Limit = { limiter: RateLimiterAbstract; points: number };
  const limitOf = (name: string, points: number): Limit | undefined => {
    const limiter = limiterFor(name, points);
    return limiter && { limiter, points };
  };
  const active = buckets.map((bucket) => {
    // Overrides count under the same keys as the default, so changing a quota keeps the window.
    const overrides = new Map([...(bucket.clientOverrides ?? [])].map(([id, points]) => [id, limitOf(`${bucket.name}:client`, points)]));
    const client = limitOf(`${bucket.name}:client`, bucket.perClient);
    return {
      ...bucket,
      ip: limiterFor(`${bucket.name}:ip`, bucket.perIp),
      countsClients: client !== undefined || [...overrides.values()].some(Boolean),
      clientLimit: (clientId: string): Limit | undefined => (overrides.has(clientId) ? overrides.get(clientId) : client),
    };
  });

  let lastLogged = 0;
  const consume = async (ctx: Context, limiter: RateLimiterAbstract, key: string, points: number): Promise<void> => {
    let state: RateLimiterRes;
    try {
      state = await limiter.consume(key);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) throw tooManyRequests(rejection, points);
      if (Date.now() - lastLogged > 60_000) {
        lastLogged = Date.now();
        logger.error({ err: rejection }, 'rate limiter store failed; refusing rate-limited requests (fail closed)');
      }
      throw new Problem({
        status: 503,
        type: problemType('unavailable'),
        title: 'Service temporarily unavailable',
        headers: { 'Retry-After': '5' },
        cause: rejection,
      });
    }
    ctx.set('RateLimit-Limit', String(points));
    ctx.set('RateLimit-Remaining', String(state.remainingPoints));
    ctx.set('RateLimit-Reset', String(Math.max(0, Math.ceil(state.msBeforeNext / 1000))));
  };

  return async function rateLimitMiddleware(ctx, next): Promise<void> {
    const bucket = ctx.method === 'POST' ? active.find((b) => b.matches(ctx)) : undefined;
    if (!bucket) {
      await next();
      return;
    }
    if (bucket.ip) await consume(ctx, bucket.ip, `ip:${ctx.ip}`, bucket.perIp);
    if (bucket.countsClients) {
      const clientId = basicClientId(ctx) ?? (await peekFormClientId(ctx));
      const limit = clientId ? bucket.clientLimit(clientId) : undefined;
      if (limit) await consume(ctx, limit.limiter, `client:${clientId}`, limit.points);
    }
    await next();
  };
}

/** The 429 problem for a spent budget: Retry-After plus the RateLimit-* fields (RFC 9457 body). */
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
 * buffer is left on req.body, which oidc-provider parses instead of the stream.
 */
async function peekFormClientId(ctx: Context): Promise<string | undefined> {
  const length = Number(ctx.get('content-length'));
  if (!ctx.is('application/x-www-form-urlencoded') || !Number.isInteger(length) || length <= 0 || length > PEEK_LIMIT || !ctx.req.readable)
    return undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
    const buffer = chunk as Buffer;
    received += buffer.length;
    chunks.push(buffer);
    if (received > length) break;
  }
  if (received !== length)
    throw new Problem({ status: 400, type: problemType('bad-request'), title: 'Request body does not match its Content-Length' });
  const body = Buffer.concat(chunks);
  (ctx.req as typeof ctx.req & { body?: Buffer }).body = body;
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
