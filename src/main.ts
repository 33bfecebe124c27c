import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.ts';
import { assertProductionSettings, ProductionConfigError } from './config/production-checks.ts';
import { createApiDeps, createDeps, hasAuth, StartupError } from './deps.ts';
import { checkDataKeys } from './services/vault-rewrap.ts';
import { checkEvictionPolicy } from './store/redis-checks.ts';
import { startServers, type Role } from './server.ts';
import { createLogger } from './shared/logger.ts';
import { TlsFileError } from './shared/tls.ts';

/** Process entry: config → deps → apps → listen → signals. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' } }, allowPositionals: false });
  if (values.only !== undefined && values.only !== 'auth' && values.only !== 'api') {
    throw new StartupError('--only takes "auth" or "api"');
  }
  const roles: Role[] = values.only ? [values.only] : ['auth', 'api'];
  const config = loadConfig();
  assertProductionSettings(config, process.env, roles);
  const logger = createLogger(config);
  // An API-only process never reads MASTER_KEY (S3); outside production one given it is told so.
  if (!roles.includes('auth') && config.masterKey)
    logger.warn('MASTER_KEY is set but not used: the API process needs VAULT_KEY only; do not give it MASTER_KEY');
  const deps = roles.includes('auth')
    ? await createDeps(config, { logger, vault: roles.includes('api') ? 'required' : 'optional' })
    : await createApiDeps(config, { logger });
  if (hasAuth(deps) && deps.box.previousKeyIds.length > 0) {
    // Only for a rotation: the old key must not stay configured (and so stay needed) for good.
    logger.warn(
      { current: deps.box.keyId, previous: deps.box.previousKeyIds },
      'MASTER_KEY_PREVIOUS is set: values sealed under it still open. Once every instance runs with the new MASTER_KEY, run `portcullis keys reseal`, check `portcullis keys status`, then remove MASTER_KEY_PREVIOUS',
    );
  }
  // Data keys still under MASTER_KEY (an upgrade) or VAULT_KEY_PREVIOUS (a rotation): a process
  // holding both keys moves them at once; any other process says what to run.
  if (roles.includes('api')) await checkDataKeys(deps.knex, { vault: deps.vaultBox, master: hasAuth(deps) ? deps.box : undefined, logger });
  if (deps.redis) {
    // ioredis reconnects by itself; log the outage once a minute instead of an unhandled-error line per retry.
    let lastLogged = 0;
    deps.redis.on('error', (error: unknown) => {
      if (Date.now() - lastLogged < 60_000) return;
      lastLogged = Date.now();
      logger.error({ err: error }, 'redis connection error (retrying)');
    });
    const eviction = await checkEvictionPolicy(deps.redis);
    if (!eviction.verified) {
      logger.warn(
        { node: eviction.node },
        "could not read Redis maxmemory-policy (CONFIG disabled, or not allowed to this Redis user: the API's user may not, S3); make sure it is noeviction",
      );
    } else if (!eviction.ok) {
      logger.error(
        { policy: eviction.policy, node: eviction.node },
        `REDIS EVICTION IS ON${eviction.node ? ` on Cluster node ${eviction.node}` : ''}: maxmemory-policy is ${String(eviction.policy)}, not noeviction. Redis may drop consumed-code markers, replay caches and revocations under memory pressure (a security bug). Set maxmemory-policy noeviction.`,
      );
    }
  }
  const running = await startServers(deps, roles);
  logger.info(
    {
      issuer: roles.includes('auth') ? config.issuer : undefined,
      api: roles.includes('api') ? config.apiUrl : undefined,
      embedded: deps.database.embedded,
      redis: Boolean(deps.redis),
    },
    'portcullis is running',
  );
  if (hasAuth(deps) && (await deps.accounts.countUsers()) === 0) {
    logger.warn('no users yet; create the first admin with:');
    process.stderr.write(
      `\n  printf '%s' 'a-long-passphrase' | npm run cli -- users create --email you@example.com --password-stdin --email-verified --role admin\n\n`,
    );
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      // A second signal means "now": skip the drain.
      logger.warn({ signal }, 'second signal, exiting without draining');
      process.exit(1);
    }
    stopping = true;
    const delayMs = config.shutdownDelay * 1000;
    const graceMs = config.shutdownTimeout * 1000;
    logger.info({ signal, delayMs, graceMs }, 'shutting down: not ready, draining');
    // Whatever hangs (a pool that will not close) cannot keep the process past its budget.
    setTimeout(
      () => {
        logger.error('shutdown took too long, exiting');
        process.exit(1);
      },
      delayMs + graceMs + 5_000,
    ).unref();
    void running
      .stop(graceMs, delayMs)
      .then(() => deps.close())
      .then(
        () => {
          logger.info('shut down cleanly');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    for (const line of error.problems) process.stderr.write(`config error: ${line}\n`);
  } else if (error instanceof StartupError || error instanceof ProductionConfigError || error instanceof TlsFileError) {
    process.stderr.write(`cannot start: ${error.message}\n`);
  } else {
    process.stderr.write(`cannot start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exit(1);
});
