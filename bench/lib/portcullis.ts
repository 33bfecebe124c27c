import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { loadConfig } from '../../src/config/load.ts';
import { createClient } from '../../src/cli/clients.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { freePort, startServer, type Server } from './servers.ts';

export const ADMIN_URL = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const REDIRECT_URI = 'https://rp.example.test/cb';

export type Seed = {
  user: { email: string; password: string };
  cc: { client_id: string; client_secret: string };
  web: { client_id: string; client_secret: string };
  device: { client_id: string };
};

export type Portcullis = {
  env: Record<string, string>;
  issuer: string;
  apiUrl: string;
  databaseUrl: string;
  redisPrefix: string;
  deps: Deps;
  seed: Seed;
  start(options: { cpu: string; nodeFlags?: string[] }): Promise<{ auth: Server; api: Server }>;
  close(): Promise<void>;
};

function databaseUrlFor(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A Portcullis instance of its own: a fresh database (dropped at close), a Redis key prefix
 * (deleted at close), seeded with one user and the bench clients through the same code paths
 * as the CLI. `start` spawns `node src/main.ts --only auth` and `--only api`.
 */
export async function preparePortcullis(): Promise<Portcullis> {
  const dbName = `portcullis_bench_${process.pid}`;
  const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`DROP DATABASE IF EXISTS ${dbName}`);
  await admin.raw(`CREATE DATABASE ${dbName}`);
  const databaseUrl = databaseUrlFor(dbName);
  const [authPort, apiPort] = [await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${authPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const redisPrefix = `bench:${process.pid}:ours:`;
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_KEY_PREFIX: redisPrefix,
    MASTER_KEY: randomBytes(32).toString('base64'),
    ISSUER: issuer,
    AUTH_PORT: String(authPort),
    API_URL: apiUrl,
    API_PORT: String(apiPort),
    HOST: '127.0.0.1',
    // One IP and one client send everything here: per-IP/per-client limits are set out of reach
    // (1,000,000 per second) so the limiter still runs on every request but never answers 429.
    RATE_LIMIT_WINDOW_SECONDS: '1',
    RATE_LIMIT_TOKEN_PER_IP: '1000000',
    RATE_LIMIT_TOKEN_PER_CLIENT: '1000000',
    RATE_LIMIT_LOGIN_PER_IP: '1000000',
    RATE_LIMIT_REGISTRATION_PER_IP: '1000000',
    RATE_LIMIT_API_PER_IP: '10000000',
    RATE_LIMIT_API_PER_CLIENT: '10000000',
  };
  for (const name of ['ARGON2_MEMORY_KIB', 'ARGON2_TIME_COST', 'ARGON2_PARALLELISM']) {
    const value = process.env[name];
    if (value) env[name] = value;
  }
  const config = loadConfig(env);
  const deps = await createDeps(config, { logger: createLogger(config), migrate: true });
  const password = `bench-${randomBytes(8).toString('hex')}`;
  const email = `bench.${randomBytes(4).toString('hex')}@example.test`;
  await deps.accounts.createUser({ email, password, name: 'Bench Person', roles: ['user'] });
  const cc = (await createClient(deps, {
    client_name: 'Bench service',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'records:read records:write',
  })) as Seed['cc'];
  const web = (await createClient(deps, {
    client_name: 'Bench web app',
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
  })) as Seed['web'];
  const device = (await createClient(deps, {
    client_name: 'Bench CLI',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_GRANT, 'refresh_token'],
    redirect_uris: [],
    response_types: [],
    scope: 'openid offline_access records:read',
  })) as Seed['device'];
  const seed: Seed = { user: { email, password }, cc, web, device };

  return {
    env,
    issuer,
    apiUrl,
    databaseUrl,
    redisPrefix,
    deps,
    seed,
    async start({ cpu, nodeFlags }) {
      const auth = await startServer({
        name: 'portcullis-auth',
        args: ['src/main.ts', '--only', 'auth'],
        env,
        origin: issuer,
        readyPath: '/readyz',
        cpu,
        ...(nodeFlags ? { nodeFlags } : {}),
      });
      const api = await startServer({
        name: 'portcullis-api',
        args: ['src/main.ts', '--only', 'api'],
        env,
        origin: apiUrl,
        readyPath: '/readyz',
        cpu,
        ...(nodeFlags ? { nodeFlags } : {}),
      });
      return { auth, api };
    },
    async close() {
      await deps.close();
      await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}
