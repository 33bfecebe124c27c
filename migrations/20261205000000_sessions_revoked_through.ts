import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // The sessions-not-before time whose sessions and grants have been ended (R13). Where the
  // cutoff is newer, the auth server still has to end them: disabling an account sets the cutoff
  // in the admin API, which may not hold the keys of the oidc state (issue 20, S3), and an auth
  // instance's revocation sweep finishes the job (src/services/account-sessions.ts).
  await knex.schema.alterTable('users', (t) => {
    t.timestamp('sessions_revoked_through', { useTz: true });
  });
  // Cutoffs set before this column existed were revoked where they were set (sign out
  // everywhere, a password change, an MFA reset); only disabled accounts are left to the sweep.
  await knex('users')
    .whereNotNull('sessions_not_before')
    .andWhere('disabled', false)
    .update({ sessions_revoked_through: knex.ref('sessions_not_before') });
  await knex.raw(
    `CREATE INDEX users_sessions_to_revoke ON users (id)
     WHERE sessions_not_before IS NOT NULL AND (sessions_revoked_through IS NULL OR sessions_revoked_through < sessions_not_before)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS users_sessions_to_revoke');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('sessions_revoked_through');
  });
}
