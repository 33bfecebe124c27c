import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';

const directory = fileURLToPath(new URL('../../migrations/', import.meta.url));
const options = { directory, loadExtensions: ['.ts'], tableName: 'knex_migrations' };

/** Applies pending migrations; returns the names applied. knex's lock table stops a concurrent run. */
export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest(options)) as [number, string[]];
  return applied;
}

/** Names of migrations not yet applied (readiness checks and the CLI). */
export async function pendingMigrations(knex: Knex): Promise<string[]> {
  const [, pending] = (await knex.migrate.list(options)) as [unknown, { file: string }[]];
  return pending.map((m) => m.file);
}
