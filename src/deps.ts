// Over 250 lines: the composition root of every process, and the one place stores are built (issue 18).
import type { Knex } from 'knex';
import type { Config } from './config/types.ts';
import { createAccountService } from './services/accounts.ts';
import { createAuditService } from './services/audit.ts';
import { createKeyService } from './services/keys.ts';
import { createAccountSessions } from './services/account-sessions.ts';
import { createMfa } from './services/mfa-setup.ts';
import { createLockouts } from './services/lockout.ts';
import { createLockoutCounters, sweepExpiredLockouts } from './store/lockout-counters.ts';
import { createAccountIndexReader, createAccountIndexStore } from './store/account-index.ts';
import { createHibpCheck, createPasswordHasher } from './services/passwords.ts';
import { resolveKey, StartupError } from './shared/dev-keys.ts';
import type { KeyRing } from './shared/key-ring.ts';
import { createLogger, type Logger } from './shared/logger.ts';
import { createMasterBox } from './shared/master-key.ts';
import { KEY_PURPOSE } from './shared/crypto-contexts.ts';
import { deriveKey, keyedDigest } from './shared/derive-key.ts';
import { createVaultBox } from './shared/vault-key.ts';
import { type AuditEventStore, createAuditEventStore } from './store/audit-events.ts';
import { createClientStore } from './store/clients.ts';
import { createInitialAccessTokenStore } from './store/initial-access-tokens.ts';
import { createDatabase, type Database } from './store/db.ts';
import { migrateLatest, pendingMigrations } from './store/migrate.ts';
import { sweepExpiredOidcPayloads } from './store/oidc-adapter-postgres.ts';
import { createOidcStateKeys } from './store/oidc-adapter-sealed.ts';
import type { AdapterTimings } from './store/oidc-adapter-timed.ts';
import { createOidcRevocations } from './store/oidc-revocations.ts';
import { loadServerSecrets } from './store/server-secrets.ts';
import { createOidcStorage } from './auth/oidc-storage.ts';
import { createRedis, type Redis } from './store/redis.ts';
import { createRoleStore } from './store/roles.ts';
import { createKeyStore } from './store/signing-keys.ts';
import { createUserStore } from './store/users.ts';
import { createApiServices, type ApiStores } from './services/api-services.ts';
import { createMail } from './services/mail-setup.ts';
import { createAuditSearch } from './store/audit-search.ts';
import { createDataKeyStore } from './store/data-keys.ts';
import { API_REPLAY_NAMESPACE, createReplayStore } from './store/dpop-replay.ts';
import { createErasureJournal } from './store/erasure-journal.ts';
import { createMfaStore } from './store/mfa.ts';
import { createOutboxStore } from './store/outbox.ts';
import { createRecordStore } from './store/records.ts';
import { createShareOfferStore } from './store/share-offers.ts';
import { createUserDirectory } from './store/user-directory.ts';
import { createWebAuthnCredentialStore } from './store/webauthn-credentials.ts';
import { createEmailCodeStore } from './store/email-codes.ts';
import { createEmailCodes } from './services/email-codes.ts';
import { createSignUpService } from './services/sign-up.ts';
import { createEmailVerification } from './services/email-verification.ts';

export { StartupError };

export type DepsOptions = {
  logger?: Logger;
  migrate?: boolean;
  /**
   * Whether this process needs VAULT_KEY (it serves the API: required, generated in embedded
   * mode) or may have it (the auth server and the CLI: loaded when set, for `keys rewrap-vault`
   * and restores). Default: required, as for a process serving both.
   */
  vault?: 'required' | 'optional';
};

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
  if (anchor)
    logger.warn({ event: anchor.id, ...anchor.data }, 'audit log: events written before keyed chaining are now anchored by a keyed event');
}

