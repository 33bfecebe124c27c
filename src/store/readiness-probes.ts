import type { Knex } from 'knex';
import type { Probes } from '../shared/health.ts';
import { pendingMigrations } from './migrate.ts';
import type { Redis } from './redis.ts';

/**
 * What /readyz asks of the storage (src/shared/health.ts runs them, bounded and shared per
 * process): Postgres answers, Redis answers when the process uses it, and the schema is the one
 * this release expects.
 */
export function storageProbes({ knex, redis }: { knex: Knex; redis?: Redis | undefined }): Probes {
  return {
    postgres: async () => {
      await knex.raw('SELECT 1');
    },
    ...(redis ? { redis: () => redis.ping() } : {}),
    migrations: async () => {
      // A newer release migrated the schema, or this one's migrations are missing.
      const pending = await pendingMigrations(knex);
      if (pending.length > 0) throw new Error(`${pending.length} pending`);
    },
  };
}
