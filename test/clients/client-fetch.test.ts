import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import fetchBodyCheck from 'oidc-provider/lib/helpers/fetch_body_check.js';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import { buildProviderConfiguration } from '../../src/auth/provider-config.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { AccountService } from '../../src/services/accounts.ts';
import type { Adapter } from '../../src/store/oidc-adapter.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

/** At most this much is ever served by the test server (the "endless" body is bounded, as tests must be). */
const SERVED_AT_MOST = 256 * 1024 * 1024;
const CHUNK = Buffer.alloc(1024 * 1024, 0x20);

/**
 * R15: the documents oidc-provider fetches for clients — a private_key_jwt client's `jwks_uri`,
 * a `sector_identifier_uri` — had no size limit (oidc-provider's default is Infinity): a client
 * could point one at an endless body and the server buffered it whole. These drive the provider's
 * own fetch path (its configured `fetch`, then its body check) against a local server. Its SSRF
 * dispatcher, which refuses loopback addresses, is the one part left out: with it no local
 * server can be reached (test/unit/internal-host.test.ts and registration cover that layer).
 */
describe('R15 client documents (jwks_uri, sector_identifier_uri) are fetched with a size and time limit', function () {
  this.timeout(30_000);
  let server: Server;
  let base: string;
  let provider: Provider;
  /** Bytes the server wrote for each path, and whether the client went away. */
  const served = new Map<string, { bytes: number; closed: boolean }>();

  function endless(path: string, res: ServerResponse, declared?: number): void {
    const state = { bytes: 0, closed: false };
    served.set(path, state);
    res.writeHead(200, { 'Content-Type': 'application/json', ...(declared ? { 'Content-Length': String(declared) } : {}) });
    res.on('close', () => {
      state.closed = true;
    });
    const pump = (): void => {
      while (!state.closed && state.bytes < SERVED_AT_MOST) {
        state.bytes += CHUNK.length;
        if (!res.write(CHUNK)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!state.closed) res.end();
    };
    res.write('{"keys":[');
    pump();
  }

  before(async function () {
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      if (path.startsWith('/endless')) {
        endless(path, res);
        return;
      }
      if (path.startsWith('/declared')) {
        endless(path, res, SERVED_AT_MOST);
        return;
      }
      if (path.startsWith('/trickle')) {
        const state = { bytes: 0, closed: false };
        served.set(path, state);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const timer = setInterval(() => {
          state.bytes += 1;
          res.write(' ');
        }, 100);
        res.on('close', () => {
          state.closed = true;
          clearInterval(timer);
        });
        // Bounded: the server gives up after 20 s whatever happens.
        setTimeout(() => res.destroy(), 20_000).unref();
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const config = loadConfig({ ...testConfigEnv(), ISSUER: 'https://auth.example.test', API_URL: 'https://api.example.test' });
    const configuration: Configuration = buildProviderConfiguration({
      config,
      accounts: {} as AccountService,
      adapter: () => ({}) as Adapter,
      jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'k', alg: 'ES256', use: 'sig' }] },
      cookieKeys: ['k'.repeat(32)],
    });
    provider = new Provider(config.issuer, configuration);
  });

  after(async function () {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** What lib/helpers/fetch_request.js and lib/models/client.js do: the configured fetch, then the purpose's body check. */
  async function fetchAsTheProvider(purpose: string, path: string, signal: AbortSignal | null = AbortSignal.timeout(2500)) {
    const { fetch } = (instance(provider) as { configuration: { fetch: typeof globalThis.fetch } }).configuration;
    const headers = new Headers({ Accept: 'application/json', 'user-agent': '' });
    const startedAt = Date.now();
    try {
      const response = await fetch(`${base}${path}`, { method: 'GET', headers, ...(signal ? { signal } : {}) });
      const body = await fetchBodyCheck(provider, purpose, response);
      return { ms: Date.now() - startedAt, outcome: `read ${body.length} bytes` };
    } catch (error) {
      return { ms: Date.now() - startedAt, outcome: (error as Error).message };
    }
  }

  /** Fails unless the test server sees the connection for `path` closed within `ms`. */
  async function closedWithin(path: string, ms: number, label = path): Promise<void> {
    await eventually(() => expect(served.get(path)?.closed, `${label}: connection closed`).to.equal(true), { timeoutMs: ms });
  }

  it('R15 an endless jwks_uri or sector_identifier_uri body is cut at 64 KiB: refused at once, the connection closed, a few MiB served at most', async function () {
    for (const purpose of ['jwks_uri', 'sector_identifier_uri']) {
      const path = `/endless/${purpose}`;
      const { ms, outcome } = await fetchAsTheProvider(purpose, path);
      expect(outcome, `${purpose} after ${ms} ms, ${served.get(path)?.bytes} bytes served`).to.match(/response too large/);
      expect(ms, purpose).to.be.below(1000);
      await closedWithin(path, 2000, purpose);
      // What sat in socket buffers when the reader stopped, not the 256 MiB on offer.
      expect(served.get(path)?.bytes, purpose).to.be.below(32 * 1024 * 1024);
    }
  });

  it('R15 a Content-Length over the limit is refused before the body is read', async function () {
    const { ms, outcome } = await fetchAsTheProvider('jwks_uri', '/declared');
    expect(outcome).to.match(/response too large/);
    expect(ms).to.be.below(1000);
    await closedWithin('/declared', 2000);
  });

  it("R15 a body that trickles is cut at the deadline, even when the caller set none (the provider's 2.5 s is not the only bound)", async function () {
    const { ms, outcome } = await fetchAsTheProvider('jwks_uri', '/trickle', null);
    expect(outcome).to.equal('The operation was aborted due to timeout');
    expect(ms).to.be.within(2000, 4000);
    await closedWithin('/trickle', 2000);
  });
});
