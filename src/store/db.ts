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

export function createKnex(connection: string, poolMax: number): Knex {
  return knexFactory({
    client: 'pg',
    connection,
    pool: { min: 0, max: poolMax },
    acquireConnectionTimeout: 10_000,
  });
}

/** DATABASE_URL when set; otherwise embedded PGlite in DATA_DIR over one pooled connection. */
export async function createDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolMax'>): Promise<Database> {
  if (config.databaseUrl) {
    const knex = createKnex(config.databaseUrl, config.dbPoolMax);
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
