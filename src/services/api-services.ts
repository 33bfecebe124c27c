import type { Knex } from 'knex';
import type { KeyRing } from '../shared/key-ring.ts';
import type { AccountIndexReader } from '../store/account-index.ts';
import type { AuditEventStore } from '../store/audit-events.ts';
import type { AuditSearchStore } from '../store/audit-search.ts';
import type { DataKeyStore } from '../store/data-keys.ts';
import type { ErasureJournal } from '../store/erasure-journal.ts';
import type { OidcRevocations } from '../store/oidc-revocations.ts';
import type { RecordStore } from '../store/records.ts';
import type { RoleStore } from '../store/roles.ts';
import type { ShareOfferStore } from '../store/share-offers.ts';
import type { UserDirectory } from '../store/user-directory.ts';
import type { UserStore } from '../store/users.ts';
import type { AuditService } from './audit.ts';
import { createAuditLog } from './audit-log.ts';
import { createErasure } from './erasure.ts';
import { createGdprService } from './gdpr.ts';
import { createRbacService } from './rbac.ts';
import { createRecordService, type ShareLimits } from './records.ts';
import { createUserAdminService } from './user-admin.ts';
import { createVault } from './vault.ts';

/** The resource API's own stores (built in deps.ts, apiStores). */
export type ApiStores = {
  records: RecordStore;
  shareOffers: ShareOfferStore;
  dataKeys: DataKeyStore;
  directory: UserDirectory;
  auditSearch: AuditSearchStore;
  erasureJournal: ErasureJournal;
};

/**
 * The resource API's services over its stores (composed once in deps.ts). Nothing here holds
 * MASTER_KEY or touches the identity server's secrets (S3): records are opened with VAULT_KEY
 * (`vault`, undefined in a process without it), the account index is only read, and an erasure
 * queues the account's OAuth state for the auth server.
 */
export function createApiServices(deps: {
  knex: Knex;
  stores: ApiStores;
  vault: KeyRing | undefined;
  users: UserStore;
  roles: RoleStore;
  audit: AuditService;
  auditEvents: AuditEventStore;
  accountIndex: AccountIndexReader;
  revocations: OidcRevocations;
  shareLimits: ShareLimits;
}) {
  const { knex, stores, users, roles, audit, auditEvents, accountIndex, revocations, shareLimits } = deps;
  const erasure = createErasure({
    dataKeys: stores.dataKeys,
    directory: stores.directory,
    journal: stores.erasureJournal,
    auditEvents,
    offers: stores.shareOffers,
    revocations,
  });
  const rbac = createRbacService({ roles, users });
  const vault = createVault({ box: deps.vault, dataKeys: stores.dataKeys });
  return {
    stores,
    rbac,
    vault,
    erasure,
    auditLog: createAuditLog(stores.auditSearch),
    records: createRecordService({ knex, records: stores.records, offers: stores.shareOffers, vault, audit, limits: shareLimits }),
    gdpr: createGdprService({
      knex,
      directory: stores.directory,
      roles,
      records: stores.records,
      offers: stores.shareOffers,
      auditSearch: stores.auditSearch,
      vault,
      rbac,
      audit,
      erasure,
      accountIndex,
    }),
    userAdmin: createUserAdminService({ knex, directory: stores.directory, roles, rbac, audit }),
  };
}

export type ApiServices = ReturnType<typeof createApiServices>;
