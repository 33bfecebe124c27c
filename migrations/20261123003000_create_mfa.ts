import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One TOTP authenticator per user. The secret is sealed (AES-256-GCM, AAD totp:<user id>);
  // confirmed_at stays null until a valid code proves the app has it. last_step is the
  // replay guard: a code is accepted only for a time step above it (RFC 6238 §5.2).
  await knex.schema.createTable('mfa_totp', (t) => {
    t.uuid('user_id').primary().references('users.id').onDelete('CASCADE');
    t.text('secret_sealed').notNullable();
    t.bigInteger('last_step').notNullable().defaultTo(0);
    t.timestamp('confirmed_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // Recovery codes: SHA-256 of a high-entropy random code; used_at makes each single use.
  await knex.schema.createTable('mfa_recovery_codes', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.binary('code_hash').notNullable();
    t.timestamp('used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id']);
  });

  // WebAuthn credentials (passkeys and security keys). The credential id is globally unique,
  // so one authenticator cannot be registered to two accounts.
  await knex.schema.createTable('webauthn_credentials', (t) => {
    t.text('id').primary();
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.binary('public_key').notNullable();
    t.bigInteger('counter').notNullable().defaultTo(0);
    t.specificType('transports', 'text[]').notNullable().defaultTo('{}');
    t.text('device_type').notNullable();
    t.boolean('backed_up').notNullable().defaultTo(false);
    t.text('aaguid');
    t.text('name').notNullable();
    t.timestamp('flagged_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id']);
  });
  // The WebAuthn user handle: random, not the account id (W3C WebAuthn §14.6.1).
  await knex.schema.alterTable('users', (t) => {
    t.binary('webauthn_user_handle');
  });
  await knex.raw('CREATE UNIQUE INDEX users_webauthn_user_handle ON users (webauthn_user_handle) WHERE webauthn_user_handle IS NOT NULL');

  // Ceremony challenges: single use (DELETE … RETURNING), short-lived, bound to an interaction
  // or a session and to a purpose.
  await knex.schema.createTable('webauthn_challenges', (t) => {
    t.text('binding').notNullable();
    t.text('purpose').notNullable();
    t.text('challenge').notNullable();
    t.uuid('user_id');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.primary(['binding', 'purpose']);
  });

  // A role can require a second factor; admins do by default.
  await knex.schema.alterTable('roles', (t) => {
    t.boolean('requires_mfa').notNullable().defaultTo(false);
  });
  await knex('roles').where({ name: 'admin' }).update({ requires_mfa: true });

  // Index of each account's provider sessions and grants (oidc-provider keeps none), fed from
  // provider events; it powers "connected apps" and "sign out everywhere".
  await knex.schema.createTable('account_oidc_index', (t) => {
    t.text('kind').notNullable();
    t.text('id').notNullable();
    t.uuid('account_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('client_id');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['kind', 'id']);
    t.index(['account_id', 'kind']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('account_oidc_index');
  await knex.schema.alterTable('roles', (t) => {
    t.dropColumn('requires_mfa');
  });
  await knex.schema.dropTable('webauthn_challenges');
  await knex.raw('DROP INDEX IF EXISTS users_webauthn_user_handle');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('webauthn_user_handle');
  });
  await knex.schema.dropTable('webauthn_credentials');
  await knex.schema.dropTable('mfa_recovery_codes');
  await knex.schema.dropTable('mfa_totp');
}
