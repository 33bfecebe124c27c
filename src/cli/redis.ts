import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import { aclCommandLine, apiAclRules, applyAclRules } from '../services/redis-acl.ts';
import type { Print } from './context.ts';

export class RedisAclError extends Error {}

/**
 * `portcullis redis acl`: the Redis user of the resource API (src/services/redis-acl.ts, S3).
 * Prints the ACL SETUSER command (the password as its SHA-256, as Redis keeps it); with --apply,
 * runs it through REDIS_URL (an administrative user) on the server, or on every node of a Cluster.
 * ACLs are not replicated: on Sentinel setups and replicas, run the printed command on each server
 * (or put it in their ACL file).
 */
export function registerRedisCommands(program: Command, { print }: { print: Print }): void {
  const redis = program.command('redis').description('Redis users of a split deployment');
  redis
    .command('acl')
    .description("print (or --apply) the ACL of the API's Redis user: its own keys and the commands it uses, nothing else")
    .option('--user <name>', 'Redis user of the API', 'portcullis_api')
    .requiredOption('--password-file <path>', "file with the API user's password (the API's REDIS_URL carries it)")
    .option('--apply', 'run ACL SETUSER through REDIS_URL (needs an administrative user there)')
    .action(async (opts: { user: string; passwordFile: string; apply?: boolean }) => {
      const config = loadConfig();
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file on the command line
      const password = (await readFile(opts.passwordFile, 'utf8')).trim();
      if (password.length < 16) throw new RedisAclError(`the password in ${opts.passwordFile} is shorter than 16 characters`);
      const rules = apiAclRules(opts.user, config.redisKeyPrefix, password);
      if (!opts.apply) {
        process.stdout.write(`${aclCommandLine(rules)}\n`);
        return;
      }
      const nodes = await applyAclRules(config, rules).catch((error: unknown) => {
        throw new RedisAclError((error as Error).message);
      });
      print({ user: opts.user, keys: rules.find((r) => r.startsWith('~')), commands: rules.filter((r) => r.startsWith('+')), nodes });
    });
}
