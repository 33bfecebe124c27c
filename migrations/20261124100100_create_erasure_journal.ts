import type { Knex } from 'knex';

/**
 * The erasure journal (S5): one row per erased account, kept after the account is gone. A
 * restore merges it instead of replacing it and erases again every account it names, so a
 * backup taken before an erasure cannot bring the account back. It holds only the account's
 * random id (already a pseudonym in the audit log) and the time.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('erasure_journal', (t) => {
    t.uuid('user_id').primary();
    t.timestamp('erased_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('erasure_journal');
}
