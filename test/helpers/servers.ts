import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { startServers, type Running } from '../../src/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { testEnv } from '../setup.ts';
import { freePort } from './ports.ts';

export { freePort };

export type StorageMode = 'redis' | 'postgres';

/**
 * The settings of every test instance without the file's database, Redis prefix and keys: these
 * may be read at load time (a test's title naming a configured limit), testConfigEnv() may not.
 */
export const testSettingsEnv: Readonly<Record<string, string>> = {
  NODE_ENV: 'test',
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  // Cheaper argon2 keeps the suite fast; the production cost is measured in bench/.
  ARGON2_MEMORY_KIB: '8192',
  ARGON2_TIME_COST: '1',
  // A file's tests share 127.0.0.1 and the file's Redis prefix: request rate limits are off unless a test sets them.
  RATE_LIMIT_TOKEN_PER_IP: '0',
  RATE_LIMIT_TOKEN_PER_CLIENT: '0',
  RATE_LIMIT_REGISTRATION_PER_IP: '0',
  RATE_LIMIT_LOGIN_PER_IP: '0',
  RATE_LIMIT_BROWSER_PER_IP: '0',
  RATE_LIMIT_METADATA_PER_IP: '0',
  RATE_LIMIT_API_PER_IP: '0',
  RATE_LIMIT_API_PER_CLIENT: '0',
  // Likewise the per-IP wrong-password lockout (the per-account one stays on: tests use fresh users).
  LOCKOUT_PASSWORD_IP_MAX_FAILURES: '0',
  // And the per-IP budget for wrong device user codes: a file's tests that try wrong codes add up within its window.
  USER_CODE_ATTEMPTS: '1000',
  // And the hourly budget of verification mails per client address: a file's sign-ups all come from 127.0.0.1.
  EMAIL_CODE_MAILS_PER_IP: '0',
};

/** Environment for a test instance: this file's database, master, vault and audit keys and (optionally) Redis prefix. */
export function testConfigEnv(options: { storage?: StorageMode; env?: Record<string, string> } = {}): Record<string, string> {
  return {
    ...testSettingsEnv,
    DATABASE_URL: testEnv.databaseUrl,
    MASTER_KEY: testEnv.masterKey,
    VAULT_KEY: testEnv.vaultKey,
    AUDIT_KEY: testEnv.auditKey,
    ...((options.storage ?? 'redis') === 'redis' ? { REDIS_URL: testEnv.redisUrl, REDIS_KEY_PREFIX: testEnv.redisKeyPrefix } : {}),
    ...options.env,
  };
}

export type TestServers = {
  issuer: string;
  apiUrl: string;
  config: Config;
  deps: Deps;
  running: Running;
  stop(): Promise<void>;
};

/** Starts the auth server and the API on loopback ports against real Postgres (and Redis). */
export async function startTestServers(
  options: { storage?: StorageMode; env?: Record<string, string>; issuerHost?: string } = {},
): Promise<TestServers> {
  const [authPort, apiPort] = [await freePort(), await freePort()];
  // Browser tests use "localhost": WebAuthn needs a secure context and a domain as RP ID.
  const issuer = `http://${options.issuerHost ?? '127.0.0.1'}:${authPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const config = loadConfig({
    ...testConfigEnv(options),
    ISSUER: issuer,
    AUTH_PORT: String(authPort),
    API_URL: apiUrl,
    API_PORT: String(apiPort),
    HOST: '127.0.0.1',
    ...options.env,
  });
  const deps = await createDeps(config, { logger: createLogger(config) });
  // A failed start must not leak the pools: an open Redis socket would keep mocha from exiting.
  const running = await startServers(deps, ['auth', 'api']).catch(async (error: unknown) => {
    await deps.close();
    throw error;
  });
  return {
    // As configured: a test may pin the addresses (ISSUER, API_URL) to restart on the same ones.
    issuer: config.issuer,
    apiUrl: config.apiUrl,
    config,
    deps,
    running,
    async stop() {
      try {
        await running.stop(1000);
      } finally {
        await deps.close();
      }
    },
  };
}
