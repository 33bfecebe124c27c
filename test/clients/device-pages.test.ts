import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { createDevicePages, createUserCodeLimiter } from '../../src/auth/routes/device.ts';
import type { AccountService } from '../../src/services/accounts.ts';
import type { AuditService } from '../../src/services/audit.ts';
import { createLogger } from '../../src/shared/logger.ts';

/**
 * The guard in front of the provider's /device route on its own: locked-out IPs get a friendly
 * 429, and when the limiter's store (Redis) is down, code entry fails closed (503), never open.
 */
describe('device code entry guard', function () {
  let server: Server | undefined;

  afterEach(async function () {
    await new Promise<void>((resolve) => {
      if (server) server.close(() => resolve());
      else resolve();
    });
    server = undefined;
  });

  async function serve(limiter: Parameters<typeof createDevicePages>[0]['limiter'], attempts = 3): Promise<string> {
    const pages = createDevicePages({
      limiter,
      attempts,
      audit: {} as AuditService,
      accounts: {} as AccountService,
      logger: createLogger({ logLevel: 'silent' }),
    });
    const app = new Koa();
    app.use(pages.guard);
    app.use((ctx) => {
      ctx.body = `reached the provider: ${ctx.url}`;
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server!.once('listening', resolve));
    return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  }

  const post = (base: string) =>
    fetch(`${base}/device`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'user_code=BCDF-GHJK' });

  it('lets code entry through below the limit and refuses it with 429 + Retry-After at the limit', async function () {
    const limiter = new RateLimiterMemory({ points: 3, duration: 60, blockDuration: 60 });
    const base = await serve(limiter);
    expect((await post(base)).status).to.equal(200);
    for (let i = 0; i < 3; i++) await limiter.consume('127.0.0.1').catch(() => undefined);
    const locked = await post(base);
    expect(locked.status).to.equal(429);
    expect(Number(locked.headers.get('Retry-After'))).to.be.within(1, 60);
    expect(await locked.text()).to.include('Too many wrong codes');
  });

  it('fails closed (503) when the limiter store is unreachable', async function () {
    const broken = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    try {
      const base = await serve(createUserCodeLimiter({ redis: broken, attempts: 3, windowSeconds: 60 }));
      const response = await post(base);
      expect(response.status).to.equal(503);
      expect(await response.text()).to.include('Temporarily unavailable');
    } finally {
      broken.disconnect();
    }
  });

  it('turns verification_uri_complete into a pre-filled form, not an auto-submitted one', async function () {
    const base = await serve(new RateLimiterMemory({ points: 3, duration: 60 }));
    const response = await fetch(`${base}/device?user_code=bcdf-ghjk"><script>`);
    // The provider sees /device without the code (it would auto-submit it otherwise).
    expect(await response.text()).to.equal('reached the provider: /device');
  });
});
