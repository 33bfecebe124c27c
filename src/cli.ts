#!/usr/bin/env node
import { Command, Option } from 'commander';
import packageJson from '../package.json' with { type: 'json' };
import { ConfigError, loadConfig } from './config/load.ts';
import { createDeps, StartupError, type Deps } from './deps.ts';
import { createLogger } from './shared/logger.ts';
import type { Config } from './config/types.ts';
import { createDatabase, type Database } from './store/db.ts';
import { migrateLatest } from './store/migrate.ts';
import { PasswordPolicyViolation } from './services/accounts.ts';
import { describePasswordProblem } from './services/passwords.ts';
import { DuplicateEmailError } from './store/users.ts';
import { UnknownRoleError } from './store/roles.ts';
import { ClientMetadataError, createClient } from './cli/clients.ts';
import { IAT_GRANTABLE_SCOPES } from './shared/scopes.ts';
import { MasterKeyInputError, registerMasterKeyCommands, registerVaultKeyCommands } from './cli/keys.ts';
import { DbRoleError, registerDbCommands } from './cli/db.ts';
import { RedisAclError, registerRedisCommands } from './cli/redis.ts';
import { KeyRotationError, registerSigningKeyCommands } from './cli/signing-keys.ts';
import { registerAuditCommands } from './cli/audit.ts';
import { BackupFileError, registerBackupCommands } from './cli/backup.ts';
import { MailCommandError, registerMailCommands } from './cli/mail.ts';

/** User-facing failure: one line on stderr, exit code 1. */
class CliError extends Error {}

const print = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new CliError('--password-stdin expects the password on standard input (pipe it in)');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // Only the line ending a shell adds is removed; the password itself is kept exactly.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

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

/** Runs a command with the database only (no MASTER_KEY, no Redis): migrations and backups. */
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

const users = program.command('users').description('manage user accounts');
users
  .command('create')
  .description('create a user; prints {"id","email","roles"}')
  .requiredOption('--email <email>', 'email address (unique, case-insensitive)')
  .option('--password-stdin', 'read the password from standard input')
  .option('--name <name>', 'display name')
  .addOption(
    new Option('--role <role>', 'role to grant (repeatable; default "user")').argParser((v: string, prev: string[] | undefined) => [
      ...(prev ?? []),
      v,
    ]),
  )
  .action(async (opts: { email: string; passwordStdin?: boolean; name?: string; role?: string[] }) => {
    const password = opts.passwordStdin ? await readStdin() : undefined;
    const roles = opts.role ?? ['user'];
    const user = await withDeps((deps) => deps.accounts.createUser({ email: opts.email, password, name: opts.name, roles }));
    print({ id: user.id, email: user.email, roles });
  });

users
  .command('reset-mfa')
  .description("remove a user's second factors, recovery codes, sessions and grants (lost device); prints what was removed")
  .requiredOption('--email <email>', 'email address of the account')
  .action(async (opts: { email: string }) => {
    const result = await withDeps(async (deps) => {
      const user = await deps.stores.users.findByEmail(opts.email);
      if (!user) throw new CliError(`no user with email ${opts.email}`);
      const removed = await deps.mfa.resetAll(user.id, { userAgent: 'portcullis-cli' });
      const ended = await deps.accountSessions.signOutEverywhere(user.id);
      return { id: user.id, email: user.email, removed, ...ended };
    });
    print(result);
  });

const roles = program.command('roles').description('manage roles');
roles
  .command('require-mfa <role> <on|off>')
  .description('require (or stop requiring) a second factor for everyone with the role')
  .action(async (role: string, state: string) => {
    if (state !== 'on' && state !== 'off') throw new CliError('the state is "on" or "off"');
    const updated = await withDeps((deps) => deps.mfa.setRoleRequiresMfa(role, state === 'on'));
    if (!updated) throw new CliError(`unknown role: ${role}`);
    print({ role, requires_mfa: state === 'on' });
  });

const clients = program.command('clients').description('manage OAuth clients');
clients
  .command('create')
  .description('register a client from RFC 7591 metadata; prints the RFC 7591 response')
  .requiredOption('--json <metadata>', 'client metadata as a JSON object')
  .action(async (opts: { json: string }) => {
    let metadata: unknown;
    try {
      metadata = JSON.parse(opts.json);
    } catch {
      throw new CliError('--json is not valid JSON');
    }
    print(await withDeps((deps) => createClient(deps, metadata)));
  });
