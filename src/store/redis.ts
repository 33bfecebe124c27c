import { Redis } from 'ioredis';
import type { Config } from '../config/types.ts';

export type { Redis };

type RedisConfig = Pick<Config, 'redisUrl' | 'redisKeyPrefix'> & Partial<Pick<Config, 'redisSentinels' | 'redisSentinelName'>>;

/**
 * One ioredis client for the process; every key carries REDIS_KEY_PREFIX. With REDIS_SENTINELS
 * the primary is found (and re-found after a failover) through Sentinel; REDIS_URL then only
 * supplies the password, database number and TLS.
 */
export function createRedis(config: RedisConfig): Redis | undefined {
  const options = {
    keyPrefix: config.redisKeyPrefix,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: false,
  };
  const sentinels = config.redisSentinels ?? [];
  if (sentinels.length > 0) {
    const url = config.redisUrl ? new URL(config.redisUrl) : undefined;
    return new Redis({
      ...options,
      sentinels: sentinels.map((entry) => {
        const at = entry.lastIndexOf(':');
        return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
      }),
      name: config.redisSentinelName ?? 'mymaster',
      ...(url?.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(url?.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url && url.pathname.length > 1 ? { db: Number(url.pathname.slice(1)) } : {}),
      ...(url?.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  if (!config.redisUrl) return undefined;
  return new Redis(config.redisUrl, options);
}
