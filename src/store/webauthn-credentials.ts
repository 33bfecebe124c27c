import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

export type WebAuthnCredentialRow = {
  id: string;
  user_id: string;
  public_key: Buffer;
  counter: string | number;
  transports: string[];
  device_type: string;
  backed_up: boolean;
  aaguid: string | null;
  name: string;
  flagged_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
};

export class DuplicateCredentialError extends Error {
  constructor() {
    super('this authenticator is already registered');
    this.name = 'DuplicateCredentialError';
  }
}

export function createWebAuthnCredentialStore(knex: Knex) {
  return {
    async listByUser(userId: string): Promise<WebAuthnCredentialRow[]> {
      return knex<WebAuthnCredentialRow>('webauthn_credentials').where({ user_id: userId }).orderBy('created_at');
    },

    async find(id: string): Promise<WebAuthnCredentialRow | undefined> {
      return knex<WebAuthnCredentialRow>('webauthn_credentials').where({ id }).first();
    },

    async insert(row: Omit<WebAuthnCredentialRow, 'flagged_at' | 'last_used_at' | 'created_at'>): Promise<void> {
      try {
        await knex('webauthn_credentials').insert(row);
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new DuplicateCredentialError();
        throw error;
      }
    },

    /**
     * Stores the new signature counter only if it still moves forward (two concurrent uses of a
     * cloned authenticator cannot both win). Authenticators that always report 0 stay at 0.
     */
    async recordUse(id: string, previous: number, next: number): Promise<boolean> {
      const updated = await knex('webauthn_credentials')
        .where({ id, counter: previous })
        .update({ counter: next, last_used_at: knex.fn.now() });
      return updated === 1;
    },

    async flag(id: string): Promise<void> {
      await knex('webauthn_credentials').where({ id }).update({ flagged_at: knex.fn.now() });
    },

    async rename(userId: string, id: string, name: string): Promise<boolean> {
      return (await knex('webauthn_credentials').where({ id, user_id: userId }).update({ name })) === 1;
    },

    async remove(userId: string, id: string): Promise<boolean> {
      return (await knex('webauthn_credentials').where({ id, user_id: userId }).delete()) === 1;
    },

    async removeAll(userId: string): Promise<number> {
      return knex('webauthn_credentials').where({ user_id: userId }).delete();
    },

    /** The account's WebAuthn user handle, created on first use (random 32 bytes). */
    async userHandle(userId: string): Promise<Buffer> {
      const existing = await knex('users')
        .where({ id: userId })
        .first<{ webauthn_user_handle: Buffer | null } | undefined>('webauthn_user_handle');
      if (existing?.webauthn_user_handle) return existing.webauthn_user_handle;
      await knex('users')
        .where({ id: userId, webauthn_user_handle: null })
        .update({ webauthn_user_handle: randomBytes(32) });
      const row = await knex('users').where({ id: userId }).first<{ webauthn_user_handle: Buffer }>('webauthn_user_handle');
      return row.webauthn_user_handle;
    },

    async userByHandle(handle: Buffer): Promise<string | undefined> {
      const row = await knex('users').where({ webauthn_user_handle: handle }).first<{ id: string } | undefined>('id');
      return row?.id;
    },
  };
}

export type WebAuthnCredentialStore = ReturnType<typeof createWebAuthnCredentialStore>;
