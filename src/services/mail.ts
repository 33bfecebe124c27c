// Over 250 lines: rendering, sealing and queueing one mail, and the worker's claim/send/retry of it, share one row's rules.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import addressparser from 'nodemailer/lib/addressparser';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import { StartupError } from '../shared/dev-keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { ClaimedMail, OutboxCounts, OutboxFailure, OutboxStore } from '../store/outbox.ts';
import type { AuditService } from './audit.ts';
import type { MailData, MailTemplate } from './mail-data.ts';
import type { MailTemplates, RenderedMail } from './mail-templates.ts';
import { describeSendError, type MailTransport } from './mail-transport.ts';

export type { IssuerPath, MailData, MailTemplate } from './mail-data.ts';

/** One mail to queue: the recipient, the template and its data (src/services/mail-data.ts). */
export type MailRequest<T extends MailTemplate> = {
  to: string;
  template: T;
  data: MailData[T];
  /** The recipient's language, when known; templates fall back to English. */
  lang?: string | undefined;
  /** The account the mail is about: erasing it deletes the mail if still queued. */
  userId?: string | undefined;
};

/** Production without MAIL_URL: nothing may be queued (features that send mail refuse to start first). */
export class MailUnavailableError extends Error {
  constructor() {
    super('no mail transport: set MAIL_URL (docs/email.md)');
    this.name = 'MailUnavailableError';
  }
}

/** A recipient that is not exactly one plain address (a list, a display name, a line break). */
export class MailRecipientError extends Error {
  constructor() {
    super('a mail recipient must be one plain email address');
    this.name = 'MailRecipientError';
  }
}

/** What one pass of the worker did. */
export type DeliveryReport = { claimed: number; sent: number; retrying: number; failed: number };

export type MailStatus = OutboxCounts & { transport: 'smtp' | 'files' | 'none'; recent_failures: OutboxFailure[] };

export type MailSettings = { from: string; maxAttempts: number; retryBaseSeconds: number; retentionDays: number };

/** The longest wait between two attempts of one mail. */
export const MAX_RETRY_SECONDS = 3600;
/** How long a claimed row is the claiming worker's: well over the SMTP timeouts (mail-transport.ts). */
export const LEASE_SECONDS = 120;

