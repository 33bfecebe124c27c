import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // "Sessions not valid before" (src/services/session-validity.ts): sign-ins of the account
  // before this instant no longer count, wherever a session, code or refresh token is read. The
  // session kept when it was set (the one that changed the password) is named by its uid.
  await knex.schema.alterTable('users', (t) => {
    t.timestamp('sessions_not_before', { useTz: true });
    t.text('sessions_not_before_keep');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('sessions_not_before_keep');
    t.dropColumn('sessions_not_before');
  });
}
