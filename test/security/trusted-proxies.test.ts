import { expect } from 'chai';
import { rawRequest, type RawReply } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

/** The nginx of these tests: a loopback address of its own (the whole 127/8 is local on Linux). */
const PROXY = '127.0.0.5';
/** A container on the same network, or a service through the internal listener: it reaches the port directly. */
const DIRECT = '127.0.0.6';

/**
 * R13 (issue 19, adversarial review): TRUST_PROXY=true believed X-Forwarded-For from ANY caller,
 * so anything reaching the app port directly rotated it and dodged every per-IP limit (32
 * POST /reg with a fixed X-Forwarded-For → 429 from the 31st; rotating it → never). TRUST_PROXY
 * now names the proxies; the client is the rightmost X-Forwarded-For address that is not one of
 * them, walking from the socket, in both apps: rate limits, lockouts, audit and the request log's
 * X-Request-Id. Both storage modes: the rate-limit counters live in Redis or in memory.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13 X-Forwarded-For only from the proxies TRUST_PROXY names (${storage} storage)`, function () {
    this.timeout(60_000);
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({
        storage,
        env: {
          TRUST_PROXY: `${PROXY},10.0.0.0/8`,
          RATE_LIMIT_REGISTRATION_PER_IP: '2',
          RATE_LIMIT_API_PER_IP: '2',
          RATE_LIMIT_WINDOW_SECONDS: '60',
        },
      });
    });
    after(async function () {
      await servers.stop();
    });

    const register = (from: string, forwardedFor?: string, headers: Record<string, string> = {}): Promise<RawReply> =>
      rawRequest(servers.issuer, {
        method: 'POST',
        target: '/reg',
        headers: { 'Content-Type': 'application/json', ...(forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}), ...headers },
        body: JSON.stringify({ client_name: 'x', redirect_uris: ['https://rp.example.test/cb'] }),
        from,
      });
    const callApi = (from: string, forwardedFor?: string, headers: Record<string, string> = {}): Promise<RawReply> =>
      rawRequest(servers.apiUrl, {
        target: '/v1/me',
        headers: { ...(forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}), ...headers },
        from,
      });

    it('R13 a direct caller not in TRUST_PROXY cannot spoof: a rotating X-Forwarded-For still spends its own socket address (auth and API)', async function () {
      const statuses = [];
      for (let i = 1; i <= 3; i++) statuses.push((await register(DIRECT, `203.0.113.${i}`)).status);
      expect(statuses.slice(0, 2)).not.to.include(429);
      expect(statuses[2]).to.equal(429);
      // Even naming a trusted proxy's address in the header changes nothing.
      expect((await register(DIRECT, `198.51.100.1, ${PROXY}`)).status).to.equal(429);

      const api = [];
      for (let i = 1; i <= 3; i++) api.push((await callApi(DIRECT, `203.0.113.${i}`)).status);
      expect(api).to.deep.equal([401, 401, 429]);
    });

    it("R13 the trusted proxy's X-Forwarded-For is honoured: each client behind it has its own budget (auth and API)", async function () {
      const client = (n: number) => `192.0.2.${n}`;
      expect((await register(PROXY, client(1))).status).not.to.equal(429);
      expect((await register(PROXY, client(1))).status).not.to.equal(429);
      expect((await register(PROXY, client(1))).status).to.equal(429);
      expect((await register(PROXY, client(2))).status, 'another client behind the proxy').not.to.equal(429);

      expect([
        (await callApi(PROXY, client(1))).status,
        (await callApi(PROXY, client(1))).status,
        (await callApi(PROXY, client(1))).status,
      ]).to.deep.equal([401, 401, 429]);
      expect((await callApi(PROXY, client(2))).status).to.equal(401);
    });

    it('R13 a chain with a spoofed leftmost entry yields the real client: the rightmost address that is not a trusted proxy', async function () {
      // The client sent "X-Forwarded-For: <anything>"; an appending proxy chain added the real
      // client, then an inner proxy (10.0.0.0/8) its own hop.
      const real = '192.0.2.77';
      const statuses = [];
      for (const spoofed of ['198.51.100.10', '198.51.100.11', '198.51.100.12'])
        statuses.push((await register(PROXY, `${spoofed}, ${real}, 10.1.2.3`)).status);
      expect(statuses.slice(0, 2)).not.to.include(429);
      expect(statuses[2], 'one client, whatever it put first').to.equal(429);

      // The audit trail and the provider's own context see the same address.
      const { token } = await servers.deps.stores.initialAccessTokens.create({ note: 'R13 proxies' });
      const registered = await register(PROXY, `198.51.100.99, 192.0.2.78, 10.9.9.9`, { Authorization: `Bearer ${token}` });
      expect(registered.status, registered.body).to.equal(201);
      const clientId = (JSON.parse(registered.body) as { client_id: string }).client_id;
      // The audit event is written in the background: poll for it.
      await eventually(async () => {
        const event = await servers.deps
          .knex('audit_events')
          .where({ type: 'client.registered', client_id: clientId })
          .first<{ ip: string } | undefined>('ip');
        expect(event?.ip, 'the audited address').to.equal('192.0.2.78');
      });
    });

    it("R13 X-Request-Id is kept only from a trusted proxy; a direct caller's is replaced (auth and API)", async function () {
      for (const origin of [servers.issuer, servers.apiUrl]) {
        const fromProxy = await rawRequest(origin, { target: '/healthz', headers: { 'X-Request-Id': 'proxy-id-1' }, from: PROXY });
        expect(fromProxy.headers['x-request-id'], origin).to.equal('proxy-id-1');
        const direct = await rawRequest(origin, { target: '/healthz', headers: { 'X-Request-Id': 'forged-id-1' }, from: DIRECT });
        expect(direct.headers['x-request-id'], origin).to.match(/^[0-9a-f-]{36}$/);
      }
    });
  });
}

describe('R13 TRUST_PROXY=false (the default) and the registration flood of the review', function () {
  this.timeout(60_000);

  it('R13 without TRUST_PROXY, 32 POST /reg with rotating X-Forwarded-For get 429 from the 31st, as with a fixed one', async function () {
    const servers = await startTestServers({ env: { RATE_LIMIT_REGISTRATION_PER_IP: '30' } });
    try {
      const body = JSON.stringify({ client_name: 'x', redirect_uris: ['https://rp.example.test/cb'] });
      const statuses: number[] = [];
      for (let i = 1; i <= 32; i++) {
        const reply = await rawRequest(servers.issuer, {
          method: 'POST',
          target: '/reg',
          headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': `203.0.113.${i}` },
          body,
          from: '127.0.0.7',
        });
        statuses.push(reply.status);
      }
      expect(statuses.indexOf(429)).to.equal(30);
    } finally {
      await servers.stop();
    }
  });
});