// Whitespace (CR and LF among it), controls, and what makes one address into several or a named one.
// eslint-disable-next-line no-control-regex -- control characters are refused on purpose
const NOT_IN_ADDRESS = /[\s\u0000-\u001f\u007f<>()[\]\\,;:"]/u;

/** The recipient as given, when it is one plain address: anything else is refused, never cleaned up. */
export function checkRecipient(to: string): string {
  const at = to.lastIndexOf('@');
  if (to.length > 254 || at < 1 || at === to.length - 1 || to.indexOf('@') !== at || NOT_IN_ADDRESS.test(to))
    throw new MailRecipientError();
  return to;
}

/** MAIL_FROM must be one address, optionally with a name: it is checked once, at start. */
function checkSender(from: string): void {
  const parsed = addressparser(from);
  const [only] = parsed;
  if (parsed.length !== 1 || !only?.address || !only.address.includes('@'))
    throw new StartupError(`MAIL_FROM must be one address, optionally with a name, like "Example <no-reply@example.com>" (got ${from})`);
}

type StoredMail = RenderedMail & { to: string };

/**
 * Outgoing mail through the outbox (docs/email.md). `enqueue` renders the mail and writes it,
 * sealed, into the outbox, inside the caller's transaction when given one: a flow that rolls back
 * sends nothing, and a mail that goes out belongs to a committed change. Sending never happens on
 * the request path: a worker in the auth server (src/services/mail-worker.ts) calls `deliverDue`,
 * which claims due rows and retries failures with exponential back-off.
 */
export function createMailService(deps: {
  outbox: OutboxStore;
  box: CryptoBox;
  templates: MailTemplates;
  transport: MailTransport | undefined;
  settings: MailSettings;
  audit: AuditService;
  logger: Logger;
}) {
  const { outbox, box, templates, transport, settings, audit, logger } = deps;
  checkSender(settings.from);
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of listeners) listener();
  };

  /**
   * Wakes the worker once the row can be claimed: at once without a transaction, after the commit
   * with one (in a nested transaction, after its savepoint: a wake-up that finds nothing yet leaves
   * the mail to the next poll).
   */
  function wakeAfter(trx: Knex.Transaction | undefined): void {
    if (!trx) {
      notify();
      return;
    }
    trx.executionPromise.then(notify, () => undefined);
  }

  function open(row: ClaimedMail): StoredMail {
    return JSON.parse(box.open(row.payload_sealed, SEAL_CONTEXT.outboxPayload(row.id)).toString('utf8')) as StoredMail;
  }

  async function giveUp(row: ClaimedMail, error: string): Promise<void> {
    if (!(await outbox.markFailed(row, error))) return;
    logger.error(
      { outboxId: row.id, template: row.template, attempts: row.attempts, error },
      'mail given up: see `portcullis mail status`',
    );
    await audit.record({
      type: 'mail.failed',
      outcome: 'failure',
      data: { outbox_id: row.id, template: row.template, attempts: row.attempts, error },
    });
  }

  /** `unreachable`: not sent because the server could not be reached; the pass ends there. */
  async function deliver(row: ClaimedMail, sender: MailTransport): Promise<'sent' | 'retrying' | 'failed' | 'unreachable'> {
    let mail: StoredMail;
    try {
      mail = open(row);
    } catch {
      // Sealed under a key this process no longer holds, or damaged: no attempt can send it.
      await giveUp(row, 'EPAYLOAD');
      return 'failed';
    }
    try {
      await sender.send({ id: row.id, from: settings.from, ...mail });
    } catch (error) {
      const failure = describeSendError(error);
      if (failure.permanent || row.attempts >= settings.maxAttempts) {
        await giveUp(row, failure.summary);
        return 'failed';
      }
      const delay = Math.min(settings.retryBaseSeconds * 2 ** (row.attempts - 1), MAX_RETRY_SECONDS);
      await outbox.markRetry(row, delay, failure.summary);
      // No recipient and no error text (it may quote the address): the row's id finds the rest.
      logger.warn(
        { outboxId: row.id, template: row.template, attempts: row.attempts, retryInSeconds: delay, error: failure.summary },
        'mail not sent; retrying later',
      );
      return failure.serverUnreachable ? 'unreachable' : 'retrying';
    }
    await outbox.markSent(row);
    return 'sent';
  }

  return {
    /** smtp (MAIL_URL), files (development without MAIL_URL) or none (production without MAIL_URL). */
    transport: transport?.kind ?? ('none' as const),

    /**
     * Queues one mail; returns its outbox id. Pass the transaction of the change the mail
     * belongs to. Throws MailRecipientError for anything but one plain address, and
     * MailTemplateError for a link that is not a path on the issuer.
     */
    async enqueue<T extends MailTemplate>(trx: Knex.Transaction | undefined, request: MailRequest<T>): Promise<{ id: string }> {
      if (!transport) throw new MailUnavailableError();
      const to = checkRecipient(request.to);
      const rendered = templates.render(request.template, request.data, request.lang);
      const id = randomUUID();
      const stored: StoredMail = { to, ...rendered };
      await outbox.insert(
        {
          id,
          template: request.template,
          user_id: request.userId ?? null,
          payload_sealed: box.seal(JSON.stringify(stored), SEAL_CONTEXT.outboxPayload(id)),
        },
        trx,
      );
      wakeAfter(trx);
      return { id };
    },

    /** Called after each committed enqueue of this process (the worker's wake-up); returns the unsubscribe. */
    onEnqueued(listener: () => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    /**
     * Tries up to `limit` due mails once each, oldest due first, claiming one at a time (so a
     * stop between two leaves no row claimed and untried). Ends early at `shouldStop`, and when
     * the server cannot be reached: during an outage each pass spends one connection attempt on
     * one mail, not one per queued mail; the others keep their place and their attempts.
     */
    async deliverDue(limit = 10, shouldStop: () => boolean = () => false): Promise<DeliveryReport> {
      const report: DeliveryReport = { claimed: 0, sent: 0, retrying: 0, failed: 0 };
      if (!transport) return report;
      while (report.claimed < limit && !shouldStop()) {
        const [row] = await outbox.claim(1, LEASE_SECONDS);
        if (!row) break;
        report.claimed += 1;
        const outcome = await deliver(row, transport);
        if (outcome === 'unreachable') {
          report.retrying += 1;
          break;
        }
        if (outcome === 'sent') report.sent += 1;
        else if (outcome === 'retrying') report.retrying += 1;
        else report.failed += 1;
      }
      return report;
    },

    /** Deletes sent and failed rows older than MAIL_OUTBOX_RETENTION_DAYS. */
    async prune(): Promise<number> {
      return outbox.prune(settings.retentionDays);
    },

    /** Counts by state and the latest failures (`portcullis mail status`): nothing personal. */
    async status(): Promise<MailStatus> {
      return { transport: transport?.kind ?? 'none', ...(await outbox.counts()), recent_failures: await outbox.recentFailures(10) };
    },

    /** Failed mails (all, or those named) are tried again with a fresh budget: after an outage longer than the retries. */
    async retryFailed(ids?: readonly string[]): Promise<number> {
      const requeued = await outbox.requeueFailed(ids);
      if (requeued > 0) notify();
      return requeued;
    },

    /** Sends the test mail at once, past the outbox (`portcullis mail test`): the transport's error is the answer. */
    async sendTest(to: string, sentBy: string): Promise<{ transport: 'smtp' | 'files' }> {
      if (!transport) throw new MailUnavailableError();
      const rendered = templates.render('test', { sentBy, links: { account: '/account' } });
      await transport.verify();
      await transport.send({ id: randomUUID(), from: settings.from, to: checkRecipient(to), ...rendered });
      return { transport: transport.kind };
    },

    close(): void {
      transport?.close();
    },
  };
}

export type MailService = ReturnType<typeof createMailService>;
