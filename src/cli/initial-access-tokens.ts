import { Option, type Command } from 'commander';
import { IAT_GRANTABLE_SCOPES } from '../shared/scopes.ts';
import { CliError, type Print, type WithDeps } from './context.ts';

const positiveInt =
  (flag: string) =>
  (value: string): number => {
    if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new CliError(`${flag} must be a positive integer`);
    return Number(value);
  };

/** `portcullis iat create|list|revoke`: initial access tokens for dynamic registration (RFC 7591). */
export function registerInitialAccessTokenCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
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
}