/** VAULT_KEY (and VAULT_KEY_PREVIOUS during a rotation), or undefined where it is optional and unset. */
async function resolveVault(
  config: Config,
  database: Database,
  logger: Logger,
  need: 'required' | 'optional',
): Promise<KeyRing | undefined> {
  // Where it is optional, embedded mode still uses the generated file (one DATA_DIR, one vault).
  if (need === 'optional' && !config.vaultKey && !database.embedded) return undefined;
  const current = await resolveKey(
    { name: 'VAULT_KEY', value: config.vaultKey, fileName: 'vault.key' },
    { dataDir: config.dataDir, embedded: database.embedded, logger },
  );
  return createVaultBox(current, config.vaultKeyPrevious ? [Buffer.from(config.vaultKeyPrevious, 'base64')] : []);
}

/**
 * The resource API's stores over one connection (the API's own role in a split deployment):
 * built here, the only place stores are built.
 */
export function apiStores(knex: Knex): ApiStores {
  return {
    records: createRecordStore(knex),
    shareOffers: createShareOfferStore(knex),
    dataKeys: createDataKeyStore(knex),
    directory: createUserDirectory(knex),
    auditSearch: createAuditSearch(knex),
    erasureJournal: createErasureJournal(knex),
  };
}

/**
 * What every process needs, and all an API-only process gets (S3): the database, Redis, the
 * audit chain (AUDIT_KEY), users and roles, and the API's services with VAULT_KEY. No MASTER_KEY
 * is read here, and nothing that needs it is built.
 */
