import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { expect } from 'chai';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.ts';
import { createRateLimits } from '../../src/shared/koa-rate-limit.ts';
import { problemHandler } from '../../src/shared/koa-problem-handler.ts';
import { keyedDigest } from '../../src/shared/derive-key.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createTestClient } from '../helpers/factories.ts';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** POST a form from a chosen loopback source address (the whole 127/8 is local on Linux). */
function post(
  url: string,
  form: Record<string, string>,
  options: { from?: string | undefined; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        localAddress: options.from ?? '127.0.0.1',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': String(Buffer.byteLength(body)),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Request rate limits (docs/security.md: oidc-provider "does not implement resource limits"):
 * per IP and per client on /token, /token/introspection, /device/auth, /reg and login POSTs;
 * 429 with Retry-After and RateLimit-* headers; the IP is the socket address (X-Forwarded-For
 * ignored without TRUST_PROXY, T34); a failing limiter store refuses requests (T45).
 */
describe('rate limits on token, introspection, device, registration and login endpoints', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let client: { client_id: string; client_secret?: string };
  let other: { client_id: string; client_secret?: string };

  before(async function () {
    servers = await startTestServers({
      env: {
        RATE_LIMIT_TOKEN_PER_IP: '6',
        RATE_LIMIT_TOKEN_PER_CLIENT: '3',
        RATE_LIMIT_TOKEN_PER_CLIENT_OVERRIDES: 'override-big=5,override-free=0',
        RATE_LIMIT_LOGIN_PER_IP: '4',
        RATE_LIMIT_REGISTRATION_PER_IP: '2',
        RATE_LIMIT_WINDOW_SECONDS: '60',
      },
    });
    client = await createTestClient(servers.deps, { grant_types: ['client_credentials'], redirect_uris: [], response_types: [] });
    other = await createTestClient(servers.deps, { grant_types: ['client_credentials'], redirect_uris: [], response_types: [] });
  });

  after(async function () {
    await servers.stop();
  });

  const clientCredentials = (c: { client_id: string; client_secret?: string }, from?: string) =>
    post(
      `${servers.issuer}/token`,
      { grant_type: 'client_credentials' },
      { from, headers: { Authorization: basicAuth(c.client_id, c.client_secret) } },
    );

  it('T34 per client: the 4th token request of one client in the window gets 429 with Retry-After; another client is unaffected', async function () {
    for (let i = 0; i < 3; i++) {
      const ok = await clientCredentials(client, '127.0.0.11');
      expect(ok.status, ok.body).to.equal(200);
      expect(ok.headers['ratelimit-limit']).to.equal('3');
      expect(ok.headers['ratelimit-remaining']).to.equal(String(2 - i));
    }
    const limited = await clientCredentials(client, '127.0.0.12');
    expect(limited.status).to.equal(429);
    expect(Number(limited.headers['retry-after'])).to.be.within(1, 60);
    expect(limited.headers['ratelimit-remaining']).to.equal('0');
    expect(limited.body).not.to.include('access_token');
    const unaffected = await clientCredentials(other, '127.0.0.12');
    expect(unaffected.status, unaffected.body).to.equal(200);
  });

  it('T34 per-client override: RATE_LIMIT_TOKEN_PER_CLIENT_OVERRIDES gives a client its own quota (0 = none); others keep the default', async function () {
    // Public-client requests (client_id in the body) from fresh addresses, so only the client buckets count.
    let address = 70;
    const asClient = (clientId: string) =>
      post(
        `${servers.issuer}/token`,
        { grant_type: 'refresh_token', refresh_token: 'nope', client_id: clientId },
        { from: `127.0.1.${address++}` },
      );
    const big: Reply[] = [];
    for (let i = 0; i < 6; i++) big.push(await asClient('override-big'));
    expect(big.map((r) => r.status)).to.deep.equal([401, 401, 401, 401, 401, 429]);
    expect(big[0]!.headers['ratelimit-limit']).to.equal('5');
    const free: number[] = [];
    for (let i = 0; i < 8; i++) free.push((await asClient('override-free')).status);
    expect(free).not.to.include(429);
    const plain: number[] = [];
    for (let i = 0; i < 4; i++) plain.push((await asClient('override-none')).status);
    expect(plain).to.deep.equal([401, 401, 401, 429]);
  });

  it('T34 per-client overrides are validated at startup', function () {
    for (const bad of ['no-limit', 'a=1,b', 'x=-1', 'x=1.5', '=5']) {
      expect(() => loadConfig({ ...testConfigEnv(), RATE_LIMIT_TOKEN_PER_CLIENT_OVERRIDES: bad }), bad).to.throw(
        /RATE_LIMIT_TOKEN_PER_CLIENT_OVERRIDES: must be comma-separated client_id=limit pairs/,
      );
    }
    expect(
      loadConfig({ ...testConfigEnv(), RATE_LIMIT_TOKEN_PER_CLIENT_OVERRIDES: 'batch-job=5000, ci=0' }).rateLimits.tokenPerClientOverrides,
    ).to.deep.equal(['batch-job=5000', 'ci=0']);
  });

  it('T34 per IP: the 7th token request from one address gets 429, whatever the client; another address is unaffected', async function () {
    const from = '127.0.0.21';
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push(
        (await post(`${servers.issuer}/token`, { grant_type: 'client_credentials', client_id: `nobody-${i}` }, { from })).status,
      );
    expect(statuses).not.to.include(429);
    const limited = await post(`${servers.issuer}/token/introspection`, { token: 'x', client_id: 'nobody-7' }, { from });
    expect(limited.status).to.equal(429);
    expect(limited.headers['retry-after']).to.match(/^\d+$/);
    expect((await post(`${servers.issuer}/device/auth`, { client_id: 'nobody-8' }, { from })).status).to.equal(429);
    expect(
      (await post(`${servers.issuer}/token`, { grant_type: 'client_credentials', client_id: 'nobody-9' }, { from: '127.0.0.22' })).status,
    ).not.to.equal(429);
  });

  it('T34 a spoofed X-Forwarded-For is ignored without TRUST_PROXY (the socket address is the key)', async function () {
    const from = '127.0.0.21'; // exhausted by the previous test
    for (const spoofed of ['203.0.113.9', '198.51.100.1, 203.0.113.10', 'garbage']) {
      const reply = await post(
        `${servers.issuer}/token`,
        { grant_type: 'client_credentials', client_id: 'nobody' },
        { from, headers: { 'X-Forwarded-For': spoofed } },
      );
      expect(reply.status, spoofed).to.equal(429);
    }
  });

  it('a public client is counted by the client_id in its form body, and the provider still reads that body', async function () {
    const from = '127.0.0.31';
    const answers: Reply[] = [];
    for (let i = 0; i < 4; i++)
      answers.push(
        await post(
          `${servers.issuer}/token`,
          { grant_type: 'refresh_token', refresh_token: 'nope', client_id: 'public-counted' },
          { from: i < 2 ? from : '127.0.0.32' },
        ),
      );
    // The provider parsed the body we read ahead: it knows the client_id (unknown → invalid_client).
    expect(answers[0]!.status).to.equal(401);
    expect(JSON.parse(answers[0]!.body)).to.include({ error: 'invalid_client' });
    expect(answers.map((a) => a.status)).to.deep.equal([401, 401, 401, 429]);
  });

  it('login POSTs: the 5th from one address in the window gets 429 (HTML error page)', async function () {
    const from = '127.0.0.41';
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push(
        (
          await post(
            `${servers.issuer}/interaction/some-uid/login`,
            { email: 'a@example.test', password: 'whatever-password' },
            { from, headers: { Accept: 'text/html' } },
          )
        ).status,
      );
    expect(statuses).not.to.include(429);
    const limited = await post(
      `${servers.issuer}/interaction/other-uid/login`,
      { email: 'a@example.test', password: 'whatever-password' },
      { from, headers: { Accept: 'text/html' } },
    );
    expect(limited.status).to.equal(429);
    expect(limited.headers['retry-after']).to.match(/^\d+$/);
    expect(limited.headers['content-type']).to.include('text/html');
  });

  it('registration: the 3rd /reg POST from one address gets 429', async function () {
    const from = '127.0.0.51';
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(`${servers.issuer}/reg`, { client_name: 'x' }, { from })).status);
    expect(statuses[0]).not.to.equal(429);
    expect(statuses[2]).to.equal(429);
  });

  it('T34 with TRUST_PROXY the proxy-supplied address is the key (behind a proxy that overwrites X-Forwarded-For)', async function () {
    const proxied = await startTestServers({
      env: { TRUST_PROXY: 'true', RATE_LIMIT_TOKEN_PER_IP: '2', RATE_LIMIT_TOKEN_PER_CLIENT: '0' },
    });
    try {
      const from = '127.0.0.61';
      const asUser = (address: string) =>
        post(
          `${proxied.issuer}/token`,
          { grant_type: 'client_credentials', client_id: 'nobody' },
          { from, headers: { 'X-Forwarded-For': address } },
        );
      expect((await asUser('203.0.113.1')).status).not.to.equal(429);
      expect((await asUser('203.0.113.1')).status).not.to.equal(429);
      expect((await asUser('203.0.113.1')).status).to.equal(429);
      expect((await asUser('203.0.113.2')).status, 'another end user behind the same proxy').not.to.equal(429);
    } finally {
      await proxied.stop();
    }
  });

  it('T45 fails closed: when the limiter store is unreachable, limited endpoints answer 503, never pass through', async function () {
    const config = loadConfig({ ...testConfigEnv(), RATE_LIMIT_TOKEN_PER_IP: '100' });
    const logger = createLogger({ logLevel: 'silent' });
    const broken = new Redis('redis://127.0.0.1:1/0', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const app = new Koa();
    let reached = false;
    app.use(problemHandler({ logger }));
    app.use(
      createRateLimits({ config, redis: broken, logger, counterKey: keyedDigest(randomBytes(32), 'test counters') }).byBucket(
        () => 'token',
      ),
    );
    app.use((ctx) => {
      reached = true;
      ctx.body = 'passed';
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as { port: number };
      const reply = await post(`http://127.0.0.1:${port}/token`, { grant_type: 'client_credentials' });
      expect(reply.status).to.equal(503);
      expect(reply.headers['retry-after']).to.equal('5');
      expect(reached).to.equal(false);
    } finally {
      server.close();
      broken.disconnect();
    }
  });
});
