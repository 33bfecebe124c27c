import type { Knex } from 'knex';

/**
 * Keyed audit chain (R8, S5). Rows already stored keep chain = 1 (sha256 over the clear row, no
 * key) and still verify, as a prefix vouched for by the first keyed row after them. New rows are
 * chain = 2: an HMAC under AUDIT_KEY over the row with keyed digests (under a random per-row
 * nonce) of its IP address and user agent, so an erasure can remove the clear values and the
 * nonce (pseudonymised_tag proves who did) and the chain still verifies.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.smallint('chain').notNullable().defaultTo(1);
    t.text('key_id');
    t.text('ip_digest');
    t.text('user_agent_digest');
    t.text('personal_nonce');
    t.text('pseudonymised_tag');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.dropColumns('chain', 'key_id', 'ip_digest', 'user_agent_digest', 'personal_nonce', 'pseudonymised_tag');
  });
}
