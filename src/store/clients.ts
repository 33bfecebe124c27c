import { LRUCache } from 'lru-cache';
import type { Knex } from 'knex';
import { hashClientSecret, isHashedSecret } from '../shared/client-secret.ts';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';

export type ClientMetadata = Record<string, unknown> & { client_id: string; client_secret?: string };

type ClientRow = {
  client_id: string;
  metadata: Record<string, unknown>;
  secret_sealed: string | null;
  secret_hash: string | null;
  disabled: boolean;
  created_by: string | null;
  last_used_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

/**
 * How long a found client is served from memory. oidc-provider looks its client up on every
 * /token, introspection and authorization request; this keeps Postgres off that path. Writes
 * through this store (RFC 7592 update and delete, registration, disabling, enabling) drop the
 * entry at once in this process; other processes' writes (other instances, the CLI, SQL by hand)
 * arrive as Postgres notifications (src/store/client-changes.ts), and this bound is the fallback
 * when those cannot be received.
 */
export const CLIENT_CACHE_TTL_MS = 10_000;
/** Entries kept at most; the oldest go first. Unknown ids are never cached. */
const CLIENT_CACHE_MAX = 1000;

export type ClientStoreOptions = { cacheTtlMs?: number };

/**
 * Durable client registrations. The secret is kept apart from the metadata: as a hash when only
 * compared (client_secret_basic/_post; the provider then sees the marked hash, see
 * src/shared/client-secret.ts), else sealed under the master key with the client id as
 * associated data (a sealed secret cannot be moved to another row). client_secret_jwt, the one
 * method needing the plain secret, is not offered, so sealing is for older rows only.
 */
export function createClientStore(knex: Knex, box: CryptoBox, { cacheTtlMs = CLIENT_CACHE_TTL_MS }: ClientStoreOptions = {}) {
  // Oldest entries go first beyond CLIENT_CACHE_MAX; each expires after cacheTtlMs.
  const cache = new LRUCache<string, ClientMetadata>({ max: CLIENT_CACHE_MAX, ttl: Math.max(cacheTtlMs, 1) });
  // Bumped by every write: a read that started before a write must not cache what it read.
  let generation = 0;
  const forget = (clientId: string): void => {
    generation++;
    cache.delete(clientId);
  };
  /** A write, with the entry dropped before (readers stop using it) and after (a read racing the write is not kept). */
  const writing = async <T>(clientId: string, write: () => Promise<T>): Promise<T> => {
    forget(clientId);
    try {
      return await write();
    } finally {
      forget(clientId);
    }
  };
  const unseal = (row: ClientRow): ClientMetadata => ({
    ...row.metadata,
    client_id: row.client_id,
    ...(row.secret_hash ? { client_secret: row.secret_hash } : {}),
    ...(row.secret_sealed && !row.secret_hash
      ? { client_secret: box.open(row.secret_sealed, SEAL_CONTEXT.clientSecret(row.client_id)).toString('utf8') }
      : {}),
  });
  const secretColumns = (clientId: string, authMethod: unknown, secret: string | undefined) => {
    if (!secret) return { secret_sealed: null, secret_hash: null };
    if (isHashedSecret(secret)) return { secret_sealed: null, secret_hash: secret };
    if (authMethod === 'client_secret_jwt')
      return { secret_sealed: box.seal(secret, SEAL_CONTEXT.clientSecret(clientId)), secret_hash: null };
    return { secret_sealed: null, secret_hash: hashClientSecret(secret) };
  };

  return {
    /**
     * A usable client: not disabled and, when idleDays > 0, used (or created) within that many
     * days. An idle client found here is disabled for good (an admin re-enables it).
     */
    async find(clientId: string, idleDays = 0, onIdleDisabled?: () => Promise<void>): Promise<ClientMetadata | undefined> {
      const hit = cache.get(clientId);
      if (hit) return hit;
      const started = generation;
      const row = await knex<ClientRow>('oauth_clients').where({ client_id: clientId, disabled: false }).first();
      if (!row) return undefined;
      if (idleDays > 0 && (row.last_used_at ?? row.created_at).getTime() < Date.now() - idleDays * 86_400_000) {
        const changed = await knex('oauth_clients')
          .where({ client_id: clientId, disabled: false })
          .update({ disabled: true, updated_at: knex.fn.now() });
        if (changed > 0) await onIdleDisabled?.();
        return undefined;
      }
      const metadata = unseal(row);
      if (cacheTtlMs > 0 && started === generation) cache.set(clientId, metadata);
      return metadata;
    },

    /** Drops a cached client: another process changed it (src/store/client-changes.ts). */
    forget,

    /** Drops every cached client (change notifications may have been missed). */
    forgetAll(): void {
      generation++;
      cache.clear();
    },

    /** Records token issuance at most once an hour per client (cheap enough for every request). */
    async touch(clientId: string): Promise<void> {
      await knex('oauth_clients')
        .where({ client_id: clientId })
        .where((q) => {
          void q.whereNull('last_used_at').orWhere('last_used_at', '<', knex.raw("now() - interval '1 hour'"));
        })
        .update({ last_used_at: knex.fn.now() });
    },

    /** Provenance of a registration (e.g. the initial access token that made it); set once. */
    async setCreatedBy(clientId: string, createdBy: string): Promise<void> {
      await knex('oauth_clients').where({ client_id: clientId }).whereNull('created_by').update({ created_by: createdBy });
    },

    /** Enables (resetting the idle clock) or disables a client; false when it does not exist. */
    async setDisabled(clientId: string, disabled: boolean): Promise<boolean> {
      const count = await writing(clientId, () =>
        knex('oauth_clients')
          .where({ client_id: clientId })
          .update({ disabled, updated_at: knex.fn.now(), ...(disabled ? {} : { last_used_at: knex.fn.now() }) }),
      );
      return count > 0;
    },

    async upsert(metadata: ClientMetadata, createdBy?: string): Promise<void> {
      const { client_id: clientId, client_secret: secret, ...rest } = metadata;
      await writing(clientId, () =>
        knex('oauth_clients')
          .insert({
            client_id: clientId,
            metadata: JSON.stringify(rest),
            ...secretColumns(clientId, rest.token_endpoint_auth_method, secret),
            created_by: createdBy ?? null,
          })
          .onConflict('client_id')
          .merge(['metadata', 'secret_sealed', 'secret_hash', 'updated_at']),
      );
    },

    async remove(clientId: string): Promise<void> {
      await writing(clientId, () => knex('oauth_clients').where({ client_id: clientId }).delete());
    },

    /** Every client without its secret, with provenance (and the note of the initial access token that made it). */
    async list(): Promise<
      (ClientMetadata & {
        created_by: string | null;
        created_by_note?: string | null;
        disabled: boolean;
        created_at: Date;
        last_used_at: Date | null;
      })[]
    > {
      const rows = await knex<ClientRow>('oauth_clients').orderBy('created_at');
      const iatIds = [...new Set(rows.flatMap((row) => (row.created_by?.startsWith('iat:') ? [row.created_by.slice(4)] : [])))];
      const notes = new Map(
        iatIds.length > 0
          ? (await knex('initial_access_tokens').whereIn('id', iatIds).select<{ id: string; note: string | null }[]>('id', 'note')).map(
              (t) => [t.id, t.note],
            )
          : [],
      );
      return rows.map((row) => {
        // The secret lives in its own columns, never in the metadata.
        const metadata: ClientMetadata = { ...row.metadata, client_id: row.client_id };
        const iat = row.created_by?.startsWith('iat:') ? row.created_by.slice(4) : undefined;
        return {
          ...metadata,
          created_by: row.created_by,
          ...(iat ? { created_by_note: notes.get(iat) ?? null } : {}),
          disabled: row.disabled,
          created_at: row.created_at,
          last_used_at: row.last_used_at,
        };
      });
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
