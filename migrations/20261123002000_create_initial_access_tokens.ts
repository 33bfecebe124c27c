import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // RFC 7591 initial access tokens: only the SHA-256 of the token is kept.
  await knex.schema.createTable('initial_access_tokens', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('token_hash').notNullable().unique();
    t.text('note');
    t.timestamp('expires_at', { useTz: true });
    t.integer('max_uses');
    t.integer('uses').notNullable().defaultTo(0);
    t.timestamp('revoked_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // RFC 9449 DPoP proof jti replay cache when no Redis is configured.
  await knex.schema.createTable('dpop_proof_jtis', (t) => {
    t.text('jti_hash').primary();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.raw('CREATE INDEX dpop_proof_jtis_expires_at ON dpop_proof_jtis (expires_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('dpop_proof_jtis');
  await knex.schema.dropTable('initial_access_tokens');
}
