import { Redis } from 'ioredis';
import type { Config } from '../config/types.ts';

export type { Redis };

/** One ioredis client for the process; every key carries REDIS_KEY_PREFIX. */
export function createRedis(config: Pick<Config, 'redisUrl' | 'redisKeyPrefix'>): Redis | undefined {
  if (!config.redisUrl) return undefined;
  return new Redis(config.redisUrl, {
    keyPrefix: config.redisKeyPrefix,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: false,
  });
}
