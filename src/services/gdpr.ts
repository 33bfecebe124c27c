import type { Knex } from 'knex';
import type { AccountIndexReader } from '../store/account-index.ts';
import type { AuditEventRow } from '../store/audit-events.ts';
import type { AuditSearchStore } from '../store/audit-search.ts';
import type { RecordStore } from '../store/records.ts';
import type { RoleStore } from '../store/roles.ts';
import type { ShareOfferStore } from '../store/share-offers.ts';
import type { UserDirectory } from '../store/user-directory.ts';
import type { AuditService } from './audit.ts';
import type { Erasure } from './erasure.ts';
import type { RbacService } from './rbac.ts';
import type { Actor } from './records.ts';
import type { Vault } from './vault.ts';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

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

/** Event data naming an address or a user agent (e.g. a reported device's): possibly another person's. */
const OTHER_PERSONAL_KEY = /(^|_)(ip|user_agent)$/;

/**
 * The caller's own event, whole, less what may describe someone else: data fields naming another
 * device's address or user agent, and the address and user agent of a failure (a wrong password
 * or code against the account, a replayed token: often not the caller at all).
 */
const presentOwnEvent = (row: AuditEventRow) => {
  const event = presentAuditEvent(row);
  const failure = row.outcome === 'failure';
  return {
    ...event,
    ip: failure ? null : event.ip,
    user_agent: failure ? null : event.user_agent,
    data: Object.fromEntries(Object.entries(event.data).filter(([key]) => !OTHER_PERSONAL_KEY.test(key))),
  };
};

/**
 * Someone else's event that names the caller (a share with them, an admin's change to their
 * account): what happened, when, and to what; never who did it, from where or with which app (R9).
 */
const presentMention = (row: AuditEventRow, userId: string) => ({
  type: row.type,
  occurred_at: row.occurred_at.toISOString(),
  object_id: typeof row.data.record_id === 'string' ? row.data.record_id : userId,
});

/**
 * GDPR rights of access (Art. 15/20: one machine-readable export) and erasure (Art. 17).
 *
 * Erasure hands the account's sessions, grants and tokens to the auth server to end (the API
 * holds no key to them, S3; the account's tokens are refused anyway once the account row is
 * gone), then deletes the account row, so everything keyed to it cascades away (roles, records,
 * shares, data key, MFA factors, passkeys); the data key is deleted first and explicitly, so any copy of
 * the ciphertext (backups, replicas, logs) is crypto-shredded (erasure.ts). The audit log keeps
 * its rows and its chain: they keep the account's random UUID, which after erasure is a pseudonym
 * nothing in the system links back to a person, and lose their clear IP addresses and user
 * agents (the chain covers only commitments to those). The erasure is journalled, so a restore
 * of an older backup erases the account again (S5), and appended as `account.erased`.
 */
export function createGdprService(deps: {
  knex: Knex;
  directory: UserDirectory;
  roles: RoleStore;
  records: RecordStore;
  offers: ShareOfferStore;
  auditSearch: AuditSearchStore;
  vault: Vault;
  rbac: RbacService;
  audit: AuditService;
  erasure: Erasure;
  accountIndex: AccountIndexReader;
}) {
  const { knex, directory, roles, records, offers, auditSearch, vault, rbac, audit, erasure, accountIndex } = deps;

  /**
   * Consents (grants) the user gave to clients, with the scopes granted: from the account index,
   * which keeps each grant's scopes and resources beside it, so no sealed grant is opened (S3).
   */
  async function consentsOf(userId: string) {
    return (await accountIndex.list(userId, 'Grant')).map((row) => ({
      grant_id: row.id,
      client_id: row.client_id,
      scopes: (row.scope ?? '').split(' ').filter(Boolean),
      resources: row.resources ?? [],
      created_at: row.created_at.toISOString(),
      last_used_at: iso(row.last_used_at),
      expires_at: iso(row.expires_at),
    }));
  }

  return {
    async exportFor(actor: Actor): Promise<Record<string, unknown> | undefined> {
      const userId = actor.userId;
      const profile = await directory.find(userId);
      if (!profile) return undefined;
      const owned = await records.listOwned(userId);
      const key = owned.length > 0 ? await vault.keyOf(userId) : undefined;
      const shares = await records.sharesOf(owned.map((r) => r.id));
      const received = await records.sharedWith(userId);
      const offered = await offers.ofRecords(owned.map((r) => r.id));
      const offersReceived = await offers.receivedBy(userId);
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
          const payload = key
            ? (vault.open(key, row.id, userId, row.payload_sealed) as { label: string; data: Record<string, unknown> })
            : undefined;
          return {
            id: row.id,
            type: row.type,
            label: payload?.label,
            data: payload?.data,
            created_at: row.created_at.toISOString(),
            updated_at: row.updated_at.toISOString(),
          };
        }),
        shares: {
          granted: shares.map((s) => ({ record_id: s.record_id, user_id: s.user_id, created_at: s.created_at.toISOString() })),
          received: received.map((s) => ({ record_id: s.record_id, owner_id: s.owner_id, created_at: s.created_at.toISOString() })),
          // Offers not accepted (R13). The sharer's side does not say which were declined.
          offered: offered.map((o) => ({ record_id: o.record_id, user_id: o.recipient_id, created_at: o.created_at.toISOString() })),
          offers_received: offersReceived.map((o) => ({
            record_id: o.record_id,
            owner_id: o.sharer_id,
            state: o.state,
            created_at: o.created_at.toISOString(),
          })),
        },
        consents: await consentsOf(userId),
        // Session ids are bearer secrets (the session cookie): only their times are exported.
        sessions: (await accountIndex.list(userId, 'Session')).map((row) => ({
          created_at: row.created_at.toISOString(),
          last_used_at: iso(row.last_used_at),
          expires_at: iso(row.expires_at),
        })),
        audit_trail: (await auditSearch.trailOf(userId)).map((row) =>
          row.actor_id === userId ? presentOwnEvent(row) : presentMention(row, userId),
        ),
      };
      await audit.record({ type: 'account.exported', actorId: userId, clientId: actor.clientId, ip: actor.ip });
      return document;
    },

    /** Erases the account; false when it does not exist (any more). */
    async erase(actor: Actor): Promise<boolean> {
      const userId = actor.userId;
      const summary = await knex.transaction(async (trx) => {
        const recordCount = (await records.listOwned(userId, trx)).length;
        const erased = await erasure.eraseRows(userId, trx);
        return erased.removed
          ? {
              records: recordCount,
              data_key_shredded: erased.dataKeyShredded,
              // Handed to the auth server, which ends them within seconds (oidc_state_revocations).
              sessions_to_end: erased.oauth.sessions,
              grants_to_revoke: erased.oauth.grants,
              audit_events_pseudonymised: erased.auditEventsPseudonymised,
            }
          : undefined;
      });
      rbac.invalidate(userId);
      if (!summary) return false;
      await audit.record({ type: 'account.erased', actorId: userId, clientId: actor.clientId, data: summary });
      return true;
    },
  };
}

export type GdprService = ReturnType<typeof createGdprService>;
