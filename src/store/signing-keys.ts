import type { Knex } from 'knex';
import { ADVISORY_LOCK, lockForTransaction } from './advisory-locks.ts';

export type SigningKeyState = 'next' | 'active' | 'retired';

export type SigningKeyRow = {
  kid: string;
  alg: string;
  public_jwk: Record<string, unknown>;
  private_jwk_sealed: string;
  state: SigningKeyState;
  created_at: Date;
  activated_at: Date | null;
  retired_at: Date | null;
};

export type CookieKeyRow = { id: number; key_sealed: string; created_at: Date };

export function createKeyStore(knex: Knex) {
  return {
    /** Published keys (next and active), newest first within each state. */
    async published(): Promise<SigningKeyRow[]> {
      return knex<SigningKeyRow>('signing_keys')
        .whereIn('state', ['next', 'active'])
        .orderByRaw(`CASE state WHEN 'active' THEN 0 ELSE 1 END`)
        .orderBy('created_at', 'desc');
    },

    async all(trx: Knex = knex): Promise<SigningKeyRow[]> {
      return trx<SigningKeyRow>('signing_keys').orderBy('created_at', 'desc');
    },

    /** Keys of these algorithms published and waiting to sign (state next). */
    async waiting(algs: readonly string[], trx: Knex = knex): Promise<{ kid: string; alg: string }[]> {
      return trx('signing_keys').where('state', 'next').whereIn('alg', algs).select<{ kid: string; alg: string }[]>('kid', 'alg');
    },

    /** The algorithms that have an active key. */
    async activeAlgs(trx: Knex = knex): Promise<Set<string>> {
      return new Set((await trx('signing_keys').where('state', 'active').select<{ alg: string }[]>('alg')).map((r) => r.alg));
    },

    async insertSigningKey(row: Omit<SigningKeyRow, 'created_at' | 'retired_at'>, trx: Knex = knex): Promise<void> {
      await trx('signing_keys').insert(row);
    },

    async setState(kid: string, state: SigningKeyState, trx: Knex = knex): Promise<void> {
      const stamp = state === 'active' ? { activated_at: trx.fn.now() } : state === 'retired' ? { retired_at: trx.fn.now() } : {};
      await trx('signing_keys')
        .where({ kid })
        .update({ state, ...stamp });
    },

    /** Changes whenever a key is published, activated or retired, or a cookie key rotates. */
    async fingerprint(): Promise<string> {
      const signing = await knex('signing_keys')
        .whereIn('state', ['next', 'active'])
        .orderBy('kid')
        .select<{ kid: string; state: string }[]>('kid', 'state');
      const cookies = await knex('cookie_keys').whereNull('retired_at').orderBy('id').select<{ id: number }[]>('id');
      return JSON.stringify([signing.map((k) => `${k.kid}:${k.state}`), cookies.map((c) => c.id)]);
    },

    /** Whether a cookie key is in use (not retired). */
    async hasCookieKey(trx: Knex = knex): Promise<boolean> {
      return (await trx('cookie_keys').whereNull('retired_at').first<{ id: number } | undefined>('id')) !== undefined;
    },

    /** A superseded cookie key stops verifying. */
    async retireCookieKey(id: number, trx: Knex = knex): Promise<void> {
      await trx('cookie_keys').where({ id }).update({ retired_at: trx.fn.now() });
    },

    async cookieKeys(trx: Knex = knex): Promise<CookieKeyRow[]> {
      return trx<CookieKeyRow>('cookie_keys').whereNull('retired_at').orderBy('id', 'desc');
    },

    async insertCookieKey(keySealed: string, trx: Knex = knex): Promise<void> {
      await trx('cookie_keys').insert({ key_sealed: keySealed });
    },

    /** Runs fn while holding a cluster-wide lock, so concurrent first starts create keys once. */
    async withKeyLock<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
      return knex.transaction(async (trx) => {
        await lockForTransaction(trx, ADVISORY_LOCK.signingKeys);
        return fn(trx);
      });
    },
  };
}

export type KeyStore = ReturnType<typeof createKeyStore>;
