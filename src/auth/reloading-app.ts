import type { IncomingMessage, ServerResponse } from 'node:http';
import type Koa from 'koa';
import type { Logger } from '../shared/logger.ts';

export type ReloadingApp = {
  /** The listener's request handler: always the newest app. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** One schedule step and reload check now (the timer calls it every interval). */
  tick(): Promise<void>;
  /** Number of rebuilds since start. */
  reloads(): number;
  stop(): void;
};

/**
 * Keeps the auth app current with the keys in Postgres without a restart. Every interval it
 * advances the key schedule (under the cluster-wide lock, so any instance may do it) and compares
 * the key fingerprint; when keys changed it builds a fresh app (a new oidc-provider with the new
 * JWKS and cookie keys) and routes new requests to it. Requests already running finish on the old
 * app: oidc-provider instances hold no flow state, which lives in Redis or Postgres.
 */
export async function createReloadingApp(options: {
  build: () => Promise<Koa>;
  fingerprint: () => Promise<string>;
  advance: () => Promise<{ activated: string[]; retired: string[]; rotated: string[] }>;
  intervalMs: number;
  logger: Logger;
}): Promise<ReloadingApp> {
  const { build, fingerprint, advance, intervalMs, logger } = options;
  await advance();
  // Read the fingerprint before building, so a change during the build triggers another reload.
  let current = await fingerprint();
  let handler = (await build()).callback();
  let reloads = 0;
  let running: Promise<void> | undefined;

  async function step(): Promise<void> {
    const changed = await advance();
    if (changed.activated.length + changed.retired.length + changed.rotated.length > 0)
      logger.info(changed, 'signing key schedule advanced');
    const next = await fingerprint();
    if (next === current) return;
    const app = await build();
    handler = app.callback();
    current = next;
    reloads++;
    logger.info({ reloads }, 'keys changed; serving new requests with the reloaded provider');
  }

  const tick = (): Promise<void> => {
    running ??= step()
      .catch((error: unknown) => {
        logger.warn({ err: error }, 'key refresh failed; keeping the current keys');
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();

  return {
    handle: (req, res) => void handler(req, res),
    tick,
    reloads: () => reloads,
    stop: () => clearInterval(timer),
  };
}
