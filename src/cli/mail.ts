import { hostname } from 'node:os';
import type { Command } from 'commander';
import { MailRecipientError, MailUnavailableError } from '../services/mail.ts';
import { describeSendError } from '../services/mail-transport.ts';
import { UUID_PATTERN } from '../shared/uuid.ts';
import type { Print, WithDeps } from './context.ts';

export class MailCommandError extends Error {}

/**
 * `portcullis mail status|retry|test` (docs/email.md): the outbox as an operator sees it. Nothing
 * printed names a recipient or shows a mail's content; `test` mails the address the operator gives.
 */
export function registerMailCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  const mail = program.command('mail').description('outgoing mail: the outbox (status, retry) and a test message');
  mail
    .command('status')
    .description('counts of pending, retrying, sent and failed mail, the oldest pending, and the latest failures (no recipients)')
    .action(async () => {
      print(await withDeps((deps) => deps.mail.status()));
    });
  mail
    .command('retry [ids...]')
    .description('queue failed mail again with a fresh budget of attempts (all failed mail, or the outbox ids given)')
    .action(async (ids: string[]) => {
      for (const id of ids) if (!UUID_PATTERN.test(id)) throw new MailCommandError(`not an outbox id: ${id}`);
      const requeued = await withDeps((deps) => deps.mail.retryFailed(ids.length > 0 ? ids.map((id) => id.toLowerCase()) : undefined));
      print({ requeued });
    });
  mail
    .command('test')
    .description('send a test message now, past the outbox, through MAIL_URL (or into DATA_DIR/outbox in development)')
    .requiredOption('--to <address>', 'where to send it')
    .action(async (opts: { to: string }) => {
      const result = await withDeps(async (deps) => {
        try {
          return await deps.mail.sendTest(opts.to, `the command "portcullis mail test" on ${hostname()}`);
        } catch (error) {
          if (error instanceof MailUnavailableError || error instanceof MailRecipientError) throw new MailCommandError(error.message);
          // The operator's own test: the server's full answer helps, and goes to this terminal only.
          throw new MailCommandError(
            `the test mail was not sent (${describeSendError(error).summary}): ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      });
      print({ sent: true, to: opts.to, transport: result.transport });
    });
}
