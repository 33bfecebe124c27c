import type { Config } from './config/types.ts';
import { createAccountService } from './services/accounts.ts';
import { createAuditService } from './services/audit.ts';
import { createKeyService } from './services/keys.ts';
import { createAccountSessions } from './services/account-sessions.ts';
import { createMfa } from './services/mfa.ts';
import { createLockouts, sweepExpiredLockouts } from './services/lockout.ts';
import { createAccountIndexStore } from './store/account-index.ts';
import { createHibpCheck, createPasswordHasher } from './services/passwords.ts';
import { resolveKey, StartupError } from './shared/dev-keys.ts';
import { createLogger, type Logger } from './shared/logger.ts';
import { createMasterBox } from './shared/master-key.ts';
import { KEY_PURPOSE } from './shared/crypto-contexts.ts';
import { keyedDigest } from './shared/derive-key.ts';
import { type AuditEventStore, createAuditEventStore } from './store/audit-events.ts';
import { createClientStore } from './store/clients.ts';
import { createInitialAccessTokenStore } from './store/initial-access-tokens.ts';
import { createDatabase, type Database } from './store/db.ts';
import { migrateLatest, pendingMigrations } from './store/migrate.ts';
import { sweepExpiredOidcPayloads } from './store/oidc-adapter-postgres.ts';
import { createOidcStateKeys } from './store/oidc-adapter-sealed.ts';
import { loadServerSecrets } from './store/server-secrets.ts';
import { createOidcStorage } from './auth/oidc-storage.ts';
import { createRedis, type Redis } from './store/redis.ts';
import { createRoleStore } from './store/roles.ts';
import { createKeyStore } from './store/signing-keys.ts';
import { createUserStore } from './store/users.ts';
import { createApiServices } from './services/api-services.ts';

export { StartupError };

export type DepsOptions = { logger?: Logger; migrate?: boolean };

/**
 * Before the first event of this process: refuse an AUDIT_KEY other than the one the newest
 * events were chained under (a second key would fork the chain into parts no single key
 * verifies), and anchor events written before keyed chaining with a keyed event after them.
 */
export async function prepareAuditChain(store: AuditEventStore, logger: Logger): Promise<void> {
  const newest = await store.newestKeyId();
  if (newest !== undefined && newest !== store.keyId) {
    throw new StartupError(
      `AUDIT_KEY is not the key the audit log was written with (its newest events name key ${newest}, the configured AUDIT_KEY is ${store.keyId}); start with the key the log was written with`,
    );
  }
  const anchor = await store.anchorLegacyChain();
  if (anchor) logger.warn({ event: anchor.id, ...anchor.data }, 'audit log: events written before keyed chaining are now anchored by a keyed event');
}

