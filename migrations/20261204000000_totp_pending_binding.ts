import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // The flow an unconfirmed TOTP secret was begun in (an interaction uid, or `account:<session
  // id>`): only that flow shows it again or confirms it. Existing pending secrets get none and so
  // belong to no flow: the next enrolment begins a new one. Null once confirmed.
  await knex.schema.alterTable('mfa_totp', (t) => {
    t.text('pending_binding');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mfa_totp', (t) => {
    t.dropColumn('pending_binding');
  });
}
