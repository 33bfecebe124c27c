import type { Command } from 'commander';
import type { Print, WithDeps } from './context.ts';
import { exportAuditEvents, verifyAuditChain } from '../services/audit.ts';

async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(`${line}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

/**
 * `portcullis audit verify`: walk the HMAC chain under AUDIT_KEY, report the first broken link (exit 1).
 * `portcullis audit export [--since ISO]`: JSON lines for a SIEM, oldest first.
 */
export function registerAuditCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  const audit = program.command('audit').description('tamper-evident audit log: verify the hash chain, export for a SIEM');
  audit
    .command('verify')
    .description('recompute every event HMAC (under AUDIT_KEY) and link; prints a report, exits 1 at the first broken link')
    .action(async () => {
      const report = await withDeps((deps) => verifyAuditChain(deps.knex, deps.auditKey));
      print(report);
      if (!report.ok) {
        process.stderr.write(`error: audit chain broken at event ${report.broken_at}: ${report.reason}\n`);
        process.exitCode = 1;
      }
    });
  audit
    .command('export')
    .description('print events as JSON lines (one object per line), oldest first; nothing secret is included')
    .option('--since <iso-time>', 'only events at or after this time (ISO 8601, e.g. 2026-01-01T00:00:00Z)')
    .action(async (opts: { since?: string }) => {
      let since: Date | undefined;
      if (opts.since !== undefined) {
        since = new Date(opts.since);
        if (!/^\d{4}-\d{2}-\d{2}/.test(opts.since) || Number.isNaN(since.getTime())) {
          process.stderr.write(`error: --since must be an ISO 8601 time such as 2026-01-01T00:00:00Z (got ${opts.since})\n`);
          process.exitCode = 1;
          return;
        }
      }
      await withDeps(async (deps) => {
        for await (const event of exportAuditEvents(deps.knex, since)) await writeLine(JSON.stringify(event));
      });
    });
}
