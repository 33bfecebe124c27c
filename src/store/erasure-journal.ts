import type { Knex } from 'knex';

export type ErasureRow = { user_id: string; erased_at: Date };

/** The erasure journal (migrations/…_create_erasure_journal.ts); the only SQL that touches it. */
export function createErasureJournal(knex: Knex) {
  return {
    async add(userId: string, trx: Knex = knex): Promise<void> {
      await trx('erasure_journal').insert({ user_id: userId }).onConflict('user_id').ignore();
    },

    async list(trx: Knex = knex): Promise<ErasureRow[]> {
      return trx<ErasureRow>('erasure_journal').orderBy('erased_at');
    },

    /**
     * Journalled accounts of which something is back (after a restore): the account row, its
     * data key, or an audit event of theirs with a clear address or user agent.
     */
    async undone(trx: Knex = knex): Promise<string[]> {
      const { rows } = await trx.raw<{ rows: { user_id: string }[] }>(`
        SELECT j.user_id FROM erasure_journal j
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = j.user_id)
           OR EXISTS (SELECT 1 FROM user_data_keys k WHERE k.user_id = j.user_id)
           OR EXISTS (SELECT 1 FROM audit_events a WHERE a.actor_id = j.user_id::text AND (a.ip IS NOT NULL OR a.user_agent IS NOT NULL))
        ORDER BY j.erased_at`);
      return rows.map((r) => r.user_id);
    },
  };
}

export type ErasureJournal = ReturnType<typeof createErasureJournal>;
