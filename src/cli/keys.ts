import { Option, type Command } from 'commander';
import type { Deps } from '../deps.ts';
import { resealColumns, SEALED_COLUMNS, sealStatus, type ResealReport, type SealStatus } from '../services/reseal.ts';

type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

/** A failure the operator acts on: one line on stderr, exit code 1. */
export class MasterKeyInputError extends Error {}

/** `keys status` exits with this code while anything is left to re-seal or rekey (1 stays for errors). */
export const NOT_CLEAN_EXIT_CODE = 2;

export const ROTATE_MASTER_REPLACED =
  'keys rotate-master is replaced by a rotation that keeps every instance running: set MASTER_KEY to the new key and MASTER_KEY_PREVIOUS to the old one on every instance and restart them, then run `portcullis keys reseal` until `portcullis keys status` exits 0, then remove MASTER_KEY_PREVIOUS and restart (docs/operations.md, "Rotating keys")';

type Status = SealStatus & { recovery_codes: { keyed: number; unkeyed: number }; clean: boolean; next: string };

async function status(deps: Deps): Promise<Status> {
  const sealed = await sealStatus(deps.knex, deps.box, SEALED_COLUMNS);
  const recovery = await deps.mfa.recovery.hashVersions();
  const clean = sealed.not_current === 0 && recovery.unkeyed === 0;
  const next = clean
    ? sealed.previous.length > 0
      ? 'nothing is sealed under MASTER_KEY_PREVIOUS any more: remove it from every instance and restart them; then the old key can be destroyed'
      : 'everything is sealed under MASTER_KEY'
    : sealed.unreadable > 0
      ? `${sealed.unreadable} value(s) are sealed under a key that is neither MASTER_KEY nor MASTER_KEY_PREVIOUS: set MASTER_KEY_PREVIOUS to that key (see tables), then run: portcullis keys reseal`
      : 'run: portcullis keys reseal (once every instance runs with the new MASTER_KEY), then keys status again';
  return { ...sealed, recovery_codes: recovery, clean, next };
}

/**
 * `portcullis keys reseal|status` (S2): the second half of a MASTER_KEY rotation, run while the
 * instances serve. `rotate-master`, the one-transaction rotation that needed every instance
 * restarted at once, only says what replaced it.
 */
export function registerMasterKeyCommands(
  keys: Command,
  { withDeps, print }: { withDeps: WithDeps; print: (value: unknown) => void },
): void {
  keys
    .command('reseal')
    .description(
      're-seal under MASTER_KEY every value still sealed under MASTER_KEY_PREVIOUS (or an older key id), and rekey unkeyed recovery-code hashes; safe while instances run, idempotent',
    )
    .addOption(
      new Option('--batch-size <n>', 'rows per transaction (default 500)').argParser((value: string) => {
        if (!/^[1-9][0-9]{0,5}$/.test(value)) throw new MasterKeyInputError('--batch-size must be a positive integer');
        return Number(value);
      }),
    )
    .action(async (opts: { batchSize?: number }) => {
      const result = await withDeps(async (deps): Promise<ResealReport & { recovery_codes_rekeyed: number; status: Status }> => {
        const report = await resealColumns(deps.knex, deps.box, SEALED_COLUMNS, opts.batchSize ? { batchSize: opts.batchSize } : {});
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
          `not clean: ${report.not_current} sealed value(s) not under MASTER_KEY, ${report.recovery_codes.unkeyed} unkeyed recovery-code hash(es); ${report.next}\n`,
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