clients
  .command('list')
  .description('list registered clients with created_by (cli or iat:<id>) and last_used_at; secrets are never shown')
  .action(async () => {
    print(await withDeps((deps) => deps.stores.clients.list()));
  });
for (const [name, disabled] of [
  ['disable', true],
  ['enable', false],
] as const) {
  clients
    .command(`${name} <client_id>`)
    .description(disabled ? 'disable a client (its tokens can no longer be obtained)' : 're-enable a client (restarts its idle clock)')
    .action(async (clientId: string) => {
      const changed = await withDeps(async (deps) => {
        const found = await deps.stores.clients.setDisabled(clientId, disabled);
        if (found) await deps.audit.record({ type: disabled ? 'client.disabled' : 'client.enabled', clientId, data: { via: 'cli' } });
        return found;
      });
      if (!changed) throw new CliError(`no client ${clientId}`);
      print({ client_id: clientId, disabled });
    });
}

const positiveInt =
  (flag: string) =>
  (value: string): number => {
    if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new CliError(`${flag} must be a positive integer`);
    return Number(value);
  };
const iat = program.command('iat').description('initial access tokens for the registration endpoint (RFC 7591)');
iat
  .command('create')
  .description('create a token; prints {"initial_access_token", "id", …} (the token is shown only now)')
  .addOption(new Option('--ttl <seconds>', 'lifetime in seconds (default: no expiry)').argParser(positiveInt('--ttl')))
  .addOption(new Option('--max-uses <n>', 'number of registrations it allows (default: unlimited)').argParser(positiveInt('--max-uses')))
  .option('--note <text>', 'what the token is for (shown by iat list and in clients list provenance)')
  .addOption(
    new Option(
      '--allow-scope <scope>',
      `let the clients it registers hold this operator scope (${IAT_GRANTABLE_SCOPES.join(', ')}; repeatable; admin only via clients create)`,
    ).argParser((value: string, previous: string[] | undefined) => {
      if (!IAT_GRANTABLE_SCOPES.includes(value)) {
        throw new CliError(
          `--allow-scope must be one of ${IAT_GRANTABLE_SCOPES.join(', ')}${value === 'admin' ? ' (admin is granted only by `clients create`)' : ''}`,
        );
      }
      return [...(previous ?? []), value];
    }),
  )
  .action(async (opts: { ttl?: number; maxUses?: number; note?: string; allowScope?: string[] }) => {
    if (opts.note !== undefined && opts.note.length > 500) throw new CliError('--note must be at most 500 characters');
    const { token, record } = await withDeps(async (deps) => {
      const created = await deps.stores.initialAccessTokens.create({
        ...(opts.ttl ? { ttlSeconds: opts.ttl } : {}),
        ...(opts.maxUses ? { maxUses: opts.maxUses } : {}),
        ...(opts.note ? { note: opts.note } : {}),
        ...(opts.allowScope ? { allowedScopes: opts.allowScope } : {}),
      });
      const { id, note, max_uses: maxUses, expires_at: expiresAt, allowed_scope: allowedScope } = created.record;
      await deps.audit.record({
        type: 'iat.created',
        data: { id, note, max_uses: maxUses, expires_at: expiresAt, allowed_scope: allowedScope, via: 'cli' },
      });
      return created;
    });
    print({ initial_access_token: token, ...record });
  });
iat
  .command('list')
  .description('list tokens (ids, notes, uses; never the tokens themselves)')
  .action(async () => {
    print(await withDeps((deps) => deps.stores.initialAccessTokens.list()));
  });
iat
  .command('revoke <id>')
  .description('revoke a token by id; clients it registered stay')
  .action(async (id: string) => {
    const revoked = await withDeps(async (deps) => {
      const done = await deps.stores.initialAccessTokens.revoke(id);
      if (done) await deps.audit.record({ type: 'iat.revoked', data: { id, via: 'cli' } });
      return done;
    });
    if (!revoked) throw new CliError(`no live initial access token ${id}`);
    print({ id, revoked: true });
  });

const keys = program.command('keys').description('signing keys (list, rotate, retire) and master key operations');
registerSigningKeyCommands(keys, { withDeps, print });
registerAuditCommands(program, { withDeps, print });
registerBackupCommands(program, { withDeps, withDatabase, print });
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
