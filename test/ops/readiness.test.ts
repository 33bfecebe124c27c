import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { probe, startInstance, startPrivateRedis, stopInstance, type Instance, type PrivateRedis } from '../helpers/cluster.ts';
import { freePort } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';
import { testEnv } from '../setup.ts';

type ReadyBody = { status: string; checks: Record<string, string> };

const readyz = async (url: string): Promise<{ status: number; body: ReadyBody }> => {
  const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: (await response.json()) as ReadyBody };
};

/** Polls /readyz until it answers `status`; fails with the last answer. */
const readyzBecomes = (url: string, status: number, timeoutMs: number) =>
  eventually(
    async () => {
      const reply = await readyz(url);
      expect(reply.status, `/readyz ${JSON.stringify(reply.body)}`).to.equal(status);
      return reply;
    },
    { timeoutMs, intervalMs: 50 },
  );

/**
 * /readyz on real processes (docs/security.md T45): Postgres, Redis, migrations and signing
 * keys; 503 while a dependency is down and back to 200 without a restart; /healthz stays 200.
 * The boot check warns loudly when Redis may evict keys. A private redis-server is killed here,
 * never the shared one.
 */
describe('readiness and the Redis eviction boot check', function () {
  this.timeout(90_000);
  let redis: PrivateRedis | undefined;
  let auth: Instance | undefined;
  let api: Instance | undefined;

  afterEach(async function () {
    await stopInstance(auth);
    await stopInstance(api);
    auth = api = undefined;
    await redis?.stop();
    redis = undefined;
  });

  it('warns at boot when maxmemory-policy is not noeviction, and reports Redis down and back', async function () {
    redis = await startPrivateRedis(['--maxmemory-policy', 'allkeys-lru']);
    const port = await freePort();
    auth = await startInstance('auth', { ISSUER: `http://127.0.0.1:${port}`, REDIS_URL: redis.url }, { port });
    expect(auth.output()).to.include('REDIS EVICTION IS ON: maxmemory-policy is allkeys-lru');

    const ready = await readyz(auth.url);
    expect(ready.status).to.equal(200);
    expect(ready.body.checks).to.deep.equal({ postgres: 'ok', redis: 'ok', migrations: 'ok', signingKeys: 'ok' });

    // Redis dies: not ready, but alive (no crash loop).
    const redisPort = redis.port;
    await redis.stop();
    const down = await readyzBecomes(auth.url, 503, 10_000);
    expect(down.body).to.deep.include({ status: 'unavailable' });
    expect(down.body.checks.redis).to.equal('unavailable');
    expect(down.body.checks.postgres).to.equal('ok');
    expect(await probe(`${auth.url}/healthz`)).to.equal(200);

    // Redis is back on the same address: ready again without a restart.
    redis = await startPrivateRedis([], redisPort);
    const back = await readyzBecomes(auth.url, 200, 20_000);
    expect(back.body.checks.redis).to.equal('ok');
  });

  it('stays quiet with noeviction; the API process reports migrations behind as not ready', async function () {
    redis = await startPrivateRedis(['--maxmemory-policy', 'noeviction']);
    const port = await freePort();
    api = await startInstance('api', { API_URL: `http://127.0.0.1:${port}`, REDIS_URL: redis.url }, { port });
    expect(api.output()).to.not.include('maxmemory-policy');
    const ready = await readyz(api.url);
    expect(ready.status).to.equal(200);
    expect(ready.body.checks).to.deep.equal({ postgres: 'ok', redis: 'ok', migrations: 'ok' });

    // Forget the newest migration: the schema no longer matches this release.
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      const last = await knex('knex_migrations').orderBy('id', 'desc').first<Record<string, unknown>>();
      await knex('knex_migrations')
        .where('id', last.id as number)
        .delete();
      try {
        // Readiness is computed at most once a second (S9): the change shows within about a second.
        const behind = await readyzBecomes(api.url, 503, 5000);
        expect(behind.status).to.equal(503);
        expect(behind.body.checks.migrations).to.equal('unavailable');
      } finally {
        await knex('knex_migrations').insert(last);
      }
      expect((await readyzBecomes(api.url, 200, 5000)).status).to.equal(200);
    } finally {
      await knex.destroy();
    }
  });

  it('finds Redis through Sentinel (REDIS_SENTINELS) and reports its primary going away', async function () {
    redis = await startPrivateRedis(['--maxmemory-policy', 'noeviction']);
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-sentinel-'));
    const sentinelPort = await freePort();
    await writeFile(
      join(dir, 'sentinel.conf'),
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor pc 127.0.0.1 ${redis.port} 1`,
        'sentinel down-after-milliseconds pc 60000',
        '',
      ].join('\n'),
    );
    const sentinel = spawn('redis-server', [join(dir, 'sentinel.conf'), '--sentinel'], { stdio: 'ignore' });
    const sentinelExited = new Promise<void>((resolve) => sentinel.on('close', () => resolve()));
    try {
      const probeSentinel = new Redis({
        port: sentinelPort,
        host: '127.0.0.1',
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => 200,
      });
      probeSentinel.on('error', () => undefined);
      // Sentinel refuses connections until it has started: poll for its answer.
      const primary = await eventually(
        async () => {
          const reply = await probeSentinel.call('SENTINEL', 'get-master-addr-by-name', 'pc');
          expect(reply, 'the primary Sentinel names').to.be.an('array');
          return reply;
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      probeSentinel.disconnect();
      expect(primary).to.deep.equal(['127.0.0.1', String(redis.port)]);

      const port = await freePort();
      auth = await startInstance(
        'auth',
        { ISSUER: `http://127.0.0.1:${port}`, REDIS_URL: '', REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, REDIS_SENTINEL_NAME: 'pc' },
        { port },
      );
      const ready = await readyz(auth.url);
      expect(ready.status).to.equal(200);
      expect(ready.body.checks.redis).to.equal('ok');
      expect(auth.output()).to.not.include('maxmemory-policy');

      // The primary Sentinel named is the one in use: without it the instance is not ready.
      await redis.stop();
      redis = undefined;
      const down = await readyzBecomes(auth.url, 503, 10_000);
      expect(down.body.checks.redis).to.equal('unavailable');
    } finally {
      sentinel.kill('SIGKILL');
      await sentinelExited;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