export async function createDeps(config: Config, options: DepsOptions = {}) {
  const logger = options.logger ?? createLogger(config);
  const database: Database = await createDatabase(config);
  const { knex } = database;
  try {
    if (options.migrate ?? database.embedded) {
      const applied = await migrateLatest(knex);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    } else {
      const pending = await pendingMigrations(knex);
      if (pending.length > 0) throw new StartupError(`the database schema is behind by ${pending.length} migration(s); run: portcullis migrate`);
    }
    const masterKey = await resolveKey({ name: 'MASTER_KEY', value: config.masterKey, fileName: 'master.key' }, { dataDir: config.dataDir, embedded: database.embedded, logger });
    // Seals under MASTER_KEY; also opens under MASTER_KEY_PREVIOUS while a rotation is under way (S2).
    const box = createMasterBox(masterKey, config.masterKeyPrevious ? [Buffer.from(config.masterKeyPrevious, 'base64')] : []);
    const secrets = await loadServerSecrets(knex, box);
    // Sessions, codes and tokens are stored by keyed hash and sealed (src/store/oidc-adapter-sealed.ts),
    // under keys from a stored secret rather than from MASTER_KEY, so rotating MASTER_KEY keeps them.
    const oidcKeys = createOidcStateKeys(secrets.oidcState);
    // The audit chain's HMAC key is its own secret, not derived from MASTER_KEY: the API writes
    // audit events and must not hold MASTER_KEY (S3).
    const auditKey = await resolveKey({ name: 'AUDIT_KEY', value: config.auditKey, fileName: 'audit.key' }, { dataDir: config.dataDir, embedded: database.embedded, logger });
    const auditStore = createAuditEventStore(knex, auditKey);
    await prepareAuditChain(auditStore, logger);
    const redis: Redis | undefined = createRedis(config, logger);

    const stores = {
      users: createUserStore(knex),
      roles: createRoleStore(knex),
      keys: createKeyStore(knex),
      audit: auditStore,
      clients: createClientStore(knex, box),
      initialAccessTokens: createInitialAccessTokenStore(knex),
    };
    const audit = createAuditService({ store: stores.audit, logger });
    const hasher = createPasswordHasher(config.argon2, {
      minLength: config.passwords.minLength,
      breachCheck: config.passwords.breachCheck ? createHibpCheck({ timeoutMs: config.passwords.breachCheckTimeoutMs }) : undefined,
    });
    // Sign-in counters (lockouts, rate limits) are named by a keyed digest of the email or address
    // (S12), under a subkey of AUDIT_KEY: the one secret every process holds (the API never holds
    // MASTER_KEY, S3), and one that is never rotated while its audit log lives.
    const counterKey = keyedDigest(auditKey, KEY_PURPOSE.counterKey);
    // Brute-force lockout sentinel: Redis when configured (shared by all instances), else Postgres.
    const lockouts = createLockouts({ config, redis, knex, logger, counterKey });
    const accounts = createAccountService({ knex, users: stores.users, roles: stores.roles, hasher, audit, lockouts: { account: lockouts.password, ip: lockouts.passwordIp } });
    const keys = createKeyService({ store: stores.keys, box });
    // MFA ceremonies name their flow (a session or interaction id, both bearer values) by a keyed
    // digest only (S12), under a key of its own from the same secret as the oidc state's keys.
    const mfaBindingKey = keyedDigest(secrets.oidcState, KEY_PURPOSE.mfaBinding);
    const mfa = createMfa({
      knex,
      redis,
      box,
      audit,
      logger,
      issuer: config.issuer,
      lockout: lockouts.secondFactor,
      addressLockout: lockouts.passwordIp,
      recoveryCodePepper: secrets.recoveryCodes,
      bindingKey: mfaBindingKey,
    });
    // The index names sessions by their storage key, never by the cookie value.
    const accountIndex = createAccountIndexStore(knex, { sessionKey: oidcKeys.storageKey });
    const accountSessions = createAccountSessions({
      index: accountIndex,
      oidcAdapter: (model) => oidcAdapter(model),
      storedOidcAdapter: (model) => backendAdapter(model),
      users: stores.users,
    });
    // The adapter is defined below; the API's GDPR service only calls it per request.
    const api = createApiServices({
      knex,
      box,
      users: stores.users,
      roles: stores.roles,
      audit,
      auditEvents: stores.audit,
      oauthState: { index: accountIndex, adapter: (model) => oidcAdapter(model), storedAdapter: (model) => backendAdapter(model) },
      shareLimits: config.shares,
    });

    // oidc-provider's storage, model by model, with every wrapper on the way: src/auth/oidc-storage.ts.
    const oidcStorage = createOidcStorage({ config, knex, redis, keys: oidcKeys, clients: stores.clients, initialAccessTokens: stores.initialAccessTokens, audit, accountIndex, logger });
    const oidcAdapter = oidcStorage.state;
    const backendAdapter = oidcStorage.stored;

    let sweeper: NodeJS.Timeout | undefined;
    if (!redis) {
      // Redis expires keys itself; the Postgres table needs a sweep.
      sweeper = setInterval(() => {
        sweepExpiredOidcPayloads(knex).catch((error: unknown) => {
          logger.warn({ err: error }, 'sweeping expired oidc state failed');
        });
        sweepExpiredLockouts(knex).catch((error: unknown) => {
          logger.warn({ err: error }, 'sweeping expired lockout counters failed');
        });
      }, 60_000).unref();
    }

    return {
      config,
      logger,
      database,
      knex,
      redis,
      box,
      auditKey,
      stores,
      audit,
      hasher,
      accounts,
      lockouts,
      counterKey,
      keys,
      api,
      mfa,
      mfaBindingKey,
      accountIndex,
      accountSessions,
      oidcStorage,
      oidcAdapter,
      storedOidcAdapter: backendAdapter,
      async close() {
        if (sweeper) clearInterval(sweeper);
        if (redis) await redis.quit().catch(() => undefined);
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

export type Deps = Awaited<ReturnType<typeof createDeps>>;
