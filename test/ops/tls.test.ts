import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as client from 'openid-client';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { startServers, type Running } from '../../src/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { agentFetch, type TlsFetch } from '../../src/shared/tls.ts';
import { createTestClient } from '../helpers/factories.ts';
import { freePort, testConfigEnv } from '../helpers/servers.ts';

type Pki = {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  strangerCert: string;
  strangerKey: string;
};

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and client certificates, in a temp dir (never committed). */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const issue = (name: string, cn: string, ca: string, caKey: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, 'req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
  };
  for (const ca of ['ca', 'stranger-ca'])
    openssl(dir, 'req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '1', '-subj', `/CN=${ca}`);
  issue('server', 'localhost', 'ca.crt', 'ca.key', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  issue('client', 'portcullis-api', 'ca.crt', 'ca.key', 'extendedKeyUsage=clientAuth\n');
  issue('stranger', 'portcullis-api', 'stranger-ca.crt', 'stranger-ca.key', 'extendedKeyUsage=clientAuth\n');
  const at = (file: string) => join(dir, file);
  return {
    dir,
    ca: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    strangerCert: at('stranger.crt'),
    strangerKey: at('stranger.key'),
  };
}

/**
 * The servers terminate TLS themselves (TLS_CERT_FILE/TLS_KEY_FILE), and the API fetches the
 * issuer's JWKS over mTLS from the auth server's internal listener (AUTH_INTERNAL_PORT), which
 * refuses any client without a certificate from TLS_CLIENT_CA_FILE at the handshake.
 */
describe('TLS termination and mTLS from the API to the auth server', function () {
  this.timeout(60_000);
  let pki: Pki;
  let deps: Deps;
  let running: Running;
  let issuer: string;
  let apiUrl: string;
  let internalUrl: string;
  let trusting: TlsFetch;

  before(async function () {
    pki = makePki();
    const dir = pki.dir;
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    trusting = agentFetch(new Agent({ ca: readFileSync(pki.ca) }));
    const [authPort, apiPort, internalPort] = [await freePort(), await freePort(), await freePort()];
    issuer = `https://localhost:${authPort}`;
    apiUrl = `https://127.0.0.1:${apiPort}`;
    internalUrl = `https://127.0.0.1:${internalPort}`;
    const config = loadConfig({
      ...testConfigEnv(),
      ISSUER: issuer,
      AUTH_PORT: String(authPort),
      API_URL: apiUrl,
      API_PORT: String(apiPort),
      HOST: '127.0.0.1',
      TLS_CERT_FILE: pki.serverCert,
      TLS_KEY_FILE: pki.serverKey,
      TLS_CLIENT_CA_FILE: pki.ca,
      AUTH_INTERNAL_PORT: String(internalPort),
      JWKS_URL: `${internalUrl}/jwks`,
      API_CLIENT_CERT_FILE: pki.clientCert,
      API_CLIENT_KEY_FILE: pki.clientKey,
      API_CA_FILE: pki.ca,
    });
    deps = await createDeps(config, { logger: createLogger(config) });
    cleanup.push(() => deps.close());
    running = await startServers(deps, ['auth', 'api']);
    cleanup.push(() => running.stop(1000));
  });

  const cleanup: (() => Promise<void> | void)[] = [];
  after(async function () {
    for (const step of cleanup.reverse()) await step();
  });

  it('serves discovery, /healthz and /readyz over HTTPS with the configured certificate, and no plain HTTP', async function () {
    const discovery = await trusting(`${issuer}/.well-known/openid-configuration`, {});
    expect(discovery.status).to.equal(200);
    expect(((await discovery.json()) as { issuer: string }).issuer).to.equal(issuer);
    for (const base of [issuer, apiUrl]) {
      expect((await trusting(`${base}/healthz`, {})).status, `${base}/healthz`).to.equal(200);
      expect((await trusting(`${base}/readyz`, {})).status, `${base}/readyz`).to.equal(200);
    }
    // Without our CA the certificate is not trusted (a real check, not rejectUnauthorized: false).
    const untrusted = await fetch(`${apiUrl}/healthz`).then(
      () => 'ok',
      (error: unknown) => String((error as { cause?: unknown }).cause ?? error),
    );
    expect(untrusted).to.match(/certificate|self.signed|issuer/i);
    const plain = await fetch(`${apiUrl.replace('https:', 'http:')}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).to.not.equal(200);
  });

  it('the API validates a token with the JWKS fetched over mTLS from the internal listener', async function () {
    const registered = await createTestClient(deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      scope: 'records:read',
    });
    const rp = await client.discovery(new URL(issuer), registered.client_id, registered.client_secret, undefined, {
      [client.customFetch]: (url, options) =>
        trusting(url, {
          method: options.method,
          headers: options.headers,
          body: typeof options.body === 'string' || options.body instanceof URLSearchParams ? options.body : null,
        }),
    });
    const tokens = await client.clientCredentialsGrant(rp, { resource: apiUrl, scope: 'records:read' });
    const handshakes: { authorized: boolean; cn: unknown }[] = [];
    running.internalServer?.on('secureConnection', (socket: TLSSocket) =>
      handshakes.push({ authorized: socket.authorized, cn: socket.getPeerCertificate().subject.CN }),
    );
    const me = await trusting(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status, await me.clone().text()).to.equal(200);
    expect(handshakes).to.deep.include({ authorized: true, cn: 'portcullis-api' });
  });

  it('the internal listener refuses a client without a certificate, or with one from another CA', async function () {
    const attempts: [string, TlsFetch][] = [
      ['no certificate', trusting],
      [
        'another CA',
        agentFetch(new Agent({ ca: readFileSync(pki.ca), cert: readFileSync(pki.strangerCert), key: readFileSync(pki.strangerKey) })),
      ],
    ];
    for (const [label, fetcher] of attempts) {
      const outcome = await fetcher(`${internalUrl}/jwks`, {}).then(
        (r) => r.status,
        (error: unknown) => (error as Error).message,
      );
      expect(outcome, label)
        .to.be.a('string')
        .and.match(/certificate|alert|socket hang up|ECONNRESET/i);
    }
    const withCert = agentFetch(
      new Agent({ ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }),
    );
    expect((await withCert(`${internalUrl}/jwks`, {})).status).to.equal(200);
    // The public listener never asks for a certificate: /jwks stays public for relying parties.
    expect((await trusting(`${issuer}/jwks`, {})).status).to.equal(200);
  });

  it('R13 the internal listener ignores X-Forwarded-For, even from an address TRUST_PROXY names', async function () {
    const [authPort, internalPort] = [await freePort(), await freePort()];
    const config = loadConfig({
      ...testConfigEnv(),
      ISSUER: `https://localhost:${authPort}`,
      AUTH_PORT: String(authPort),
      HOST: '127.0.0.1',
      TLS_CERT_FILE: pki.serverCert,
      TLS_KEY_FILE: pki.serverKey,
      TLS_CLIENT_CA_FILE: pki.ca,
      AUTH_INTERNAL_PORT: String(internalPort),
      // Loopback is "the proxy" here, and the API calls the internal listener from loopback too.
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_METADATA_PER_IP: '2',
    });
    const ownDeps = await createDeps(config, { logger: createLogger(config) });
    const own = await startServers(ownDeps, ['auth']).catch(async (error: unknown) => {
      await ownDeps.close();
      throw error;
    });
    try {
      const withCert = agentFetch(
        new Agent({ ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }),
      );
      const jwks = async (fetcher: TlsFetch, base: string, client: string) =>
        (await fetcher(`${base}/jwks`, { headers: { 'X-Forwarded-For': client } })).status;
      // The public listener: loopback is a trusted proxy, so each forwarded client has its own budget.
      const viaProxy = [];
      for (let i = 1; i <= 3; i++) viaProxy.push(await jwks(trusting, `https://127.0.0.1:${authPort}`, `203.0.113.${i}`));
      expect(viaProxy).to.deep.equal([200, 200, 200]);
      // The internal listener: the caller's own address, whatever it forwards.
      const internal = [];
      for (let i = 1; i <= 3; i++) internal.push(await jwks(withCert, `https://127.0.0.1:${internalPort}`, `198.51.100.${i}`));
      expect(internal).to.deep.equal([200, 200, 429]);
    } finally {
      await own.stop(1000);
      await ownDeps.close();
    }
  });

  it('refuses to boot with only one of a certificate/key pair, naming the missing variable', function () {
    const problemsOf = (env: Record<string, string>): string[] => {
      try {
        loadConfig({ ...testConfigEnv(), ...env });
        return [];
      } catch (error) {
        return error instanceof ConfigError ? error.problems : [String(error)];
      }
    };
    expect(problemsOf({ TLS_CERT_FILE: pki.serverCert })).to.include('TLS_KEY_FILE: must be set together with TLS_CERT_FILE');
    expect(problemsOf({ TLS_KEY_FILE: pki.serverKey })).to.include('TLS_CERT_FILE: must be set together with TLS_KEY_FILE');
    expect(problemsOf({ API_CLIENT_KEY_FILE: pki.clientKey })).to.include(
      'API_CLIENT_CERT_FILE: must be set together with API_CLIENT_KEY_FILE',
    );
    expect(problemsOf({ AUTH_INTERNAL_PORT: '9999', TLS_CERT_FILE: pki.serverCert, TLS_KEY_FILE: pki.serverKey })[0]).to.match(
      /^AUTH_INTERNAL_PORT: needs/,
    );
    // The real entry point prints it and exits 1.
    const boot = spawnSync(process.execPath, ['src/main.ts'], {
      env: { ...process.env, ...testConfigEnv(), TLS_CERT_FILE: pki.serverCert },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(boot.status).to.equal(1);
    expect(boot.stderr).to.include('config error: TLS_KEY_FILE: must be set together with TLS_CERT_FILE');
  });
});
