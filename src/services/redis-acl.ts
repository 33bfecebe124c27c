import { createHash } from 'node:crypto';
import type { Config } from '../config/types.ts';
import { API_REPLAY_NAMESPACE } from '../store/dpop-replay.ts';
import { createRedis } from '../store/redis.ts';

/**
 * The Redis user of the resource API (S3). The API keeps one thing in Redis, the ids of the DPoP
 * proofs it accepted (SET NX EX, DEL to give one back), under its own namespace; its rate limits
 * are counted in memory. Everything else in Redis is the identity server's: sessions, codes,
 * grants and tokens (keyed and sealed under MASTER_KEY, S10), lockout counters, replay caches.
 * This user reaches none of it: one key pattern, the commands above, PING for readiness, and
 * what the client library sends on connecting (INFO for its ready check, SELECT for a database
 * number, the Cluster's slot map and redirections; its CLIENT SETINFO may fail, and is ignored
 * by the library, since Redis 7.0 does not know it). No CONFIG (it can read the
 * server's password), no KEYS or SCAN, no Pub/Sub.
 */
export const API_COMMANDS = [
  'ping',
  'set',
  'del',
  'info',
  'select',
  'cluster|slots',
  'cluster|shards',
  'cluster|nodes',
  'asking',
  'readonly',
] as const;

/** The API's key pattern: REDIS_KEY_PREFIX and the API's namespace. */
export const apiKeyPattern = (prefix: string): string => `${prefix}${API_REPLAY_NAMESPACE}*`;

/** `#<sha256>`: Redis stores and compares the hash, so the command can be printed and kept. */
export const aclPasswordHash = (password: string): string => `#${createHash('sha256').update(password, 'utf8').digest('hex')}`;

/** The arguments of `ACL SETUSER` for the API user: everything reset, then exactly what it needs. */
export function apiAclRules(user: string, prefix: string, password: string): string[] {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(user)) throw new Error('the Redis user name may hold letters, digits, ".", "_" and "-" only');
  if (/[\s*?[\]\\]/.test(prefix)) throw new Error('REDIS_KEY_PREFIX holds a character Redis reads as a pattern (* ? [ ] \\) or whitespace');
  return [
    user,
    'reset',
    'on',
    aclPasswordHash(password),
    'resetchannels',
    `~${apiKeyPattern(prefix)}`,
    '-@all',
    ...API_COMMANDS.map((c) => `+${c}`),
  ];
}

/** As it is typed in redis-cli or an ACL file. */
export const aclCommandLine = (rules: readonly string[]): string => `ACL SETUSER ${rules.join(' ')}`;

/**
 * Runs ACL SETUSER through REDIS_URL (an administrative user) on the server, or on every node of a
 * Cluster (ACLs are per server and not replicated). Returns how many servers took it; throws the
 * first refusal, naming the server.
 */
export async function applyAclRules(config: Config, rules: readonly string[]): Promise<number> {
  const client = createRedis(config);
  if (!client) throw new Error('--apply needs REDIS_URL (or REDIS_SENTINELS / REDIS_CLUSTER_NODES) with an administrative user');
  try {
    const nodes = 'nodes' in client ? client.nodes('all') : [client];
    for (const node of nodes) {
      await node.call('ACL', 'SETUSER', ...rules).catch((error: unknown) => {
        throw new Error(`ACL SETUSER failed on ${node.options.host ?? ''}:${node.options.port ?? ''}: ${(error as Error).message}`);
      });
    }
    return nodes.length;
  } finally {
    client.disconnect();
  }
}
