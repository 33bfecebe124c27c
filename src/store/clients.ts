import type { Knex } from 'knex';
import type { CryptoBox } from '../shared/crypto-box.ts';

export type ClientMetadata = Record<string, unknown> & { client_id: string; client_secret?: string };

type ClientRow = {
  client_id: string;
  metadata: Record<string, unknown>;
  secret_sealed: string | null;
  disabled: boolean;
  created_by: string | null;
  last_used_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

/**
 * Durable client registrations. The secret is kept apart from the metadata, sealed under the
 * master key with the client id as associated data (a sealed secret cannot be moved to another row).
 */
export function createClientStore(knex: Knex, box: CryptoBox) {
  const unseal = (row: ClientRow): ClientMetadata => ({
    ...row.metadata,
    client_id: row.client_id,
    ...(row.secret_sealed ? { client_secret: box.open(row.secret_sealed, `client:${row.client_id}`).toString('utf8') } : {}),
  });

  return {
    async find(clientId: string): Promise<ClientMetadata | undefined> {
      const row = await knex<ClientRow>('oauth_clients').where({ client_id: clientId, disabled: false }).first();
      return row ? unseal(row) : undefined;
    },

    async upsert(metadata: ClientMetadata, createdBy?: string): Promise<void> {
      const { client_id: clientId, client_secret: secret, ...rest } = metadata;
      await knex('oauth_clients')
        .insert({
          client_id: clientId,
          metadata: JSON.stringify(rest),
          secret_sealed: secret ? box.seal(secret, `client:${clientId}`) : null,
          created_by: createdBy ?? null,
        })
        .onConflict('client_id')
        .merge(['metadata', 'secret_sealed', 'updated_at']);
    },

    async remove(clientId: string): Promise<void> {
      await knex('oauth_clients').where({ client_id: clientId }).delete();
    },

    async list(): Promise<(ClientMetadata & { created_by: string | null; disabled: boolean; created_at: Date })[]> {
      const rows = await knex<ClientRow>('oauth_clients').orderBy('created_at');
      return rows.map((row) => {
        const { client_secret: _secret, ...metadata } = unseal(row);
        return { ...metadata, created_by: row.created_by, disabled: row.disabled, created_at: row.created_at };
      });
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
