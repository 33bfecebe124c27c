import type { Knex } from 'knex';

/**
 * The API stops reading the identity server's state (issue 20, S3):
 * - the account index keeps, for each grant, what the GDPR export shows of it (its scopes and
 *   resources), so the export needs no sealed grant; rows from before are filled in by the auth
 *   server at start (src/store/account-index.ts backfillConsents);
 * - an erasure hands the account's sessions and grants to the auth server through
 *   oidc_state_revocations (src/store/oidc-revocations.ts); no foreign key, since the rows must
 *   outlive the account row they come from.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('account_oidc_index', (t) => {
    t.text('scope');
    t.specificType('resources', 'text[]');
  });
  await knex.schema.createTable('oidc_state_revocations', (t) => {
    t.text('kind').notNullable();
    t.text('id').notNullable();
    t.uuid('account_id').notNullable();
    t.timestamp('requested_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['kind', 'id']);
    t.index(['requested_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('oidc_state_revocations');
  await knex.schema.alterTable('account_oidc_index', (t) => {
    t.dropColumn('scope');
    t.dropColumn('resources');
  });
}
