import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('email').notNullable();
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('name');
    // Nullable: a passkey-only account has no password.
    t.text('password_hash');
    t.boolean('disabled').notNullable().defaultTo(false);
    t.timestamp('password_changed_at', { useTz: true });
    t.timestamps(true, true);
  });
  // Case-insensitive uniqueness without the citext extension.
  await knex.raw('CREATE UNIQUE INDEX users_email_lower_unique ON users (lower(email))');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('users');
}
