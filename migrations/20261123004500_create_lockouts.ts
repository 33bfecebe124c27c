import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Lockout sentinel counters when there is no Redis (src/services/lockout.ts). The key is
  // "lockout:<budget>:<sha256 of the account or address>"; rows past expires_at are ignored and
  // swept.
  await knex.schema.createTable('lockouts', (t) => {
    t.text('key').primary();
    t.integer('failures').notNullable();
    t.integer('level').notNullable();
    t.timestamp('locked_until', { useTz: true });
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('lockouts');
}
