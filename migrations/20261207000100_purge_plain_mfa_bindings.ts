import type { Knex } from 'knex';

/**
 * S12: an MFA ceremony's binding (the interaction uid, or `account:<session id>`: both values of
 * live cookies) is now stored as its keyed digest only (src/store/mfa.ts). Rows written before
 * hold the ids in the clear and no flow can find them any more, so they go: unfinished passkey
 * ceremonies and authenticator-app setups simply start again. A confirmed app has no binding and
 * is kept.
 */
export async function up(knex: Knex): Promise<void> {
  await knex('webauthn_challenges').delete();
  await knex('mfa_totp').whereNull('confirmed_at').delete();
}

export async function down(): Promise<void> {
  // Nothing to bring back: pending setups begin again after a rollback too.
}
