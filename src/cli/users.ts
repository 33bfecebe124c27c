import { Option, type Command } from 'commander';
import { CliError, type Print, type WithDeps } from './context.ts';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new CliError('--password-stdin expects the password on standard input (pipe it in)');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // Only the line ending a shell adds is removed; the password itself is kept exactly.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** `portcullis users create|verify-email|reset-mfa` and `portcullis roles require-mfa`. */
export function registerUserCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  const users = program.command('users').description('manage user accounts');
  users
    .command('create')
    .description('create a user; prints {"id","email","email_verified","roles"}')
    .requiredOption('--email <email>', 'email address (unique, case-insensitive)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--email-verified', 'the address is known to be the user’s (you vouch for it): email_verified is true at once')
    .option('--name <name>', 'display name')
    .addOption(
      new Option('--role <role>', 'role to grant (repeatable; default "user")').argParser((v: string, prev: string[] | undefined) => [
        ...(prev ?? []),
        v,
      ]),
    )
    .action(async (opts: { email: string; passwordStdin?: boolean; emailVerified?: boolean; name?: string; role?: string[] }) => {
      const password = opts.passwordStdin ? await readStdin() : undefined;
      const roles = opts.role ?? ['user'];
      const emailVerified = opts.emailVerified === true;
      const user = await withDeps((deps) =>
        deps.accounts.createUser({ email: opts.email, password, name: opts.name, roles, emailVerified }),
      );
      print({ id: user.id, email: user.email, email_verified: user.email_verified, roles });
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

  users
    .command('verify-email')
    .description('mark an address as verified (you vouch for it), or every account’s with --all; prints {"verified": n}')
    .option('--email <email>', 'email address of the account')
    .option('--all', 'every account (for example after an upgrade, before turning REQUIRE_VERIFIED_EMAIL on)')
    .action(async (opts: { email?: string; all?: boolean }) => {
      if (Boolean(opts.email) === Boolean(opts.all)) throw new CliError('give either --email or --all');
      const result = await withDeps(async (deps) => {
        const outcome = await deps.accounts.vouchForEmail(opts.email ? { email: opts.email } : { all: true });
        if (opts.email && !outcome.id) throw new CliError(`no user with email ${opts.email}`);
        return outcome;
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
}
