import { isIPv4 } from 'node:net';
import type { Configuration } from 'oidc-provider';
import type { Config } from './types.ts';
import { trustsEveryone } from '../shared/client-address.ts';
import { enabledMailFeatures, mailProblems } from './mail-checks.ts';

/**
 * Production assertions (docs/security.md T43). oidc-provider leaves misconfiguration and its
 * development-only features to us, so with NODE_ENV=production the server refuses to start unless
 * the settings below hold. Each problem is one short phrase; callers join them into one line.
 */
export class ProductionConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`refusing to start in production: ${problems.join('; ')}`);
    this.name = 'ProductionConfigError';
    this.problems = problems;
  }
}

/** http to this machine never crosses a network: 127.0.0.0/8, ::1, localhost. */
function isLoopbackUrl(url: string): boolean {
  // WHATWG URL normalises 2130706433, 0x7f.1 and [0:0::1] to 127.0.0.1 and [::1].
  const host = new URL(url).hostname;
  if (host === 'localhost' || host === '[::1]') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/** The roles a process serves (`--only auth`, `--only api`, or both). */
export type ProcessRole = 'auth' | 'api';

/**
 * The keys a process holds, by the roles it serves (S3): MASTER_KEY seals the identity server's
 * secrets and belongs to the auth server only; VAULT_KEY wraps the records' data keys and
 * belongs to the API. An API-only process given MASTER_KEY would again be able to unseal the
 * signing keys, which is what the split is for.
 */
export function keyProblems(config: Config, roles: readonly ProcessRole[]): string[] {
  const problems: string[] = [];
  const auth = roles.includes('auth');
  const api = roles.includes('api');
  if (auth && !config.masterKey)
    problems.push('MASTER_KEY (or MASTER_KEY_FILE) must be set; the key generated into DATA_DIR is for development only');
  if (!auth && config.masterKey)
    problems.push(
      "MASTER_KEY must not be given to the API process (--only api): it unseals the identity server's signing keys; give the API VAULT_KEY only",
    );
  if (api && !config.vaultKey)
    problems.push('VAULT_KEY (or VAULT_KEY_FILE) must be set for the API; the key generated into DATA_DIR is for development only');
  return problems;
}

/** Settings checked before anything is opened: issuer, database, keys, debug output. */
export function productionSettingProblems(
  config: Config,
  env: NodeJS.ProcessEnv = {},
  roles: readonly ProcessRole[] = ['auth', 'api'],
): string[] {
  if (config.nodeEnv !== 'production') return [];
  const problems: string[] = [];
  if (!config.issuer.startsWith('https://')) problems.push(`ISSUER must be an https URL (got ${config.issuer})`);
  // Embedded PGlite is for development and trials: one process on one machine, no replication,
  // no point-in-time recovery, no second instance (S1). Production runs on a Postgres server.
  if (!config.databaseUrl)
    problems.push('DATABASE_URL (or DATABASE_URL_FILE) must be set; the embedded PGlite database is for development and trials only');
  // Without MASTER_KEY or VAULT_KEY the embedded mode generates a development key into DATA_DIR.
  problems.push(...keyProblems(config, roles));
  // Likewise the audit chain's HMAC key: a generated one lives beside the database it protects.
  if (!config.auditKey) problems.push('AUDIT_KEY (or AUDIT_KEY_FILE) must be set; the key generated into DATA_DIR is for development only');
  // Whoever can rewrite the API's JWKS answer in transit can mint tokens the API accepts (S7).
  if (config.jwksUrl && !config.jwksUrl.startsWith('https://') && !isLoopbackUrl(config.jwksUrl))
    problems.push(`JWKS_URL must be https (or http on loopback): the API trusts the keys it fetches (got ${config.jwksUrl})`);
  // Anyone reaching the port (a container on the proxy's network, the internal listener) could
  // choose its address and dodge every per-IP limit and lockout (R13).
  if (trustsEveryone(config.trustProxy))
    problems.push(
      "TRUST_PROXY=true trusts X-Forwarded-For from any caller; name the proxies' addresses or CIDRs instead (e.g. TRUST_PROXY=10.0.0.0/8)",
    );
  // oidc-provider's debug output logs tokens and request parameters.
  if (env.DEBUG && /oidc-provider|\*/.test(env.DEBUG)) problems.push('DEBUG must not enable oidc-provider debug output');
  // A feature that sends mail needs a way to deliver it (issue 12, src/config/mail-checks.ts).
  if (roles.includes('auth')) problems.push(...mailProblems(config, enabledMailFeatures(config)));
  return problems;
}

/**
 * For a feature that sends mail, where it is built: in production without a mail transport (or
 * with the default sender) it refuses to start, naming the feature. A no-op outside production.
 */
export function requireMailTransport(config: Config, feature: string): void {
  const problems = mailProblems(config, [feature]);
  if (problems.length > 0) throw new ProductionConfigError(problems);
}

const ALLOWED_RESPONSE_TYPES = new Set(['code', 'none']);

/**
 * The invariants of the provider configuration we build: no development interactions, a durable
 * adapter, signing keys and cookie keys present, PKCE for every client, code flow only.
 */
export function providerConfigurationProblems(configuration: Configuration): string[] {
  const problems: string[] = [];
  if (configuration.features?.devInteractions?.enabled !== false) problems.push('features.devInteractions must be disabled');
  // No adapter means oidc-provider's in-memory one: state lost on restart, not shared between instances.
  if (!configuration.adapter) problems.push('an adapter is required (the in-memory adapter is for development only)');
  const keys = (configuration.jwks as { keys?: unknown[] } | undefined)?.keys;
  if (!keys || keys.length === 0) problems.push('signing keys (jwks) must be configured; the generated development keys are not allowed');
  const cookieKeys = configuration.cookies?.keys;
  if (!Array.isArray(cookieKeys) || cookieKeys.length === 0) problems.push('cookie keys must be set (COOKIE_KEYS) or stored');
  const required = configuration.pkce?.required;
  // The policy must not depend on the client: probe it with a public and a confidential one.
  const probe = (method: string): boolean => {
    if (typeof required !== 'function') return false;
    const answer: unknown = (required as (ctx: unknown, client: unknown) => unknown)(
      {},
      { clientAuthMethod: method, tokenEndpointAuthMethod: method },
    );
    return answer === true;
  };
  if (!probe('none') || !probe('client_secret_basic')) problems.push('pkce.required must be true for every client');
  const responseTypes = configuration.responseTypes;
  if (!responseTypes || responseTypes.some((type) => !ALLOWED_RESPONSE_TYPES.has(type))) {
    problems.push(
      `response types must be limited to code and none (got ${responseTypes ? responseTypes.join(', ') : "oidc-provider's defaults"})`,
    );
  }
  return problems;
}

export function assertProductionSettings(
  config: Config,
  env: NodeJS.ProcessEnv = {},
  roles: readonly ProcessRole[] = ['auth', 'api'],
): void {
  const problems = productionSettingProblems(config, env, roles);
  if (problems.length > 0) throw new ProductionConfigError(problems);
}

export function assertProductionProvider(config: Config, configuration: Configuration): void {
  if (config.nodeEnv !== 'production') return;
  const problems = providerConfigurationProblems(configuration);
  if (problems.length > 0) throw new ProductionConfigError(problems);
}
