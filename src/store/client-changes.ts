import pg from 'pg';
import type { Logger } from '../shared/logger.ts';

/** The channel the oauth_clients trigger notifies (migrations/20261123230000_notify_client_changes.ts). */
export const CLIENT_CHANGED_CHANNEL = 'portcullis_client_changed';

export type ClientChangeWatch = {
  /** Resolves once LISTEN is in place (or the first attempt failed; retries go on). */
  ready: Promise<void>;
  close(): Promise<void>;
};

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * Holds one Postgres connection outside the pool that LISTENs for client changes and reports
 * each changed client id. The in-memory client cache is correct without it (entries expire after
 * CLIENT_CACHE_TTL_MS); with it, a client disabled, deleted or re-keyed by any instance, the CLI
 * or hand-written SQL stops being served everywhere within milliseconds. Notifications sent
 * while the connection is down are lost, so every (re)connection also calls onReset, and a lost
 * connection is retried with back-off. Behind a transaction-mode PgBouncer LISTEN does not work;
 * the cache then falls back to its TTL.
 */
export function watchClientChanges({
  databaseUrl,
  onChange,
  onReset,
  logger,
}: {
  databaseUrl: string;
  onChange: (clientId: string) => void;
  onReset: () => void;
  logger: Logger;
}): ClientChangeWatch {
  let closed = false;
  let client: pg.Client | undefined;
  let retryMs = RETRY_MIN_MS;
  let retryTimer: NodeJS.Timeout | undefined;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const scheduleRetry = () => {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, retryMs).unref();
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };

  const lost = (connection: pg.Client, error?: unknown) => {
    if (client !== connection) return;
    client = undefined;
    connection.removeAllListeners('notification');
    void connection.end().catch(() => undefined);
    if (closed) return;
    logger.warn({ err: error }, 'client change notifications lost; cached clients now expire by TTL until reconnected');
    onReset();
    scheduleRetry();
  };

  async function connect(): Promise<void> {
    // A connect that hangs (a half-open network path) must fail and be retried, not stall listening for good.
    const connection = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
    client = connection;
    connection.on('error', (error) => lost(connection, error));
    connection.on('end', () => lost(connection));
    connection.on('notification', (message) => {
      if (message.channel === CLIENT_CHANGED_CHANNEL && message.payload) onChange(message.payload);
    });
    try {
      await connection.connect();
      await connection.query(`LISTEN ${CLIENT_CHANGED_CHANNEL}`);
      // The socket must not keep a stopping process alive; the pool's connections do not either.
      (connection as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
      if (closed) {
        await connection.end().catch(() => undefined);
        return;
      }
      retryMs = RETRY_MIN_MS;
      // Whatever changed while we were not listening is unknown: start from an empty cache.
      onReset();
    } catch (error) {
      lost(connection, error);
    } finally {
      markReady();
    }
  }

  void connect();
  return {
    ready,
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const connection = client;
      client = undefined;
      await connection?.end().catch(() => undefined);
    },
  };
}
