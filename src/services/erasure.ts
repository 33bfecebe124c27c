import type { Knex } from 'knex';
import type { AuditEventStore } from '../store/audit-events.ts';
import type { DataKeyStore } from '../store/data-keys.ts';
import type { ErasureJournal } from '../store/erasure-journal.ts';
import type { OidcRevocations } from '../store/oidc-revocations.ts';
import type { ShareOfferStore } from '../store/share-offers.ts';
import type { UserDirectory } from '../store/user-directory.ts';

/**
 * What an erasure does to the database, in the caller's transaction, and again after a restore
 * (S5). The data key goes first and explicitly (crypto-shredding every copy of the ciphertext),
 * then the account row, whose foreign keys take roles, records, shares, MFA factors and passkeys
 * with it, and the share offers made to the account (their recipient id has no foreign key:
 * offers to ids that are no account are stored too, R13); the addresses and user agents of its audit events are pseudonymised; the erasure is
 * journalled. The account's OAuth sessions and grants are handed to the auth server first
 * (oidc_state_revocations, S3), before the account row takes their index rows with it.
 * Everything here needs only AUDIT_KEY (for the pseudonymisation tags), so a restore can re-apply
 * it without unwrapping anything, and the API can do it without MASTER_KEY.
 */
export function createErasure(deps: {
  dataKeys: DataKeyStore;
  directory: UserDirectory;
  journal: ErasureJournal;
  auditEvents: AuditEventStore;
  offers: ShareOfferStore;
  revocations: OidcRevocations;
}) {
  const { dataKeys, directory, journal, auditEvents, offers, revocations } = deps;

  async function eraseRows(userId: string, trx: Knex.Transaction) {
    const dataKeyShredded = await dataKeys.remove(userId, trx);
    const oauth = await revocations.queueAccount(userId, trx);
    const removed = await directory.remove(userId, trx);
    await offers.removeAllTo(userId, trx);
    const auditEventsPseudonymised = await auditEvents.pseudonymise(userId, trx);
    await journal.add(userId, trx);
    return { removed, dataKeyShredded, oauth, auditEventsPseudonymised };
  }

  return {
    eraseRows,

    /**
     * After a restore: erases again every journalled account of which the restored rows brought
     * something back, and pseudonymises their audit events again. Returns how many.
     */
    async reapply(trx: Knex.Transaction): Promise<number> {
      const undone = await journal.undone(trx);
      for (const userId of undone) await eraseRows(userId, trx);
      return undone.length;
    },
  };
}

export type Erasure = ReturnType<typeof createErasure>;
