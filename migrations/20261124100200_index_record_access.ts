import type { Knex } from 'knex';

/** The owner's access history (S11) looks reads of their records up by data.owner_ids. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `CREATE INDEX audit_events_record_access_owners ON audit_events USING gin ((data->'owner_ids')) WHERE type = 'record.accessed'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX audit_events_record_access_owners');
}
