import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Operator scopes (account:export, account:erase) a token lets its registrations hold, space-separated
  // like an OAuth scope string; empty for every existing token, so nothing widens by this migration.
  await knex.schema.alterTable('initial_access_tokens', (t) => {
    t.text('allowed_scope').notNullable().defaultTo('');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('initial_access_tokens', (t) => {
    t.dropColumn('allowed_scope');
  });
}
