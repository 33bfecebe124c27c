import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { createCryptoBox, envelopeKeyId, type CryptoBox } from '../shared/crypto-box.ts';
import type { KeyRing } from '../shared/key-ring.ts';
import { serviceUnavailable } from '../shared/problem.ts';
import { isMasterKeyId } from '../shared/vault-key.ts';
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

/** What an operator runs when data keys are still under MASTER_KEY or VAULT_KEY_PREVIOUS. */
export const REWRAP_COMMAND = 'portcullis keys rewrap-vault';

/**
 * Envelope encryption for the records vault: each user has a random AES-256 data key, wrapped
 * under VAULT_KEY (S3: not MASTER_KEY, which the API does not hold). Payloads are sealed with the
 * owner's data key. Deleting the wrapped key (erasure) makes every payload of that user,
 * including copies in backups, unreadable. `box` is undefined in a process without VAULT_KEY
 * (the auth server): it lists offers and shares, never payloads.
 */
export function createVault({ box, dataKeys }: { box: KeyRing | undefined; dataKeys: DataKeyStore }) {
  const ring = (): KeyRing => {
    if (!box) throw serviceUnavailable(new Error('VAULT_KEY is not configured in this process; records are opened by the API'));
    return box;
  };

  const unwrap = (userId: string, wrapped: string): CryptoBox => {
    // A data key from before VAULT_KEY existed: the API cannot open it until it is re-wrapped.
    if (isMasterKeyId(envelopeKeyId(wrapped)))
      throw serviceUnavailable(
        new Error(
          `the data key of user ${userId} is still wrapped under MASTER_KEY; run: ${REWRAP_COMMAND} (docs/operations.md, Upgrades)`,
        ),
      );
    return createCryptoBox(ring().open(wrapped, dataKeyAad(userId)), 'd1');
  };

  async function keyOf(userId: string, trx?: Knex): Promise<CryptoBox> {
    const row = await dataKeys.find(userId, trx);
    if (!row) throw new DataKeyMissingError();
    return unwrap(userId, row.key_wrapped);
  }

  return {
    /** The user's data key, created on first use. */
    async ensureKey(userId: string, trx?: Knex): Promise<CryptoBox> {
      const row =
        (await dataKeys.find(userId, trx)) ?? (await dataKeys.insertOnce(userId, ring().seal(randomBytes(32), dataKeyAad(userId)), trx));
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
