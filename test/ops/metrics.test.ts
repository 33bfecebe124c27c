import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import * as client from 'openid-client';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { freePort, startTestServers, type TestServers } from '../helpers/servers.ts';

/** Value of one sample line, e.g. `name{a="b"} 3`; labels are matched as a subset. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const found = new Map([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as const));
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}

/**
 * Prometheus metrics on a private listener (METRICS_PORT, loopback): HTTP durations by route
 * template and status on both servers, tokens by grant type, logins by factor and result, Node
 * process metrics; and nothing at /metrics on the public ports.
 */
describe('metrics', function () {
  let servers: TestServers;
  let metricsUrl: string;

  before(async function () {
    const port = await freePort();
    servers = await startTestServers({ env: { METRICS_PORT: String(port) } });
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
  });

  after(async function () {
    await servers.stop();
  });

  it('listens on loopback only, and not on the public ports', async function () {
    expect((servers.running.metricsServer!.address() as AddressInfo).address).to.equal('127.0.0.1');
    expect((await fetch(`${servers.issuer}/metrics`)).status).to.equal(404);
    expect((await fetch(`${servers.apiUrl}/metrics`)).status).to.equal(404);
  });

  it('counts requests by route template, tokens by grant type and logins by result', async function () {
    const user = await createTestUser(servers.deps);
    const registered = await createTestClient(servers.deps);
    const rp = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const authorization = () =>
      authorizationRequest(rp, { scope: 'openid offline_access records:read', prompt: 'consent', resource: servers.apiUrl });

    // One wrong password first.
    const wrong = new Browserless(servers.issuer);
    const { response } = await wrong.follow((await authorization()).url);
    const form = formOf(await response.text(), '/login');
    await wrong.submit(form.action, { csrf: form.csrf, email: user.email, password: 'not-the-password' });

    const { url, verifier } = await authorization();
    const callback = await signIn(new Browserless(servers.issuer), url, user);
    const tokens = await client.authorizationCodeGrant(
      rp,
      callback,
      { pkceCodeVerifier: verifier, expectedState: client.skipStateCheck },
      { resource: servers.apiUrl },
    );
    await client.refreshTokenGrant(rp, tokens.refresh_token!);
    expect((await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } })).status).to.equal(200);

    const scrape = await fetch(metricsUrl);
    expect(scrape.status).to.equal(200);
    expect(scrape.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const text = await scrape.text();

    expect(sample(text, 'portcullis_tokens_issued_total', { grant_type: 'authorization_code' })).to.equal(1);
    expect(sample(text, 'portcullis_tokens_issued_total', { grant_type: 'refresh_token' })).to.equal(1);
    expect(sample(text, 'portcullis_logins_total', { factor: 'password', result: 'success' })).to.equal(1);
    expect(sample(text, 'portcullis_logins_total', { factor: 'password', result: 'failure' })).to.equal(1);
    expect(sample(text, 'portcullis_oidc_events_total', { event: 'interaction.started' })).to.be.greaterThanOrEqual(2);

    const count = 'portcullis_http_request_duration_seconds_count';
    expect(sample(text, count, { server: 'auth', method: 'POST', route: 'oidc:token', status: '200' })).to.equal(2);
    expect(sample(text, count, { server: 'auth', method: 'GET', route: 'oidc:discovery', status: '200' })).to.equal(1);
    expect(sample(text, count, { server: 'api', method: 'GET', route: '/v1/me', status: '200' })).to.equal(1);
    expect(sample(text, count, { server: 'auth', method: 'GET', route: 'unmatched', status: '404' })).to.equal(1);
    // Route templates, never raw paths: no interaction uid or code leaks into a label.
    const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]!));
    expect([...routes].filter((r) => r.startsWith('/interaction/')).every((r) => r.includes(':'))).to.equal(true);
    expect(text).to.not.include(callback.searchParams.get('code')!);

    // Node process metrics.
    expect(sample(text, 'process_cpu_user_seconds_total', {})).to.be.a('number');
    expect(text).to.include('nodejs_eventloop_lag_seconds');
  });

  it('times adapter operations by model, operation and storage, and counts JWKS fetches as cache misses', async function () {
    const scrape = async () => (await fetch(metricsUrl)).text();
    const { token } = await signedInUser(servers, await createRp(servers));
    // The API has fetched the JWKS once already (the test above); both calls hit jose's cache.
    const fetchesBefore = sample(await scrape(), 'portcullis_jwks_fetches_total', { result: 'ok' });
    expect(fetchesBefore).to.equal(1);
    expect((await call(servers, 'GET', '/v1/me', token)).status).to.equal(200);
    expect((await call(servers, 'GET', '/v1/me', token)).status).to.equal(200);
    expect((await call(servers, 'GET', '/v1/me', 'not.a.token')).status).to.equal(401);
    const text = await scrape();
    expect(sample(text, 'portcullis_jwks_fetches_total', { result: 'ok' })).to.equal(1);
    expect(sample(text, 'portcullis_jwt_verifications_total', { result: 'valid' })).to.equal(3);
    expect(sample(text, 'portcullis_jwt_verifications_total', { result: 'invalid' })).to.equal(1);

    const count = 'portcullis_adapter_operation_duration_seconds_count';
    for (const [model, operation] of [
      ['Session', 'upsert'],
      ['Session', 'find'],
      ['AuthorizationCode', 'upsert'],
      ['AuthorizationCode', 'consume'],
      ['RefreshToken', 'upsert'],
      ['Grant', 'upsert'],
      ['Interaction', 'find'],
      ['Client', 'find'],
    ]) {
      expect(
        sample(text, count, { model: model!, operation: operation!, storage: model === 'Client' ? 'postgres' : 'redis' }),
        `${model} ${operation}`,
      ).to.be.greaterThan(0);
    }
    const sum = sample(text, 'portcullis_adapter_operation_duration_seconds_sum', {
      model: 'Session',
      operation: 'find',
      storage: 'redis',
    });
    expect(sum).to.be.greaterThan(0).and.lessThan(60);
  });
});

describe('example Grafana dashboard', function () {
  it('parses and only queries metrics the servers export', async function () {
    const { readFile } = await import('node:fs/promises');
    const dashboard = JSON.parse(await readFile(new URL('../../docker/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const names = new Set(
      dashboard.panels.flatMap((p) =>
        p.targets.flatMap((t) => [...t.expr.matchAll(/\b((?:portcullis|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!)),
      ),
    );
    expect(names.size).to.be.greaterThan(5);
    const port = await freePort();
    const servers = await startTestServers({ env: { METRICS_PORT: String(port) } });
    try {
      await fetch(`${servers.issuer}/.well-known/openid-configuration`);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const exported = new Set(
        [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) =>
          m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_count`, `${m[1]}_sum`] : [m[1]!],
        ),
      );
      for (const name of names) expect(exported, name).to.include(name);
    } finally {
      await servers.stop();
    }
  });
});
