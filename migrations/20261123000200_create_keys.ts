import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Token signing keys; the private JWK is sealed (AES-256-GCM) under the master key.
  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.jsonb('public_jwk').notNullable();
    t.text('private_jwk_sealed').notNullable();
    // next: published, not yet signing; active: signs; retired: no longer published.
    t.text('state').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('activated_at', { useTz: true });
    t.timestamp('retired_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_state_check CHECK (state IN ('next','active','retired'))`);

  // Cookie signing keys (Keygrip list, newest first), sealed under the master key.
  await knex.schema.createTable('cookie_keys', (t) => {
    t.increments('id').primary();
    t.text('key_sealed').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('cookie_keys');
  await knex.schema.dropTable('signing_keys');
}
