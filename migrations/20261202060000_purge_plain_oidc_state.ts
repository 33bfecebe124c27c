import type { Knex } from 'knex';

/**
 * S10: oidc-provider state is now stored under keyed hashes of its ids, with sealed payloads
 * (src/store/oidc-adapter-sealed.ts), and the account index names sessions by that hash. Rows
 * written before hold codes, refresh tokens and session ids in the clear and can no longer be
 * found, so they are deleted rather than left for a dump until they expire: users sign in
 * again. Registration access tokens were stored hashed already and stay.
 */
export async function up(knex: Knex): Promise<void> {
  await knex('oidc_payloads').whereNot('type', 'RegistrationAccessToken').delete();
  await knex('account_oidc_index').where('kind', 'Session').delete();
}

export async function down(): Promise<void> {
  // Nothing to bring back: the deleted rows are gone, and after a rollback users sign in again.
}
