import type { Knex } from 'knex';

/**
 * R13: a share is an offer until the recipient accepts it. `record_shares` keeps its meaning
 * (read access) and now holds accepted shares only: every share made before this migration is
 * an accepted one, since its recipient could already read the record; nothing is moved.
 *
 * Offers wait in `record_share_offers`. The recipient id has no foreign key on purpose: an offer
 * to an id that is no account is stored and answered exactly like one to an account (so the
 * answer does not tell whether the id exists) and is simply never delivered. Erasure deletes the
 * offers made to the erased id (src/services/erasure.ts). `declined` offers stay visible to the
 * sharer as offered, so a decline is not announced to them.
 *
 * `share_declines` remembers the latest decline of each sharer by each recipient: during the
 * cooldown (SHARE_DECLINE_COOLDOWN_DAYS) new offers from that sharer to them are stored declined.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('record_share_offers', (t) => {
    t.uuid('record_id').notNullable().references('records.id').onDelete('CASCADE');
    t.uuid('recipient_id').notNullable();
    t.uuid('sharer_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('state').notNullable().defaultTo('offered');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('decided_at', { useTz: true });
    t.primary(['record_id', 'recipient_id']);
    t.index(['recipient_id', 'state', 'created_at']);
    t.index(['sharer_id']);
  });
  await knex.raw(`ALTER TABLE record_share_offers ADD CONSTRAINT record_share_offers_state_check CHECK (state IN ('offered','declined'))`);

  await knex.schema.createTable('share_declines', (t) => {
    t.uuid('recipient_id').notNullable().references('users.id').onDelete('CASCADE');
    t.uuid('sharer_id').notNullable().references('users.id').onDelete('CASCADE');
    t.timestamp('declined_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['recipient_id', 'sharer_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('share_declines');
  await knex.schema.dropTable('record_share_offers');
}