async function openShared(config: Config, options: DepsOptions) {
  const logger = options.logger ?? createLogger(config);
  const database: Database = await createDatabase(config);
  const { knex } = database;
  try {
    if (options.migrate ?? database.embedded) {
      const applied = await migrateLatest(knex);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    } else {
      const pending = await pendingMigrations(knex);
      if (pending.length > 0)
        throw new StartupError(`the database schema is behind by ${pending.length} migration(s); run: portcullis migrate`);
    }
    const vaultBox = await resolveVault(config, database, logger, options.vault ?? 'required');
    // The audit chain's HMAC key is its own secret, not derived from MASTER_KEY: the API writes
    // audit events and must not hold MASTER_KEY (S3).
    const auditKey = await resolveKey(
      { name: 'AUDIT_KEY', value: config.auditKey, fileName: 'audit.key' },
      { dataDir: config.dataDir, embedded: database.embedded, logger },
    );
    const auditStore = createAuditEventStore(knex, auditKey);
    await prepareAuditChain(auditStore, logger);
    const redis: Redis | undefined = createRedis(config, logger);
    const users = createUserStore(knex);
    const roles = createRoleStore(knex);
    const audit = createAuditService({ store: auditStore, logger });
    const api = createApiServices({
      knex,
      stores: apiStores(knex),
      vault: vaultBox,
      users,
      roles,
      audit,
      auditEvents: auditStore,
      // The account index as the API may read it: consents and sessions for the export; erasure
      // hands their ending over to the auth server (oidc_state_revocations).
      accountIndex: createAccountIndexReader(knex),
      revocations: createOidcRevocations(knex),
      shareLimits: config.shares,
    });
    // The API's DPoP proof ids, under their own Redis keys (the API's Redis user touches only those, S3).
    const dpopReplay = createReplayStore({ redis, knex, namespace: API_REPLAY_NAMESPACE });
    return { config, logger, database, knex, redis, auditKey, vaultBox, users, roles, auditStore, audit, api, dpopReplay };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/**
 * The database and its audit log alone (`portcullis backup create`): AUDIT_KEY, never MASTER_KEY
 * or Redis, and no migration (a backup is taken of the schema as it is).
 */
export async function createAuditLogDeps(config: Config, options: { logger?: Logger } = {}) {
  const logger = options.logger ?? createLogger(config);
  const database = await createDatabase(config);
  try {
    const auditKey = await resolveKey(
      { name: 'AUDIT_KEY', value: config.auditKey, fileName: 'audit.key' },
      { dataDir: config.dataDir, embedded: database.embedded, logger },
    );
    const auditStore = createAuditEventStore(database.knex, auditKey);
    await prepareAuditChain(auditStore, logger);
    return { config, logger, database, knex: database.knex, auditStore, close: () => database.close() };
  } catch (error) {
    await database.close();
    throw error;
  }
}

export type AuditLogDeps = Awaited<ReturnType<typeof createAuditLogDeps>>;

/** The resource API alone (`--only api`): no MASTER_KEY, no identity-server state (S3). */
export async function createApiDeps(config: Config, options: Omit<DepsOptions, 'vault'> = {}) {
  const shared = await openShared(config, { ...options, vault: 'required' });
  const { redis, database } = shared;
  return {
    ...shared,
    stores: { users: shared.users, roles: shared.roles, audit: shared.auditStore },
    async close() {
      if (redis) await redis.quit().catch(() => undefined);
      await database.close();
    },
  };
}

export type ApiDeps = Awaited<ReturnType<typeof createApiDeps>>;

/** The identity server's process (alone, or with the API in the same process), and the CLI. */
export async function createDeps(config: Config, options: DepsOptions = {}) {
  const shared = await openShared(config, options);
  const { logger, database, knex, redis, audit, auditStore, auditKey } = shared;
  try {
    const masterKey = await resolveKey(
      { name: 'MASTER_KEY', value: config.masterKey, fileName: 'master.key' },
      { dataDir: config.dataDir, embedded: database.embedded, logger },
    );
    // Seals under MASTER_KEY; also opens under MASTER_KEY_PREVIOUS while a rotation is under way (S2).
    const box = createMasterBox(masterKey, config.masterKeyPrevious ? [Buffer.from(config.masterKeyPrevious, 'base64')] : []);
    const secrets = await loadServerSecrets(knex, box);
    // Sessions, codes and tokens are stored by keyed hash and sealed (src/store/oidc-adapter-sealed.ts),
    // under keys from a stored secret rather than from MASTER_KEY, so rotating MASTER_KEY keeps them.
    const oidcKeys = createOidcStateKeys(secrets.oidcState);

    const stores = {
      users: shared.users,
      roles: shared.roles,
      keys: createKeyStore(knex),
      audit: auditStore,
      clients: createClientStore(knex, box),
      initialAccessTokens: createInitialAccessTokenStore(knex),
    };
    const hasher = createPasswordHasher(config.argon2, {
      minLength: config.passwords.minLength,
      breachCheck: config.passwords.breachCheck ? createHibpCheck({ timeoutMs: config.passwords.breachCheckTimeoutMs }) : undefined,
    });
    // Sign-in counters (lockouts, rate limits) are named by a keyed digest of the email or address
    // (S12), under a subkey of AUDIT_KEY: the one secret every process holds (the API never holds
    // MASTER_KEY, S3), and one that is never rotated while its audit log lives.
    const counterKey = keyedDigest(auditKey, KEY_PURPOSE.counterKey);
    // Brute-force lockout sentinel: Redis when configured (shared by all instances), else Postgres.
    const lockouts = createLockouts({ config, counters: createLockoutCounters({ redis, knex }), logger, counterKey });
    const accounts = createAccountService({
      knex,
      users: stores.users,
      roles: stores.roles,
      hasher,
      audit,
      lockouts: { account: lockouts.password, ip: lockouts.passwordIp },
    });
    const keys = createKeyService({ store: stores.keys, box });
    // Atomic "first use" claims (Redis SET NX, or Postgres) of the auth server: codes, passwordless
    // challenges, registration tokens, refresh reuse and constant-challenge alerts.
    const once = createReplayStore({ redis, knex });
    // MFA ceremonies name their flow (a session or interaction id, both bearer values) by a keyed
    // digest only (S12), under a key of its own from the same secret as the oidc state's keys.
    const mfaBindingKey = keyedDigest(secrets.oidcState, KEY_PURPOSE.mfaBinding);
    const mfa = createMfa({
      store: createMfaStore(knex, { bindingKey: mfaBindingKey }),
      credentials: createWebAuthnCredentialStore(knex),
      once,
      box,
      audit,
      issuer: config.issuer,
      lockout: lockouts.secondFactor,
      addressLockout: lockouts.passwordIp,
      recoveryCodePepper: secrets.recoveryCodes,
    });
    // The index names sessions by their storage key, never by the cookie value.
    const accountIndex = createAccountIndexStore(knex, { sessionKey: oidcKeys.storageKey });
    const accountSessions = createAccountSessions({
      index: accountIndex,
      oidcAdapter: (model) => oidcAdapter(model),
      storedOidcAdapter: (model) => backendAdapter(model),
      users: stores.users,
      revocations: createOidcRevocations(knex),
    });

    // oidc-provider's storage, model by model, with every wrapper on the way: src/auth/oidc-storage.ts.
    const oidcStorage = createOidcStorage({
      config,
      knex,
      redis,
      keys: oidcKeys,
      clients: stores.clients,
      initialAccessTokens: stores.initialAccessTokens,
      audit,
      accountIndex,
      once,
      logger,
    });
    const oidcAdapter = oidcStorage.state;
    const backendAdapter = oidcStorage.stored;

    // Outgoing mail through the outbox (issue 12); the auth server's worker sends it (src/server.ts).
    const mail = createMail({ config, outbox: createOutboxStore(knex), box, audit, logger });

    // Mailed codes (issue 12): self-registration, address verification at sign-in, address changes.
    // Codes are kept as an HMAC and flows as a keyed digest, under keys of the oidc-state secret.
    const emailCodes = createEmailCodes({
      store: createEmailCodeStore(knex, { bindingKey: keyedDigest(secrets.oidcState, KEY_PURPOSE.emailCodeBinding) }),
      codeKey: deriveKey(secrets.oidcState, KEY_PURPOSE.emailCode),
      settings: config.emailCodes,
      lockouts: { failures: lockouts.emailCode, failuresIp: lockouts.passwordIp, mails: lockouts.emailMail, mailsIp: lockouts.emailMailIp },
    });
    const emailServices = { knex, users: stores.users, mail, codes: emailCodes, audit, domains: config.signUp.domains };
    const signUp = createSignUpService({ ...emailServices, roles: stores.roles, hasher });
    const emailVerification = createEmailVerification(emailServices);
    // An unfinished sign-up's row holds an address and a password hash: gone within minutes of expiring.
    const codeSweeper = setInterval(() => {
      signUp.sweep().catch((error: unknown) => {
        logger.warn({ err: error }, 'sweeping expired email codes failed');
      });
    }, 300_000).unref();

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
      ...shared,
      box,
      stores,
      hasher,
      accounts,
      lockouts,
      counterKey,
      keys,
      mfa,
      mfaBindingKey,
      once,
      accountIndex,
      accountSessions,
      oidcStorage,
      oidcAdapter,
      storedOidcAdapter: backendAdapter,
      mail,
      signUp,
      emailVerification,
      async close() {
        if (sweeper) clearInterval(sweeper);
        clearInterval(codeSweeper);
        mail.close();
        if (redis) await redis.quit().catch(() => undefined);
        await database.close();
      },
    };
  } catch (error) {
    if (redis) redis.disconnect();
    await database.close();
    throw error;
  }
}

export type Deps = Awaited<ReturnType<typeof createDeps>>;

/** True for the identity server's dependencies (MASTER_KEY and what it opens). */
export const hasAuth = (deps: ApiDeps | Deps): deps is Deps => 'accountSessions' in deps;

/** Metrics on: the auth server's adapters are timed (an API-only process has none). */
export const timeAdapters = (deps: ApiDeps | Deps, timings: AdapterTimings): void => {
  if (hasAuth(deps)) deps.oidcStorage.timeWith(timings);
};
