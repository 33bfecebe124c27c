import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type { Config } from '../config/types.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';

export type { Knex };

export type Database = {
  knex: Knex;
  /** True when this process runs on the embedded PGlite database. */
  embedded: boolean;
  close(): Promise<void>;
};

// bigint counts (e.g. count(*)) come back as numbers; our counts never approach 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type PoolOptions = { poolMax: number; acquireTimeoutMs?: number; statementTimeoutMs?: number; lockTimeoutMs?: number };

/**
 * A bounded pool: at most poolMax connections, a query waits acquireTimeoutMs for one, and
 * Postgres cancels any statement running longer than statementTimeoutMs, or waiting longer than
 * lockTimeoutMs for a lock (0 = no limit). The lock bound matters because the auth server and
 * the API share locks (the audit chain's advisory lock): a process holding one, by a bug or
 * because it was taken over, makes the other fail fast instead of hanging (S3).
 */
export function createKnex(connection: string, options: number | PoolOptions): Knex {
  const {
    poolMax,
    acquireTimeoutMs = 10_000,
    statementTimeoutMs = 0,
    lockTimeoutMs = 0,
  } = typeof options === 'number' ? { poolMax: options } : options;
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: connection,
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
      ...(lockTimeoutMs > 0 ? { lock_timeout: lockTimeoutMs } : {}),
    },
    pool: { min: 0, max: poolMax },
    acquireConnectionTimeout: acquireTimeoutMs,
  });
}

/** DATABASE_URL when set; otherwise embedded PGlite in DATA_DIR over one pooled connection. */
export async function createDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolMax'> &
    Partial<Pick<Config, 'dbAcquireTimeoutMs' | 'dbStatementTimeoutMs' | 'dbLockTimeoutMs'>>,
): Promise<Database> {
  if (config.databaseUrl) {
    const knex = createKnex(config.databaseUrl, {
      poolMax: config.dbPoolMax,
      ...(config.dbAcquireTimeoutMs === undefined ? {} : { acquireTimeoutMs: config.dbAcquireTimeoutMs }),
      ...(config.dbStatementTimeoutMs === undefined ? {} : { statementTimeoutMs: config.dbStatementTimeoutMs }),
      ...(config.dbLockTimeoutMs === undefined ? {} : { lockTimeoutMs: config.dbLockTimeoutMs }),
    });
    return { knex, embedded: false, close: () => knex.destroy() };
  }
  const embedded = await startEmbeddedPostgres(config.dataDir);
  const knex = createKnex(embedded.url, 1);
  return {
    knex,
    embedded: true,
    async close() {
      await knex.destroy();
      await embedded.stop();
    },
  };
}
