import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One AES-256-GCM data key per user, wrapped (sealed) under the master key with the user id as
  // associated data. Deleting the row crypto-shreds every payload sealed under it.
  await knex.schema.createTable('user_data_keys', (t) => {
    t.uuid('user_id').primary().references('users.id').onDelete('CASCADE');
    t.text('key_wrapped').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('rewrapped_at', { useTz: true });
  });

  // The vault. Label and data are sealed together under the owner's data key, with the record id
  // and owner id as associated data (a payload cannot be moved to another row or owner).
  await knex.schema.createTable('records', (t) => {
    t.uuid('id').primary();
    t.uuid('owner_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('payload_sealed').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['owner_id', 'created_at', 'id']);
  });
  await knex.raw(
    `ALTER TABLE records ADD CONSTRAINT records_type_check CHECK (type IN ('note','identity','financial','medical','document'))`,
  );

  // Fine-grained read access for other users.
  await knex.schema.createTable('record_shares', (t) => {
    t.uuid('record_id').notNullable().references('records.id').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['record_id', 'user_id']);
    t.index(['user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('record_shares');
  await knex.schema.dropTable('records');
  await knex.schema.dropTable('user_data_keys');
}
