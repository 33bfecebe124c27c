import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Random secrets the server generates for itself on first start (the root of the oidc state's
  // keys, the recovery-code pepper), sealed under MASTER_KEY with `server-secret:<name>` as
  // associated data. Stored rather than derived from MASTER_KEY, so rotating MASTER_KEY re-seals
  // them like any other value and they stay the same (S2, S6).
  await knex.schema.createTable('server_secrets', (t) => {
    t.text('name').primary();
    t.text('secret_sealed').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('server_secrets');
}
