import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { migrateLatest } from '../src/store/migrate.ts';

/**
 * Root hooks: every test run gets its own Postgres database and Redis key prefix on the shared
 * servers (TEST_DATABASE_URL, TEST_REDIS_URL), dropped again at the end.
 */
const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;
const databaseName = `portcullis_test_${runId}`;

export const testEnv = {
  databaseUrl: (() => {
    const url = new URL(adminUrl);
    url.pathname = `/${databaseName}`;
    return url.toString();
  })(),
  redisUrl,
  redisKeyPrefix: `test:${runId}:`,
  masterKey: randomBytes(32).toString('base64'),
  vaultKey: randomBytes(32).toString('base64'),
  auditKey: randomBytes(32).toString('base64'),
};

async function withAdmin<T>(fn: (knex: knexFactory.Knex) => Promise<T>): Promise<T> {
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await withAdmin((admin) => admin.raw(`CREATE DATABASE "${databaseName}"`));
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      await migrateLatest(knex);
    } finally {
      await knex.destroy();
    }
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await withAdmin((admin) => admin.raw(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`));
    const redis = new Redis(redisUrl);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${testEnv.redisKeyPrefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    reportLeaks();
  },
};

/**
 * Mocha runs with `exit: true`, so a test that leaves a server listening or a child running no
 * longer hangs the run; it is named here instead, to be fixed.
 */
function reportLeaks(): void {
  const leaked = process.getActiveResourcesInfo().filter((kind) => kind === 'TCPServerWrap' || kind === 'ProcessWrap');
  if (leaked.length > 0) console.warn(`test run left open: ${leaked.join(', ')}`);
}
