import type { Knex } from 'knex';

/**
 * Mailed verification codes (issue 12): a sign-up waiting for its address to be proven, an
 * account verifying its address before its sign-in finishes, an address change waiting for the
 * new address. One live code per flow (`purpose`, `binding`); the binding is a keyed digest of the
 * flow's id (the interaction, or the account page's session), never the id itself.
 *
 * The code is stored as an HMAC under a server key bound to its row (`code_hash`): a six-digit
 * code under a plain hash falls to a million tries against a copy of the table. `attempts` counts
 * the entries of this code, reserved one at a time in one UPDATE before each comparison, so
 * parallel guesses cannot all pass the check before the first is counted.
 *
 * A sign-up's account does not exist until its code is entered: the row holds the address and the
 * password's argon2 hash until then, so an address nobody proved blocks nobody (pre-registration).
 * Rows of an account go with it (ON DELETE CASCADE). Password reset links are another table
 * (email_links): their tokens are long and single-use, these codes are short and counted.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('email_codes', (t) => {
    t.uuid('id').primary();
    t.text('purpose').notNullable();
    t.text('binding').notNullable();
    t.uuid('user_id').references('users.id').onDelete('CASCADE');
    t.text('email').notNullable();
    t.text('email_normalized').notNullable();
    t.text('password_hash');
    t.text('code_hash').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['purpose', 'binding']);
    t.index(['email_normalized']);
    t.index(['expires_at']);
    t.index(['user_id']);
  });
  await knex.raw(`ALTER TABLE email_codes ADD CONSTRAINT email_codes_purpose_check CHECK (purpose IN ('sign-up', 'verify', 'change'))`);
  // A sign-up has no account yet and carries its password; the others belong to an account and carry none.
  await knex.raw(
    `ALTER TABLE email_codes ADD CONSTRAINT email_codes_account_check CHECK ((purpose = 'sign-up') = (user_id IS NULL) AND (purpose = 'sign-up' OR password_hash IS NULL))`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('email_codes');
}
