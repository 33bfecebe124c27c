import { Option, type Command } from 'commander';
import type { Deps } from '../deps.ts';
import { MASTER_COLUMNS, resealColumns, sealStatus, type ResealReport, type SealStatus } from '../services/reseal.ts';
import { dataKeysUnderMasterKey, rewrapDataKeys, type RewrapReport } from '../services/vault-rewrap.ts';
import { resolveKey } from '../shared/dev-keys.ts';
import { createLogger } from '../shared/logger.ts';
import { createMasterBox } from '../shared/master-key.ts';
import { createVaultBox } from '../shared/vault-key.ts';
import type { CliDatabase, Print, WithDatabase, WithDeps } from './context.ts';
import type { Config } from '../config/types.ts';

/** A failure the operator acts on: one line on stderr, exit code 1. */
export class MasterKeyInputError extends Error {}

/** `--batch-size`: rows per transaction of a re-seal or rewrap. */
const batchSizeOption = (): Option =>
  new Option('--batch-size <n>', 'rows per transaction (default 500)').argParser((value: string) => {
    if (!/^[1-9][0-9]{0,5}$/.test(value)) throw new MasterKeyInputError('--batch-size must be a positive integer');
    return Number(value);
  });

/** `keys status` exits with this code while anything is left to re-seal or rekey (1 stays for errors). */
export const NOT_CLEAN_EXIT_CODE = 2;

export const ROTATE_MASTER_REPLACED =
  'keys rotate-master is replaced by a rotation that keeps every instance running: set MASTER_KEY to the new key and MASTER_KEY_PREVIOUS to the old one on every instance and restart them, then run `portcullis keys reseal` until `portcullis keys status` exits 0, then remove MASTER_KEY_PREVIOUS and restart (docs/operations.md, "Rotating keys")';

type Status = SealStatus & {
  recovery_codes: { keyed: number; unkeyed: number };
  /** Data keys of the records vault still wrapped under a master key (from before VAULT_KEY, S3). */
  data_keys_under_master_key: number;
  clean: boolean;
  next: string;
};

async function status(deps: Deps): Promise<Status> {
  // MASTER_KEY's own columns; the records' data keys are VAULT_KEY's (`keys rewrap-vault`).
  const sealed = await sealStatus(deps.knex, deps.box, MASTER_COLUMNS);
  const recovery = await deps.mfa.recovery.hashVersions();
  // Until they are under VAULT_KEY, old data keys need a master key: the old one must not go.
  const underMaster = await dataKeysUnderMasterKey(deps.knex);
  const clean = sealed.not_current === 0 && recovery.unkeyed === 0 && underMaster === 0;
  const next = clean
    ? sealed.previous.length > 0
      ? 'nothing is sealed under MASTER_KEY_PREVIOUS any more: remove it from every instance and restart them; then the old key can be destroyed'
      : 'everything is sealed under MASTER_KEY'
    : sealed.unreadable > 0
      ? `${sealed.unreadable} value(s) are sealed under a key that is neither MASTER_KEY nor MASTER_KEY_PREVIOUS: set MASTER_KEY_PREVIOUS to that key (see tables), then run: portcullis keys reseal`
      : sealed.not_current > 0 || recovery.unkeyed > 0
        ? 'run: portcullis keys reseal (once every instance runs with the new MASTER_KEY), then keys status again'
        : `${underMaster} data key(s) of the records vault are still wrapped under a master key: run portcullis keys rewrap-vault with VAULT_KEY and MASTER_KEY (docs/operations.md, Upgrades)`;
  return { ...sealed, recovery_codes: recovery, data_keys_under_master_key: underMaster, clean, next };
}

/**
 * `portcullis keys reseal|status` (S2): the second half of a MASTER_KEY rotation, run while the
 * instances serve. `rotate-master`, the one-transaction rotation that needed every instance
 * restarted at once, only says what replaced it.
 */
