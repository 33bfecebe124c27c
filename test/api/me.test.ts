import { expect } from 'chai';
import type * as client from 'openid-client';
import { call, createRp, openApiChecker, signedInUser } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

describe('resource API: GET /v1/me', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let rp: client.Configuration;
  let conforms: Awaited<ReturnType<typeof openApiChecker>>;

  before(async function () {
    servers = await startTestServers();
    rp = await createRp(servers);
    conforms = await openApiChecker(servers);
  });
  after(async function () {
    await servers.stop();
  });

  it('answers who the token speaks for: sub, scope, roles and permissions', async function () {
    const user = await signedInUser(servers, rp, { roles: ['user'], scopes: 'records:read' });
    const res = await call(servers, 'GET', '/v1/me', user.token);
    expect(res.status, res.text).to.equal(200);
    expect(res.body).to.deep.include({ sub: user.id, scope: 'records:read', roles: ['user'] });
    expect((res.body as { permissions: string[] }).permissions).to.deep.equal([
      'profile:read',
      'records:read',
      'records:share',
      'records:write',
    ]);
    expect(res.headers.get('Cache-Control')).to.equal('no-store');
    conforms('GET', '/v1/me', res);
  });

  it('refuses a missing token with 401 and a Bearer challenge', async function () {
    const res = await call(servers, 'GET', '/v1/me');
    expect(res.status).to.equal(401);
    expect(res.headers.get('WWW-Authenticate')).to.match(/^Bearer /);
    expect(res.headers.get('Content-Type')).to.match(/^application\/problem\+json/);
    conforms('GET', '/v1/me', res);
  });
});

describe('resource API: CORS for browser SPAs', function () {
  this.timeout(60_000);
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers({ env: { CORS_ORIGINS: 'https://spa.example.test' } });
  });
  after(async function () {
    await servers.stop();
  });

  const preflight = (origin: string) =>
    fetch(`${servers.apiUrl}/v1/records`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
    });

  it('allows only the configured origins, and exposes WWW-Authenticate', async function () {
    const allowed = await preflight('https://spa.example.test');
    expect(allowed.status).to.equal(204);
    expect(allowed.headers.get('Access-Control-Allow-Origin')).to.equal('https://spa.example.test');
    expect(allowed.headers.get('Access-Control-Allow-Headers')).to.match(/Authorization/i);
    const denied = await preflight('https://evil.example.test');
    expect(denied.headers.get('Access-Control-Allow-Origin')).to.equal(null);
    const actual = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Origin: 'https://spa.example.test' } });
    expect(actual.status).to.equal(401);
    expect(actual.headers.get('Access-Control-Allow-Origin')).to.equal('https://spa.example.test');
    expect(actual.headers.get('Access-Control-Expose-Headers')).to.match(/WWW-Authenticate/);
  });
});
