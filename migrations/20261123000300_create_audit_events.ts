import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Append-only and hash-chained: hash = sha256(prev_hash || canonical event).
  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('occurred_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('type').notNullable();
    t.text('outcome').notNullable().defaultTo('success');
    // No foreign key: erasure pseudonymises these rows rather than deleting them.
    t.text('actor_id');
    t.text('client_id');
    t.text('ip');
    t.text('user_agent');
    t.jsonb('data').notNullable().defaultTo('{}');
    t.text('prev_hash').notNullable();
    t.text('hash').notNullable().unique();
    t.index(['actor_id', 'occurred_at']);
    t.index(['type', 'occurred_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_events');
}
