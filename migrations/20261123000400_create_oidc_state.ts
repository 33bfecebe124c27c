import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // oidc-provider models when no Redis is configured (sessions, interactions, grants, tokens).
  await knex.schema.createTable('oidc_payloads', (t) => {
    t.text('id').notNullable();
    t.text('type').notNullable();
    t.jsonb('payload').notNullable();
    t.text('grant_id');
    t.text('user_code');
    t.text('uid');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('consumed_at', { useTz: true });
    t.primary(['type', 'id']);
  });
  await knex.raw('CREATE INDEX oidc_payloads_grant_id ON oidc_payloads (grant_id) WHERE grant_id IS NOT NULL');
  await knex.raw('CREATE INDEX oidc_payloads_uid ON oidc_payloads (uid) WHERE uid IS NOT NULL');
  await knex.raw('CREATE INDEX oidc_payloads_user_code ON oidc_payloads (user_code) WHERE user_code IS NOT NULL');
  await knex.raw('CREATE INDEX oidc_payloads_expires_at ON oidc_payloads (expires_at) WHERE expires_at IS NOT NULL');

  // Registered clients are configuration, not session state: always durable in Postgres.
  await knex.schema.createTable('oauth_clients', (t) => {
    t.text('client_id').primary();
    t.jsonb('metadata').notNullable();
    t.text('secret_sealed');
    t.boolean('disabled').notNullable().defaultTo(false);
    t.text('created_by');
    t.timestamp('last_used_at', { useTz: true });
    t.timestamps(true, true);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('oauth_clients');
  await knex.schema.dropTable('oidc_payloads');
}
