import { Cluster, Redis as IORedis } from 'ioredis';
import type { Config } from '../config/types.ts';
import type { Logger } from '../shared/logger.ts';

/** A standalone/Sentinel client or a Cluster client; the commands we use are the same on both. */
export type Redis = IORedis | Cluster;

type RedisConfig = Pick<Config, 'redisUrl' | 'redisKeyPrefix'> &
  Partial<Pick<Config, 'redisSentinels' | 'redisSentinelName' | 'redisClusterNodes'>>;

const hostPort = (entry: string): { host: string; port: number } => {
  const at = entry.lastIndexOf(':');
  return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
};

/** At most one "Redis unreachable" warning per this interval: an outage retries many times a second. */
const ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * ioredis emits 'error' on every failed (re)connect; with no listener it prints "Unhandled error
 * event" to stderr for each. Commands still fail on their own (and we answer 503, T45), so the
 * event only needs a rate-limited warning through the service's logger, never a crash.
 */
export function logRedisErrors(client: Redis, logger: Logger, intervalMs = ERROR_LOG_INTERVAL_MS): void {
  let lastLogged = -Infinity;
  let suppressed = 0;
  client.on('error', (error: Error) => {
    const now = Date.now();
    if (now - lastLogged < intervalMs) {
      suppressed += 1;
      return;
    }
    lastLogged = now;
    logger.warn({ err: error, suppressed }, 'redis connection error');
    suppressed = 0;
  });
}

/**
 * One ioredis client for the process; every key carries REDIS_KEY_PREFIX. With REDIS_SENTINELS
 * the primary is found (and re-found after a failover) through Sentinel; with
 * REDIS_CLUSTER_NODES the client follows the Cluster's slot map. In both, REDIS_URL only
 * supplies the password (and database number and TLS, where they apply).
 */
export function createRedis(config: RedisConfig, logger?: Logger): Redis | undefined {
  const client = connect(config);
  if (client && logger) logRedisErrors(client, logger);
  return client;
}

function connect(config: RedisConfig): Redis | undefined {
  const options = {
    keyPrefix: config.redisKeyPrefix,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: false,
  };
  const url = config.redisUrl ? new URL(config.redisUrl) : undefined;
  const credentials = {
    ...(url?.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url?.username ? { username: decodeURIComponent(url.username) } : {}),
  };
  const clusterNodes = config.redisClusterNodes ?? [];
  if (clusterNodes.length > 0) {
    // A Cluster has no database numbers. Multi-key operations must stay in one hash slot: see
    // the {oidc} hash tag in oidc-adapter-redis.ts; everything else is single-key.
    return new Cluster(clusterNodes.map(hostPort), {
      keyPrefix: config.redisKeyPrefix,
      enableOfflineQueue: true,
      redisOptions: { maxRetriesPerRequest: 2, ...credentials, ...(url?.protocol === 'rediss:' ? { tls: {} } : {}) },
    });
  }
  const sentinels = config.redisSentinels ?? [];
  if (sentinels.length > 0) {
    return new IORedis({
      ...options,
      sentinels: sentinels.map(hostPort),
      name: config.redisSentinelName ?? 'mymaster',
      ...credentials,
      ...(url && url.pathname.length > 1 ? { db: Number(url.pathname.slice(1)) } : {}),
      ...(url?.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  if (!config.redisUrl) return undefined;
  return new IORedis(config.redisUrl, options);
}
