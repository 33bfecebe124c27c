import { pino, type Logger } from 'pino';
import type { Config } from '../config/types.ts';

export type { Logger };

/** Paths never written to logs (ASVS 16.2.5): credentials, tokens and personal data. */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["dpop"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.newPassword',
  '*.currentPassword',
  '*.client_secret',
  '*.code',
  '*.code_verifier',
  '*.refresh_token',
  '*.access_token',
  '*.id_token',
  '*.id_token_hint',
  '*.masterKey',
  '*.auditKey',
  '*.cookieKeys',
  '*.databaseUrl',
  '*.redisUrl',
  '*.data',
  // Vault records: the clear label and the sealed forms never reach a log line.
  '*.label',
  '*.payload_sealed',
  '*.key_wrapped',
];

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'portcullis' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
