import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // How code_hash was made (S6): 1 = SHA-256 of the code without a secret (earlier releases),
  // 2 = HMAC-SHA-256 under the server's recovery-code pepper over that digest. The default stays
  // 1 so rows an earlier release still writes during a rolling upgrade are labelled right; every
  // start of the auth server, and `portcullis keys reseal`, rekeys version 1 rows to version 2.
  await knex.schema.alterTable('mfa_recovery_codes', (t) => {
    t.smallint('hash_version').notNullable().defaultTo(1);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mfa_recovery_codes', (t) => {
    t.dropColumn('hash_version');
  });
}
