import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DbRoleError, DEFAULT_ROLE_NAMES, setUpDbRoles } from '../services/db-roles.ts';
import type { Print, WithDatabase } from './context.ts';

export { DbRoleError };

async function passwordFrom(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file on the command line
  const password = (await readFile(file, 'utf8')).trim();
  if (password.length < 16) throw new DbRoleError(`the password in ${file} is shorter than 16 characters`);
  return password;
}

/**
 * `portcullis db roles`: the database roles of the auth server and the API, with the rights
 * each needs and no more (src/store/db-roles.ts through src/services/db-roles.ts, S3). Runs as the role that owns the tables (the
 * one `portcullis migrate` uses); run it after every migrate.
 */
export function registerDbCommands(program: Command, { withDatabase, print }: { withDatabase: WithDatabase; print: Print }): void {
  const db = program.command('db').description('database roles of a split deployment');
  db.command('roles')
    .description(
      'create or update the roles the auth server and the API connect as, with least-privilege grants (run as the owner of the tables, after every migrate)',
    )
    .option('--auth-role <name>', 'role of the auth server', DEFAULT_ROLE_NAMES.auth)
    .option('--api-role <name>', 'role of the resource API', DEFAULT_ROLE_NAMES.api)
    .option('--auth-password-file <path>', "file with the auth role's password (set it; otherwise left as it is)")
    .option('--api-password-file <path>', "file with the API role's password (set it; otherwise left as it is)")
    .action(async (opts: { authRole: string; apiRole: string; authPasswordFile?: string; apiPasswordFile?: string }) => {
      const [authPassword, apiPassword] = [await passwordFrom(opts.authPasswordFile), await passwordFrom(opts.apiPasswordFile)];
      const report = await withDatabase((database) =>
        setUpDbRoles(database, {
          auth: { name: opts.authRole, password: authPassword },
          api: { name: opts.apiRole, password: apiPassword },
        }),
      );
      print(report);
    });
}
