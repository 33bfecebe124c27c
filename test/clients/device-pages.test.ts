import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import Koa from 'koa';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { nameProviderRoute } from '../../src/auth/provider-routes.ts';
import { createDevicePages } from '../../src/auth/routes/device.ts';
import type { AccountService } from '../../src/services/accounts.ts';
import type { AuditService } from '../../src/services/audit.ts';
import { createLockout, type Lockout } from '../../src/services/lockout.ts';
import { createLockoutCounters } from '../../src/store/lockout-counters.ts';
import { keyedDigest } from '../../src/shared/derive-key.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { testEnv } from '../setup.ts';

/**
 * The guard in front of the provider's /device route on its own: locked-out IPs get a friendly
 * 429, and when the lockout's store (Redis) is down, code entry fails closed (503), never open.
 */
describe('device code entry guard', function () {
  let server: Server | undefined;
  const logger = createLogger({ logLevel: 'silent' });
  // Only the Postgres fallback would use it; these sentinels count in Redis.
  let knex: Knex;
  let redis: Redis;
  const sentinel = (store: Redis): Lockout =>
    createLockout({
      counters: createLockoutCounters({ redis: store, knex }),
      logger,
      budget: { name: 'device-user-code', maxFailures: 3, baseSeconds: 60, maxSeconds: 3600, windowSeconds: 60 },
      counterKey: keyedDigest(randomBytes(32), 'test counters'),
    });

  before(function () {
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    redis = new Redis(testEnv.redisUrl, { keyPrefix: `${testEnv.redisKeyPrefix}device-pages:` });
  });
  after(async function () {
    redis.disconnect();
    await knex.destroy();
  });

  afterEach(async function () {
    await new Promise<void>((resolve) => {
      if (server) server.close(() => resolve());
      else resolve();
    });
    server = undefined;
  });

  async function serve(lockout: Lockout): Promise<string> {
    const pages = createDevicePages({ lockout, audit: {} as AuditService, accounts: {} as AccountService, logger });
    const app = new Koa();
    // The auth app names the provider's route in front of the guard (src/auth/provider-routes.ts).
    app.use(nameProviderRoute((_method, path) => (path === '/device' ? { name: 'code_verification', params: {} } : undefined)));
    app.use(pages.guard);
    app.use((ctx) => {
      ctx.body = `reached the provider: ${ctx.url}`;
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server!.once('listening', resolve));
    return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  }

  const post = (base: string) =>
    fetch(`${base}/device`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'user_code=BCDF-GHJK',
    });

  it('lets code entry through below the limit and refuses it with 429 + Retry-After at the limit', async function () {
    const lockout = sentinel(redis);
    const base = await serve(lockout);
    expect((await post(base)).status).to.equal(200);
    for (let i = 0; i < 3; i++) await lockout.fail('127.0.0.1');
    const locked = await post(base);
    expect(locked.status).to.equal(429);
    expect(Number(locked.headers.get('Retry-After'))).to.be.within(1, 60);
    expect(await locked.text()).to.include('Too many wrong codes');
  });

  it('fails closed (503) when the limiter store is unreachable', async function () {
    const broken = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    try {
      const base = await serve(sentinel(broken));
      const response = await post(base);
      expect(response.status).to.equal(503);
      expect(await response.text()).to.include('Temporarily unavailable');
    } finally {
      broken.disconnect();
    }
  });

  it('turns verification_uri_complete into a pre-filled form, not an auto-submitted one', async function () {
    const base = await serve(sentinel(redis));
    const response = await fetch(`${base}/device?user_code=bcdf-ghjk"><script>`);
    // The provider sees /device without the code (it would auto-submit it otherwise).
    expect(await response.text()).to.equal('reached the provider: /device');
  });
});