export function registerMasterKeyCommands(keys: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  keys
    .command('reseal')
    .description(
      're-seal under MASTER_KEY every value still sealed under MASTER_KEY_PREVIOUS (or an older key id), and rekey unkeyed recovery-code hashes; safe while instances run, idempotent',
    )
    .addOption(batchSizeOption())
    .action(async (opts: { batchSize?: number }) => {
      const result = await withDeps(async (deps): Promise<ResealReport & { recovery_codes_rekeyed: number; status: Status }> => {
        const report = await resealColumns(deps.knex, deps.box, MASTER_COLUMNS, opts.batchSize ? { batchSize: opts.batchSize } : {});
        const rekeyed = await deps.mfa.recovery.rekeyUnkeyed(opts.batchSize);
        return { ...report, recovery_codes_rekeyed: rekeyed, status: await status(deps) };
      });
      print(result);
      if (result.unreadable.length > 0) {
        process.stderr.write(
          `error: ${result.unreadable.length} value(s) could not be opened with MASTER_KEY or MASTER_KEY_PREVIOUS and were left as they are\n`,
        );
        process.exitCode = 1;
      }
    });
  keys
    .command('status')
    .description(
      `per table, how many sealed values each master key id seals; exits ${NOT_CLEAN_EXIT_CODE} while any is under a key other than MASTER_KEY (or a recovery-code hash is unkeyed)`,
    )
    .action(async () => {
      const report = await withDeps(status);
      print(report);
      if (!report.clean) {
        process.stderr.write(
          `not clean: ${report.not_current} sealed value(s) not under MASTER_KEY, ${report.recovery_codes.unkeyed} unkeyed recovery-code hash(es), ${report.data_keys_under_master_key} data key(s) under a master key; ${report.next}\n`,
        );
        process.exitCode = NOT_CLEAN_EXIT_CODE;
      }
    });
  keys
    .command('rotate-master')
    .description('replaced: see `keys reseal` and docs/operations.md ("Rotating keys")')
    .allowUnknownOption()
    .option('--new-key-file <path>', 'no longer read')
    .action(() => {
      throw new MasterKeyInputError(ROTATE_MASTER_REPLACED);
    });
}

/**
 * `portcullis keys rewrap-vault`: every data key of the records vault under VAULT_KEY (S3), from
 * MASTER_KEY after an upgrade and from VAULT_KEY_PREVIOUS during a rotation; the re-seal of
 * `keys reseal` on the data-key column, safe while instances run. Needs VAULT_KEY and a database
 * role that may rewrite `user_data_keys` (the API's); MASTER_KEY only while keys from before
 * VAULT_KEY remain, so the API's host, which holds VAULT_KEY alone, can run a rotation's pass.
 */
export async function rewrapVault(
  { knex, embedded }: CliDatabase,
  config: Config,
  options: { batchSize?: number } = {},
): Promise<RewrapReport> {
  const logger = createLogger({ logLevel: 'warn' });
  const key = async (name: string, value: string | undefined, fileName: string) =>
    resolveKey({ name, value, fileName }, { dataDir: config.dataDir, embedded, logger });
  const previous = (value: string | undefined) => (value ? [Buffer.from(value, 'base64')] : []);
  const vault = createVaultBox(await key('VAULT_KEY', config.vaultKey, 'vault.key'), previous(config.vaultKeyPrevious));
  // In embedded mode the generated master key sits in DATA_DIR beside the generated vault key.
  const master =
    config.masterKey !== undefined || embedded
      ? createMasterBox(await key('MASTER_KEY', config.masterKey, 'master.key'), previous(config.masterKeyPrevious))
      : undefined;
  return rewrapDataKeys(knex, vault, master, options);
}

export function registerVaultKeyCommands(keys: Command, { withDatabase, print }: { withDatabase: WithDatabase; print: Print }): void {
  keys
    .command('rewrap-vault')
    .description(
      'move every data key of the records vault under VAULT_KEY: from MASTER_KEY (upgrading from a release before VAULT_KEY) or VAULT_KEY_PREVIOUS (a rotation); safe while instances run, idempotent',
    )
    .addOption(batchSizeOption())
    .action(async (opts: { batchSize?: number }) => {
      const report = await withDatabase((database, config) =>
        rewrapVault(database, config, opts.batchSize ? { batchSize: opts.batchSize } : {}),
      );
      print(report);
      if (report.unreadable.length > 0) {
        process.stderr.write(
          `error: ${report.unreadable.length} data key(s) could not be opened with VAULT_KEY, VAULT_KEY_PREVIOUS or MASTER_KEY (${[...new Set(report.unreadable.map((u) => u.key_id))].join(', ')}) and were left as they are\n`,
        );
        process.exitCode = 1;
      }
    });
}
