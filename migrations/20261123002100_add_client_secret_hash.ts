import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Client secrets are verified, never read back: keep only a hash (secret_sealed stays for older rows).
  await knex.schema.alterTable('oauth_clients', (t) => {
    t.text('secret_hash');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('oauth_clients', (t) => {
    t.dropColumn('secret_hash');
  });
}
