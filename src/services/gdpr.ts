import type { Knex } from 'knex';
import type { AuditEventRow } from '../store/audit-events.ts';
import type { AuditSearchStore } from '../store/audit-search.ts';
import type { RecordStore } from '../store/records.ts';
import type { RoleStore } from '../store/roles.ts';
import type { UserDirectory } from '../store/user-directory.ts';
import type { AuditService } from './audit.ts';
import type { RbacService } from './rbac.ts';
import type { Actor } from './records.ts';
import type { Vault } from './vault.ts';

export const presentAuditEvent = (row: AuditEventRow) => ({
  // bigint columns arrive from node-pg as strings.
  id: typeof row.id === 'string' ? Number.parseInt(row.id, 10) : row.id,
  occurred_at: row.occurred_at.toISOString(),
  type: row.type,
  outcome: row.outcome,
  actor_id: row.actor_id,
  client_id: row.client_id,
  ip: row.ip,
  user_agent: row.user_agent,
  data: row.data,
  hash: row.hash,
});

/**
 * GDPR rights of access (Art. 15/20: one machine-readable export) and erasure (Art. 17).
 *
 * Erasure deletes the account row, so everything keyed to it cascades away (roles, records,
 * shares, data key, credentials); the data key is deleted first and explicitly, so any copy of
 * the ciphertext (backups, replicas, logs) is crypto-shredded. The hash-chained audit log is not
 * rewritten: rewriting would break the chain. Its rows keep the account's random UUID, which
 * after erasure is a pseudonym nothing in the system links back to a person, and the erasure
 * itself is appended as `account.erased`.
 */
export function createGdprService(deps: {
  knex: Knex;
  directory: UserDirectory;
  roles: RoleStore;
  records: RecordStore;
  auditSearch: AuditSearchStore;
  vault: Vault;
  rbac: RbacService;
  audit: AuditService;
}) {
  const { knex, directory, roles, records, auditSearch, vault, rbac, audit } = deps;

  return {
    async exportFor(actor: Actor): Promise<Record<string, unknown> | undefined> {
      const userId = actor.userId;
      const profile = await directory.find(userId);
      if (!profile) return undefined;
      const owned = await records.listOwned(userId);
      const key = owned.length > 0 ? await vault.keyOf(userId) : undefined;
      const shares = await records.sharesOf(owned.map((r) => r.id));
      const received = await records.sharedWith(userId);
      const document = {
        format: 'portcullis-export/1',
        exported_at: new Date().toISOString(),
        subject: userId,
        profile: {
          id: profile.id,
          email: profile.email,
          email_verified: profile.email_verified,
          name: profile.name,
          disabled: profile.disabled,
          created_at: profile.created_at.toISOString(),
          updated_at: profile.updated_at.toISOString(),
        },
        roles: await roles.rolesOf(userId),
        permissions: await roles.permissionsOf(userId),
        records: owned.map((row) => {
          const payload = key ? (vault.open(key, row.id, userId, row.payload_sealed) as { label: string; data: Record<string, unknown> }) : undefined;
          return { id: row.id, type: row.type, label: payload?.label, data: payload?.data, created_at: row.created_at.toISOString(), updated_at: row.updated_at.toISOString() };
        }),
        shares: {
          granted: shares.map((s) => ({ record_id: s.record_id, user_id: s.user_id, created_at: s.created_at.toISOString() })),
          received: received.map((s) => ({ record_id: s.record_id, owner_id: s.owner_id, created_at: s.created_at.toISOString() })),
        },
        // Grants and sessions live in the OAuth state store (Redis or Postgres) and are not
        // indexed by account; the export says so instead of silently leaving them out.
        consents: {
          included: false,
          reason: 'OAuth grants and sessions are held by the authorization server state store, which is not indexed by account. Your consents are visible under "account activity" in the audit trail (login and consent events).',
        },
        audit_trail: (await auditSearch.trailOf(userId)).map(presentAuditEvent),
      };
      await audit.record({ type: 'account.exported', actorId: userId, clientId: actor.clientId, ip: actor.ip });
      return document;
    },

    /** Erases the account; false when it does not exist (any more). */
    async erase(actor: Actor): Promise<boolean> {
      const userId = actor.userId;
      const summary = await knex.transaction(async (trx) => {
        const recordCount = (await records.listOwned(userId, trx)).length;
        const shredded = await vault.shred(userId, trx);
        const oidcState = await directory.removeOidcState(userId, trx);
        const removed = await directory.remove(userId, trx);
        return removed ? { records: recordCount, data_key_shredded: shredded, oidc_state_removed: oidcState } : undefined;
      });
      rbac.invalidate(userId);
      if (!summary) return false;
      await audit.record({ type: 'account.erased', actorId: userId, clientId: actor.clientId, data: summary });
      return true;
    },
  };
}

export type GdprService = ReturnType<typeof createGdprService>;
