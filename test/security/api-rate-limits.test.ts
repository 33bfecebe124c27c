import { request } from 'node:http';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createTestClient } from '../helpers/factories.ts';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** GET from a chosen loopback source address, so one test can act as several IPs. */
function get(url: string, { from, token }: { from: string; token?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { localAddress: from, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Request limits on the resource API (issue #6: "rate limits per client and per IP on … and the
 * API", overridable per client): per IP before the token is checked, per client (the token's
 * client_id) after it; 429 problem JSON with Retry-After.
 */
describe('rate limits on the resource API', function () {
  this.timeout(60_000);
  let servers: TestServers;
  const tokens = new Map<string, string>();
  const ids = new Map<string, string>();

  before(async function () {
    // Client ids are assigned at registration, and overrides are read at boot: register first,
    // then boot the servers under test (same database) with the override naming one of them.
    const registering = await startTestServers();
    const registered = new Map<string, string | undefined>();
    try {
      for (const name of ['light', 'other', 'heavy']) {
        const created = await createTestClient(registering.deps, {
          grant_types: ['client_credentials'],
          redirect_uris: [],
          post_logout_redirect_uris: [],
          response_types: [],
          scope: 'records:read',
        });
        ids.set(name, created.client_id);
        registered.set(created.client_id, created.client_secret);
      }
    } finally {
      await registering.stop();
    }
    servers = await startTestServers({
      env: {
        RATE_LIMIT_API_PER_IP: '6',
        RATE_LIMIT_API_PER_CLIENT: '3',
        RATE_LIMIT_API_PER_CLIENT_OVERRIDES: `${ids.get('heavy')!}=0`,
        RATE_LIMIT_WINDOW_SECONDS: '60',
      },
    });
    for (const [name, clientId] of ids) {
      const response = await fetch(`${servers.issuer}/token`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: basicAuth(clientId, registered.get(clientId)),
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'records:read', resource: servers.apiUrl }),
      });
      const body = (await response.json()) as { access_token: string };
      tokens.set(name, body.access_token);
    }
  });

  after(async function () {
    await servers.stop();
  });

  const me = (name: string, from: string) => get(`${servers.apiUrl}/v1/me`, { from, token: tokens.get(name)! });

  it('T34 API per client: the 4th request of one client gets a 429 problem with Retry-After; another client is unaffected', async function () {
    let address = 10;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const ok = await me('light', `127.0.2.${address++}`);
      statuses.push(ok.status);
      expect(ok.headers['ratelimit-remaining']).to.equal(String(2 - i));
    }
    expect(statuses).to.deep.equal([200, 200, 200]);
    const limited = await me('light', `127.0.2.${address++}`);
    expect(limited.status).to.equal(429);
    expect(limited.headers['content-type']).to.match(/^application\/problem\+json/);
    expect(Number(limited.headers['retry-after'])).to.be.within(1, 60);
    expect(JSON.parse(limited.body)).to.include({ status: 429, title: 'Too many requests' });
    expect((await me('other', `127.0.2.${address}`)).status).to.equal(200);
  });

  it('T34 API per-client override: RATE_LIMIT_API_PER_CLIENT_OVERRIDES=<client>=0 lifts its quota; validated at startup', async function () {
    let address = 40;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await me('heavy', `127.0.2.${address++}`)).status);
    expect(statuses).to.deep.equal([200, 200, 200, 200, 200]);
    for (const bad of ['heavy', 'a=1,b', 'x=-1']) {
      expect(() => loadConfig({ ...testConfigEnv(), RATE_LIMIT_API_PER_CLIENT_OVERRIDES: bad }), bad).to.throw(
        /RATE_LIMIT_API_PER_CLIENT_OVERRIDES: must be comma-separated client_id=limit pairs/,
      );
    }
  });

  it('T34 API per IP: the 7th request from one address gets 429 even with garbage tokens; another address is unaffected', async function () {
    const from = '127.0.2.200';
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await get(`${servers.apiUrl}/v1/me`, { from, token: `garbage-${i}` })).status);
    expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 401]);
    expect((await get(`${servers.apiUrl}/v1/me`, { from, token: tokens.get('heavy')! })).status).to.equal(429);
    expect((await me('heavy', '127.0.2.201')).status).to.equal(200);
    // Health and discovery documents are not counted.
    expect((await get(`${servers.apiUrl}/healthz`, { from })).status).to.equal(200);
  });
});
