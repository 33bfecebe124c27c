import type { Knex } from 'knex';
import type { KeyRing } from '../shared/key-ring.ts';
import type { Logger } from '../shared/logger.ts';
import { isMasterKeyId, withMasterKey } from '../shared/vault-key.ts';
import { createSealedColumnStore, VAULT_COLUMNS } from '../store/sealed-columns.ts';
import { resealColumns, sealStatus, type ResealReport, type SealStatus } from './reseal.ts';
import { REWRAP_COMMAND } from './vault.ts';

export type RewrapReport = ResealReport & { status: SealStatus };

/**
 * Moves every per-user data key under the current VAULT_KEY (S3): from MASTER_KEY, which wrapped
 * them before VAULT_KEY existed (an upgrade: `master` given), and from VAULT_KEY_PREVIOUS (a
 * rotation). The re-seal of MASTER_KEY's rotation (src/services/reseal.ts) on the data-key column:
 * batches, compare and set, safe while instances run, idempotent. The data keys themselves, and so
 * every record payload, stay as they are. `unreadable` lists keys under a key not given here.
 */
export async function rewrapDataKeys(
  knex: Knex,
  vault: KeyRing,
  master?: KeyRing,
  options: { batchSize?: number } = {},
): Promise<RewrapReport> {
  const ring = master ? withMasterKey(vault, master) : vault;
  const report = await resealColumns(knex, ring, VAULT_COLUMNS, options);
  return { ...report, status: await sealStatus(knex, ring, VAULT_COLUMNS) };
}

/**
 * At start of a process serving the API: where it also holds MASTER_KEY (one process for both
 * roles, or embedded mode), data keys not yet under VAULT_KEY are re-wrapped; otherwise, or for
 * what is left, an error names the command to run. Records of those keys answer 503 until then.
 */
export async function checkDataKeys(
  knex: Knex,
  deps: { vault: KeyRing | undefined; master: KeyRing | undefined; logger: Logger },
): Promise<void> {
  const { vault, master, logger } = deps;
  if (!vault) return;
  const status = await sealStatus(knex, vault, VAULT_COLUMNS);
  if (status.not_current === 0) return;
  if (master) {
    const report = await rewrapDataKeys(knex, vault, master);
    const moved = Object.values(report.resealed).reduce((sum, n) => sum + n, 0);
    if (moved > 0) logger.info({ rewrapped: moved, vault_key: vault.keyId }, 'data keys re-wrapped under VAULT_KEY');
    if (report.status.not_current === 0) return;
    logger.error(
      { status: report.status.tables },
      `data keys not under VAULT_KEY remain; their records answer 503 until ${REWRAP_COMMAND} moves them`,
    );
    return;
  }
  logger.error(
    { data_keys: status.not_current, tables: status.tables, vault_key: vault.keyId },
    `${status.not_current} data keys are not wrapped under VAULT_KEY yet (from MASTER_KEY before an upgrade, or VAULT_KEY_PREVIOUS during a rotation); their records answer 503 until ${REWRAP_COMMAND} moves them (docs/operations.md)`,
  );
}

/** Data keys whose envelope names a master key: from before VAULT_KEY, they need `keys rewrap-vault` (and the master key until then). */
export async function dataKeysUnderMasterKey(knex: Knex): Promise<number> {
  const store = createSealedColumnStore(knex);
  let count = 0;
  for (const spec of VAULT_COLUMNS) {
    if (!(await store.exists(spec))) continue;
    for (const [keyId, n] of Object.entries(await store.countByKeyId(spec))) if (isMasterKeyId(keyId)) count += n;
  }
  return count;
}
