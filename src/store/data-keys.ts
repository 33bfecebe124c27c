import type { Knex } from 'knex';

export type DataKeyRow = { user_id: string; key_wrapped: string; created_at: Date; rewrapped_at: Date | null };

/** Wrapped per-user data keys; the only SQL that touches user_data_keys. */
export function createDataKeyStore(knex: Knex) {
  return {
    async find(userId: string, trx: Knex = knex): Promise<DataKeyRow | undefined> {
      return trx<DataKeyRow>('user_data_keys').where({ user_id: userId }).first();
    },

    /** Inserts unless another request won the race; returns the row that is stored. */
    async insertOnce(userId: string, keyWrapped: string, trx: Knex = knex): Promise<DataKeyRow> {
      await trx('user_data_keys').insert({ user_id: userId, key_wrapped: keyWrapped }).onConflict('user_id').ignore();
      const row = await trx<DataKeyRow>('user_data_keys').where({ user_id: userId }).first();
      if (!row) throw new Error('data key was not stored');
      return row;
    },

    async remove(userId: string, trx: Knex = knex): Promise<boolean> {
      return (await trx('user_data_keys').where({ user_id: userId }).delete()) > 0;
    },
  };
}

export type DataKeyStore = ReturnType<typeof createDataKeyStore>;
