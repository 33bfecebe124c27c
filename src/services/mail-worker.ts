import type { Logger } from '../shared/logger.ts';
import type { MailService } from './mail.ts';

export type MailWorker = {
  /** Runs a pass now (after an enqueue, or a requeue). */
  wake(): void;
  /** No new pass; waits for the mail being sent, at most `graceMs` (its lease covers a cut send). */
  stop(graceMs?: number): Promise<void>;
};

export type MailWorkerOptions = {
  /** Between passes when nothing wakes the worker: retries fall due, other instances' mail waits. */
  pollMs?: number;
  /** Mails per pass before the next is scheduled at once. */
  batch?: number;
  /** How often sent and failed rows past their retention are deleted. */
  pruneEveryMs?: number;
};

/**
 * The outbox's worker, one per auth server process (started and stopped with the servers,
 * src/server.ts). Passes never overlap: a wake-up during a pass runs another pass right after.
 * Several instances share the work through the outbox's claims (FOR UPDATE SKIP LOCKED, leases).
 */
export function startMailWorker(mail: MailService, logger: Logger, options: MailWorkerOptions = {}): MailWorker {
  const { pollMs = 5000, batch = 10, pruneEveryMs = 3_600_000 } = options;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let again = false;
  let lastPrune = 0;

  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, ms).unref();
  };

  async function pass(): Promise<void> {
    try {
      let report;
      do report = await mail.deliverDue(batch, () => stopped);
      while (!stopped && report.claimed === batch);
      if (!stopped && Date.now() - lastPrune >= pruneEveryMs) {
        lastPrune = Date.now();
        const pruned = await mail.prune();
        if (pruned > 0) logger.info({ pruned }, 'mail outbox: rows past their retention deleted');
      }
    } catch (error) {
      // The database, not a mail: sending errors are handled (and kept) per row.
      logger.warn({ err: error }, 'mail outbox: a pass failed; trying again at the next');
    }
  }

  function run(): void {
    if (stopped) return;
    if (current) {
      again = true;
      return;
    }
    current = pass().finally(() => {
      current = undefined;
      const next = again ? 0 : pollMs;
      again = false;
      schedule(next);
    });
  }

  // A wake-up during a pass asks for another pass right after it: a timer set now could be
  // cleared by that pass's own scheduling of the next poll before it fires, leaving a mail
  // committed during the pass waiting for the poll (seen on a loaded machine: 5.4 s, not at once).
  const wake = (): void => {
    if (current) again = true;
    else schedule(0);
  };
  const unsubscribe = mail.onEnqueued(wake);
  schedule(0);

  return {
    wake,
    async stop(graceMs = 10_000) {
      stopped = true;
      clearTimeout(timer);
      unsubscribe();
      if (!current) return;
      let cut: NodeJS.Timeout | undefined;
      await Promise.race([current, new Promise<void>((resolve) => (cut = setTimeout(resolve, graceMs).unref()))]);
      clearTimeout(cut);
    },
  };
}
