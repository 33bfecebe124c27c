#!/usr/bin/env node
import { Command } from 'commander';
import packageJson from '../package.json' with { type: 'json' };
import { ConfigError, loadConfig } from './config/load.ts';
import { createAuditLogDeps, createDeps, StartupError, type AuditLogDeps, type Deps } from './deps.ts';
import { createLogger } from './shared/logger.ts';
import type { Config } from './config/types.ts';
import { createDatabase, type Database } from './store/db.ts';
import { migrateLatest } from './store/migrate.ts';
import { PasswordPolicyViolation } from './services/accounts.ts';
import { describePasswordProblem } from './services/passwords.ts';
import { DuplicateEmailError } from './store/users.ts';
import { UnknownRoleError } from './store/roles.ts';
import { ClientMetadataError, registerClientCommands } from './cli/clients.ts';
import { CliError, type Print } from './cli/context.ts';
import { registerInitialAccessTokenCommands } from './cli/initial-access-tokens.ts';
import { registerUserCommands } from './cli/users.ts';
import { MasterKeyInputError, registerMasterKeyCommands, registerVaultKeyCommands } from './cli/keys.ts';
import { DbRoleError, registerDbCommands } from './cli/db.ts';
import { RedisAclError, registerRedisCommands } from './cli/redis.ts';
import { KeyRotationError, registerSigningKeyCommands } from './cli/signing-keys.ts';
import { registerAuditCommands } from './cli/audit.ts';
import { BackupFileError, registerBackupCommands } from './cli/backup.ts';
import { MailCommandError, registerMailCommands } from './cli/mail.ts';

const print: Print = (value) => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/**
 * Runs a command with the same configuration and storage as the auth server: MASTER_KEY, and
 * VAULT_KEY only when set (the CLI runs where the auth server runs, which does not hold it).
 */
async function withDeps<T>(fn: (deps: Deps) => Promise<T>, options: { migrate?: boolean } = {}): Promise<T> {
  const config = loadConfig();
  const logger = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const deps = await createDeps(config, { logger, vault: 'optional', ...options });
  try {
    return await fn(deps);
  } finally {
    await deps.close();
  }
}

/** Runs a command with the database and its audit log only (AUDIT_KEY; no MASTER_KEY, no Redis): backups. */
async function withAuditLog<T>(fn: (deps: AuditLogDeps) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const deps = await createAuditLogDeps(config, { logger: createLogger({ logLevel: 'warn' }) });
  try {
    return await fn(deps);
  } finally {
    await deps.close();
  }
}

/** Runs a command with the database only (no MASTER_KEY, no Redis): migrations, roles, vault rewraps. */
async function withDatabase<T>(fn: (database: Database, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const database = await createDatabase(config);
  try {
    return await fn(database, config);
  } finally {
    await database.close();
  }
}

const program = new Command('portcullis')
  .description('Portcullis administration')
  .version(packageJson.version, '-V, --version', 'print the Portcullis version')
  .showHelpAfterError();

program
  .command('migrate')
  .description('apply pending database migrations')
  .action(async () => {
    print({ applied: await withDatabase(({ knex }) => migrateLatest(knex)) });
  });

registerUserCommands(program, { withDeps, print });
registerClientCommands(program, { withDeps, print });
registerInitialAccessTokenCommands(program, { withDeps, print });

const keys = program.command('keys').description('signing keys (list, rotate, retire) and master key operations');
registerSigningKeyCommands(keys, { withDeps, print });
registerAuditCommands(program, { withDeps, print });
registerBackupCommands(program, { withDeps, withAuditLog, print });
registerMasterKeyCommands(keys, { withDeps, print });

registerVaultKeyCommands(keys, { withDatabase, print });
registerDbCommands(program, { withDatabase, print });
registerRedisCommands(program, { print });
registerMailCommands(program, { withDeps, print });

program.parseAsync().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    for (const line of error.problems) process.stderr.write(`config error: ${line}\n`);
  } else if (error instanceof ClientMetadataError) {
    process.stderr.write(`${JSON.stringify({ error: error.error, error_description: error.message })}\n`);
  } else if (error instanceof PasswordPolicyViolation) {
    process.stderr.write(`error: ${error.description ?? describePasswordProblem(error.reason)}\n`);
  } else if (
    error instanceof CliError ||
    error instanceof MasterKeyInputError ||
    error instanceof KeyRotationError ||
    error instanceof BackupFileError ||
    error instanceof DbRoleError ||
    error instanceof RedisAclError ||
    error instanceof MailCommandError ||
    error instanceof StartupError ||
    error instanceof DuplicateEmailError ||
    error instanceof UnknownRoleError ||
    (error instanceof Error && error.message === 'email is not a valid address')
  ) {
    process.stderr.write(`error: ${error.message}\n`);
  } else {
    process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
});
