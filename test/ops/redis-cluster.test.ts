import { randomBytes } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as client from 'openid-client';
import { withReuseDetection } from '../../src/auth/refresh-reuse.ts';
import { createRedisStateStore, endOidcState } from '../../src/store/oidc-adapter-redis.ts';
import { createOidcStateKeys, sealedAdapter } from '../../src/store/oidc-adapter-sealed.ts';
import { checkEvictionPolicy } from '../../src/store/redis-checks.ts';
import { createRedis, type Redis } from '../../src/store/redis.ts';
import { createRp, signedInUser } from '../helpers/api.ts';
import { eventually } from '../helpers/wait.ts';
import { freePort, startTestServers, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';
import { adapterContract } from '../store/oidc-adapter.contract.ts';

/** The Redis storage backend, with consume() by the reuse rule (as the servers use it). */
const createRedisAdapter = (redis: Redis, model: string) => withReuseDetection((name) => createRedisStateStore(redis, name))(model);

type ClusterNode = { port: number; dir: string; process: ChildProcess; exited: Promise<void> };

const redisCli = (...args: string[]): string => execFileSync('redis-cli', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** redis-cli output, or '' while the server is not answering yet. */
const tryRedisCli = (...args: string[]): string => {
  try {
    return redisCli(...args);
  } catch {
    return '';
  }
};

/** Three redis-server primaries (no replicas) joined with `redis-cli --cluster create`, on loopback ports. */
async function startRedisCluster(): Promise<{ nodes: string[]; stop(): Promise<void> }> {
  const started: ClusterNode[] = [];
  const stop = async () => {
    for (const node of started) {
      if (node.process.exitCode === null && node.process.signalCode === null) node.process.kill('SIGKILL');
      await node.exited;
      rmSync(node.dir, { recursive: true, force: true });
    }
  };
  try {
    for (let i = 0; i < 3; i++) {
      // The bus port is set explicitly: the default (port + 10000) may be taken or above 65535.
      const [port, busPort] = [await freePort(), await freePort()];
      const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-cluster-'));
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      );
      started.push({ port, dir, process: child, exited: new Promise((resolve) => child.on('close', () => resolve())) });
      await eventually(() => expect(tryRedisCli('-p', String(port), 'ping').trim(), `redis node on ${port}`).to.equal('PONG'), {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
    }
    const nodes = started.map((node) => `127.0.0.1:${node.port}`);
    redisCli('--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes');
    for (const node of started) {
      await eventually(() => expect(tryRedisCli('-p', String(node.port), 'cluster', 'info')).to.include('cluster_state:ok'), {
        timeoutMs: 20_000,
        intervalMs: 200,
      });
    }
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * REDIS_CLUSTER_NODES: the oidc-provider adapter on a real three-primary Redis Cluster. Its
 * MULTI transactions and grant revocation span several keys, which a Cluster only allows within
 * one hash slot (CROSSSLOT otherwise): the {oidc} hash tag keeps them together.
 */
describe('Redis Cluster (REDIS_CLUSTER_NODES)', function () {
  this.timeout(120_000);
  let cluster: { nodes: string[]; stop(): Promise<void> };
  let redis: Redis;

  before(async function () {
    cluster = await startRedisCluster();
    const made = createRedis({ redisClusterNodes: cluster.nodes, redisKeyPrefix: `${testEnv.redisKeyPrefix}cluster:` });
    if (!made) throw new Error('no Redis client');
    redis = made;
  });

  after(async function () {
    redis.disconnect();
    await cluster.stop();
  });

  it('connects as a Cluster whose slots are spread over three primaries', async function () {
    expect(redis.isCluster).to.equal(true);
    await redis.set('probe', '1');
    const masters = redisCli('-p', cluster.nodes[0]?.split(':')[1] ?? '', 'cluster', 'nodes')
      .split('\n')
      .filter((line) => line.includes('master'));
    expect(masters).to.have.length(3);
  });

  it('checks maxmemory-policy on every primary and names a node that evicts', async function () {
    expect(await checkEvictionPolicy(redis)).to.include({ ok: true, verified: true });
    const last = cluster.nodes[2]!;
    redisCli('-p', last.split(':')[1]!, 'config', 'set', 'maxmemory-policy', 'allkeys-lru');
    try {
      expect(await checkEvictionPolicy(redis)).to.deep.equal({ policy: 'allkeys-lru', ok: false, verified: true, node: last });
    } finally {
      redisCli('-p', last.split(':')[1]!, 'config', 'set', 'maxmemory-policy', 'noeviction');
    }
  });

  it('keeps every key of the adapter in one hash slot ({oidc}), so MULTI and grant revocation work', async function () {
    const grantId = 'grant-slot-check';
    const tokens = createRedisAdapter(redis, 'AccessToken');
    await tokens.upsert('at-1', { jti: 'at-1', grantId, uid: 'uid-slot-check' }, 60);
    await createRedisAdapter(redis, 'RefreshToken').upsert('rt-1', { jti: 'rt-1', grantId }, 60);
    const slots = new Set(
      ['AccessToken:at-1', 'RefreshToken:rt-1', `grant:${grantId}`, 'uid:uid-slot-check'].map((key) =>
        redisCli(
          '-p',
          cluster.nodes[0]?.split(':')[1] ?? '',
          'cluster',
          'keyslot',
          `${testEnv.redisKeyPrefix}cluster:{oidc}:${key}`,
        ).trim(),
      ),
    );
    expect(slots.size).to.equal(1);
    await tokens.revokeByGrantId(grantId);
    expect(await tokens.find('at-1')).to.equal(undefined);
    expect(await createRedisAdapter(redis, 'RefreshToken').find('rt-1')).to.equal(undefined);
  });

  it('S4 a restore ends the oidc state on the Cluster: every {oidc} key under the prefix goes; replay caches, other keys and other prefixes stay', async function () {
    const own = createRedis({ redisClusterNodes: cluster.nodes, redisKeyPrefix: `${testEnv.redisKeyPrefix}cluster-s4:` });
    const neighbour = createRedis({ redisClusterNodes: cluster.nodes, redisKeyPrefix: `${testEnv.redisKeyPrefix}cluster-s4-neighbour:` });
    if (!own || !neighbour) throw new Error('no Redis client');
    try {
      const grantId = 'grant-s4';
      await createRedisAdapter(own, 'Session').upsert('session-s4', { jti: 'session-s4', uid: 'uid-s4', accountId: 'account-s4' }, 60);
      await createRedisAdapter(own, 'Grant').upsert(grantId, { jti: grantId, accountId: 'account-s4' }, 60);
      await createRedisAdapter(own, 'AccessToken').upsert('at-s4', { jti: 'at-s4', grantId }, 60);
      await createRedisAdapter(own, 'RefreshToken').upsert('rt-s4', { jti: 'rt-s4', grantId }, 60);
      await createRedisAdapter(own, 'DeviceCode').upsert('dc-s4', { jti: 'dc-s4', userCode: 'BCDF-GHJK' }, 60);
      await createRedisAdapter(own, 'ReplayDetection').upsert('jti-s4', { jti: 'jti-s4' }, 60);
      await own.set('lockout:password:s4', '3');
      await createRedisAdapter(neighbour, 'Session').upsert('session-s4', { jti: 'session-s4', accountId: 'someone-else' }, 60);

      // Session, its uid pointer, Grant, AccessToken, RefreshToken, the grant's token set, DeviceCode and its user code pointer;
      // through a client just made, as in the CLI (it learns the primaries only once connected).
      const restoring = createRedis({ redisClusterNodes: cluster.nodes, redisKeyPrefix: `${testEnv.redisKeyPrefix}cluster-s4:` });
      if (!restoring) throw new Error('no Redis client');
      try {
        expect(await endOidcState(restoring)).to.equal(8);
      } finally {
        restoring.disconnect();
      }
      expect(await createRedisAdapter(own, 'Session').find('session-s4')).to.equal(undefined);
      expect(await createRedisAdapter(own, 'Session').findByUid('uid-s4')).to.equal(undefined);
      expect(await createRedisAdapter(own, 'Grant').find(grantId)).to.equal(undefined);
      expect(await createRedisAdapter(own, 'RefreshToken').find('rt-s4')).to.equal(undefined);
      expect(await createRedisAdapter(own, 'DeviceCode').findByUserCode('BCDF-GHJK')).to.equal(undefined);
      const left = cluster.nodes.flatMap((node) =>
        redisCli('-p', node.split(':')[1] ?? '', '--scan', '--pattern', `${testEnv.redisKeyPrefix}cluster-s4:*`)
          .split('\n')
          .filter(Boolean),
      );
      expect(left.sort()).to.deep.equal([
        `${testEnv.redisKeyPrefix}cluster-s4:lockout:password:s4`,
        `${testEnv.redisKeyPrefix}cluster-s4:{oidc}:ReplayDetection:jti-s4`,
      ]);
      expect(await createRedisAdapter(neighbour, 'Session').find('session-s4')).to.deep.include({ accountId: 'someone-else' });
      // Nothing left to end: a second pass deletes nothing.
      expect(await endOidcState(own)).to.equal(0);
    } finally {
      own.disconnect();
      neighbour.disconnect();
    }
  });

  adapterContract('redis cluster', (model) => createRedisAdapter(redis, model));

  const keys = createOidcStateKeys(randomBytes(32));
  adapterContract('redis cluster, sealed', (model) => sealedAdapter(createRedisAdapter(redis, model), model, keys));

  describe('the servers on the Cluster', function () {
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({ env: { REDIS_CLUSTER_NODES: cluster.nodes.join(',') } });
    });

    after(async function () {
      await servers.stop();
    });

    it('sign-in → code → tokens → refresh → API, with sessions, codes and tokens in the Cluster', async function () {
      expect(servers.deps.redis?.isCluster).to.equal(true);
      const rp = await createRp(servers);
      const user = await signedInUser(servers, rp, { scopes: 'records:read' });
      const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${user.token}` } });
      expect(me.status).to.equal(200);
      if (!user.refreshToken) throw new Error('no refresh token');
      const refreshed = await client.refreshTokenGrant(rp, user.refreshToken, { resource: servers.apiUrl });
      expect(refreshed.access_token).to.be.a('string').and.not.equal(user.token);
      // Rotation consumed the old refresh token: presenting it again is refused (and revokes the grant).
      const replay = await client.refreshTokenGrant(rp, user.refreshToken, { resource: servers.apiUrl }).then(
        () => 'accepted',
        (error: unknown) => (error as { error?: string }).error,
      );
      expect(replay).to.equal('invalid_grant');
      // The adapter state lives in the Cluster, not the shared standalone Redis.
      const sessions = cluster.nodes.flatMap((node) =>
        redisCli('-p', node.split(':')[1] ?? '', '--scan', '--pattern', `${testEnv.redisKeyPrefix}{oidc}:Session:*`)
          .split('\n')
          .filter(Boolean),
      );
      expect(sessions).to.have.length.above(0);
    });
  });
});
