import type { Knex } from 'knex';

/**
 * The mail outbox (issue 12, docs/email.md): a mail is a row written in the same transaction as
 * the change that asks for it, and a worker in the auth server sends it later. The recipient,
 * subject and bodies are personal data, so they sit in one sealed column (MASTER_KEY, bound to the
 * row's id: src/store/sealed-columns.ts), deleted once the mail is sent. `template` names the kind
 * of mail and `last_error` an error code, neither personal. A mail to an account goes with the
 * account (user_id, ON DELETE CASCADE): an erased user gets no mail afterwards.
 *
 * `locked_until` is the lease of the worker that claimed the row (FOR UPDATE SKIP LOCKED): past
 * it, a worker that died mid-send has its row taken up again. `finished_at` dates a row's last
 * state (sent or failed), from which MAIL_OUTBOX_RETENTION_DAYS counts.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('outbox', (t) => {
    t.uuid('id').primary();
    t.text('template').notNullable();
    t.uuid('user_id').references('users.id').onDelete('CASCADE');
    t.text('payload_sealed');
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('locked_until', { useTz: true });
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.index(['user_id']);
    t.index(['finished_at']);
  });
  await knex.raw(`ALTER TABLE outbox ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending','sent','failed'))`);
  // A pending mail always has its content; a sent one never keeps it.
  await knex.raw(
    `ALTER TABLE outbox ADD CONSTRAINT outbox_payload_check CHECK ((status = 'pending') = (payload_sealed IS NOT NULL) OR status = 'failed')`,
  );
  // What the worker asks for on every poll: the due pending rows, oldest first.
  await knex.raw(`CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('outbox');
}
