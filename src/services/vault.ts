import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { createCryptoBox, type CryptoBox } from '../shared/crypto-box.ts';
import type { DataKeyStore } from '../store/data-keys.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';

/** Associated data of a wrapped data key, and of a record payload (src/shared/crypto-contexts.ts). */
export const { dataKey: dataKeyAad, record: recordAad } = SEAL_CONTEXT;

export class DataKeyMissingError extends Error {
  constructor() {
    super('the data key of this user no longer exists (crypto-shredded)');
    this.name = 'DataKeyMissingError';
  }
}

/**
 * Envelope encryption for the records vault: each user has a random AES-256 data key, wrapped
 * by the master key box. Payloads are sealed with the owner's data key. Deleting the wrapped
 * key (erasure) makes every payload of that user, including copies in backups, unreadable.
 */
export function createVault({ box, dataKeys }: { box: CryptoBox; dataKeys: DataKeyStore }) {
  const unwrap = (userId: string, wrapped: string): CryptoBox => createCryptoBox(box.open(wrapped, dataKeyAad(userId)), 'd1');

  async function keyOf(userId: string, trx?: Knex): Promise<CryptoBox> {
    const row = await dataKeys.find(userId, trx);
    if (!row) throw new DataKeyMissingError();
    return unwrap(userId, row.key_wrapped);
  }

  return {
    /** The user's data key, created on first use. */
    async ensureKey(userId: string, trx?: Knex): Promise<CryptoBox> {
      const row =
        (await dataKeys.find(userId, trx)) ?? (await dataKeys.insertOnce(userId, box.seal(randomBytes(32), dataKeyAad(userId)), trx));
      return unwrap(userId, row.key_wrapped);
    },

    keyOf,

    seal(key: CryptoBox, recordId: string, ownerId: string, payload: unknown): string {
      return key.seal(JSON.stringify(payload), recordAad(recordId, ownerId));
    },

    open(key: CryptoBox, recordId: string, ownerId: string, sealed: string): unknown {
      return JSON.parse(key.open(sealed, recordAad(recordId, ownerId)).toString('utf8'));
    },

    /** Crypto-shredding: forget the user's data key. */
    async shred(userId: string, trx?: Knex): Promise<boolean> {
      return dataKeys.remove(userId, trx);
    },
  };
}

export type Vault = ReturnType<typeof createVault>;
