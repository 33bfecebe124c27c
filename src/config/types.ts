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
  shutdownDelay: number;
  shutdownTimeout: number;
  metricsPort: number;
  metricsHost: string;
  redisUrl?: string;
  redisKeyPrefix: string;
  dataDir: string;
  masterKey?: string;
  backupKey?: string;
  cookieKeys?: readonly string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  nodeEnv: 'development' | 'production' | 'test';
  trustProxy: boolean;
  corsOrigins: readonly string[];
  ttl: Readonly<{
    accessToken: number;
    authorizationCode: number;
    idToken: number;
    refreshToken: number;
    session: number;
    interaction: number;
    grant: number;
  }>;
  argon2: Readonly<{ memoryKiB: number; timeCost: number; parallelism: number }>;
  signingKeys: Readonly<{ refreshSeconds: number; activateAfterSeconds: number; rotateAfterDays: number }>;
  clients: Readonly<{ idleDisableDays: number; deviceCodeTtl: number; userCodeAttempts: number; userCodeLockoutSeconds: number }>;
}>;
