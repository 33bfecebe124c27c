/** The validated, frozen configuration. Mirrors config/schema.json (the source of truth). */
export type Config = Readonly<{
  issuer: string;
  authPort: number;
  apiUrl: string;
  apiPort: number;
  host: string;
  jwksUrl?: string;
  databaseUrl?: string;
  dbPoolMax: number;
  dbAcquireTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbLockTimeoutMs: number;
  shutdownDelay: number;
  shutdownTimeout: number;
  metricsPort: number;
  metricsHost: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsClientCaFile?: string;
  authInternalPort: number;
  apiClientCertFile?: string;
  apiClientKeyFile?: string;
  apiCaFile?: string;
  redisUrl?: string;
  redisKeyPrefix: string;
  redisSentinels: readonly string[];
  redisSentinelName: string;
  redisClusterNodes: readonly string[];
  dataDir: string;
  masterKey?: string;
  masterKeyPrevious?: string;
  vaultKey?: string;
  vaultKeyPrevious?: string;
  backupKey?: string;
  auditKey?: string;
  cookieKeys?: readonly string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  nodeEnv: 'development' | 'production' | 'test';
  /** TRUST_PROXY as written: ["false"], ["true"], or the trusted proxies (src/shared/client-address.ts). */
  trustProxy: readonly string[];
  corsOrigins: readonly string[];
  ttl: Readonly<{
    accessToken: number;
    authorizationCode: number;
    idToken: number;
    refreshToken: number;
    sessionIdle: number;
    sessionMax: number;
    interaction: number;
    grant: number;
    recentAuth: number;
  }>;
  /** Refresh token rotation grace window (off when seconds is 0); see config/schema.json. */
  refreshReuseGrace: Readonly<{ seconds: number; count: number }>;
  argon2: Readonly<{ memoryKiB: number; timeCost: number; parallelism: number }>;
  signingKeys: Readonly<{ refreshSeconds: number; activateAfterSeconds: number; rotateAfterDays: number }>;
  passwords: Readonly<{ minLength: number; breachCheck: boolean; breachCheckTimeoutMs: number }>;
  rateLimits: Readonly<{
    windowSeconds: number;
    tokenPerIp: number;
    tokenPerClient: number;
    /** "client_id=limit" pairs. */
    tokenPerClientOverrides: readonly string[];
    registrationPerIp: number;
    loginPerIp: number;
    browserPerIp: number;
    metadataPerIp: number;
    /** Resource API limits, counted per instance in memory. */
    apiPerIp: number;
    apiPerClient: number;
    /** "client_id=limit" pairs. */
    apiPerClientOverrides: readonly string[];
  }>;
  clients: Readonly<{ idleDisableDays: number; deviceCodeTtl: number; userCodeAttempts: number; userCodeLockoutSeconds: number }>;
  /** Record share offers (R13): how many may wait, and how long a decline holds off the sharer. */
  shares: Readonly<{ pendingPerSharer: number; pendingPerRecipient: number; declineCooldownDays: number }>;
  lockout: Readonly<{
    passwordMaxFailures: number;
    passwordIpMaxFailures: number;
    baseSeconds: number;
    maxSeconds: number;
    windowSeconds: number;
    secondFactorMaxFailures: number;
    secondFactorSeconds: number;
  }>;
  /** Outgoing mail (docs/email.md): the SMTP server, the sender, and the outbox's retries and retention. */
  mail: Readonly<{ url?: string; from: string; maxAttempts: number; retryBaseSeconds: number; retentionDays: number }>;
  /** Self-registration (docs/email.md): off by default; optionally for some email domains only. */
  signUp: Readonly<{
    enabled: boolean;
    /** Allowed email domains, as written (compared lower-cased); empty: any. */
    domains: readonly string[];
    /** Unset: follows `enabled` (verifiedEmailRequired in src/config/sign-up.ts). */
    requireVerifiedEmail?: boolean;
  }>;
  /** Mailed verification codes (sign-up, address verification, address change) and their limits. */
  emailCodes: Readonly<{ ttlSeconds: number; attempts: number; maxFailures: number; mailsPerAddress: number; mailsPerIp: number }>;
}>;
