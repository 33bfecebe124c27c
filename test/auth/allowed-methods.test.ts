import { expect } from 'chai';
import { createTestClient } from '../helpers/factories.ts';
import { headerOf, socketRequest } from '../helpers/raw-socket.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

/**
 * A path of ours asked with a method it does not answer gets 405 and `Allow` (RFC 9110 §15.5.6),
 * on both servers, as problem JSON or, for a browser, the friendly error page. Paths that belong
 * to oidc-provider are left to it.
 */
describe('405 Method Not Allowed on our routes', function () {
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  const call = (base: string, method: string, path: string, accept = 'application/json') =>
    fetch(`${base}${path}`, { method, headers: { Accept: accept }, redirect: 'manual' });

  it('answers 405 with Allow for another method on an interaction or account path (problem JSON)', async function () {
    for (const [method, path, allow] of [
      ['DELETE', '/account', 'GET'],
      ['PUT', '/account/totp', 'GET'],
      ['GET', '/interaction/some-uid/login', 'POST'],
      ['PATCH', '/interaction/some-uid', 'GET'],
    ] as const) {
      const response = await call(servers.issuer, method, path);
      expect(response.status, `${method} ${path}`).to.equal(405);
      expect(response.headers.get('Allow'), `${method} ${path}`).to.include(allow);
      expect(response.headers.get('Content-Type')).to.match(/^application\/problem\+json/);
      expect(((await response.json()) as { title: string }).title).to.equal('Method not allowed');
    }
  });

  it('shows a browser the friendly error page, with the security headers', async function () {
    const response = await call(servers.issuer, 'DELETE', '/account', 'text/html');
    expect(response.status).to.equal(405);
    expect(response.headers.get('Allow')).to.include('GET');
    expect(response.headers.get('Content-Type')).to.match(/^text\/html/);
    expect(response.headers.get('Content-Security-Policy')).to.be.a('string');
    expect(await response.text()).to.include('Method not allowed');
  });

  it('answers OPTIONS on our path with Allow and leaves the provider its own paths and methods', async function () {
    const options = await call(servers.issuer, 'OPTIONS', '/account');
    expect(options.status).to.equal(200);
    expect(options.headers.get('Allow')).to.include('GET');
    // The provider's paths keep the provider's answers (it routes privately, and answers 404 to a
    // method it does not serve); unknown paths are 404; unknown methods are not ours to refuse.
    expect((await call(servers.issuer, 'GET', '/token')).status).to.equal(404);
    expect((await call(servers.issuer, 'DELETE', '/no-such-page')).status).to.equal(404);
    expect((await call(servers.issuer, 'PROPFIND', '/jwks')).status).to.not.equal(501);
  });

  // Found by the R12 fuzz pass: koa-router answers a method it implements nowhere with 501, a
  // server error any client could raise (and that logs at error level) on a path that exists.
  it('R12 a method no route implements (TRACE, PROPFIND, SEARCH) on a path of ours is 405 with Allow, never 501', async function () {
    // The API routes only after the token check: a client credentials token gets the request there.
    const { client_id: id, client_secret: secret } = await createTestClient(servers.deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
    });
    const tokenResponse = await fetch(`${servers.issuer}/token`, {
      method: 'POST',
      headers: { Authorization: basicAuth(id, secret) },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: servers.apiUrl, scope: 'records:read' }),
    });
    const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
    for (const [base, path, allow] of [
      [servers.issuer, '/account/totp', 'GET'],
      [servers.issuer, '/interaction/some-uid/confirm', 'POST'],
      [servers.apiUrl, '/v1/records', 'GET'],
    ] as const) {
      const url = new URL(base);
      for (const method of ['TRACE', 'PROPFIND', 'SEARCH']) {
        const response = await socketRequest(Number(url.port), {
          method,
          target: path,
          headers: [
            ['Host', url.host],
            ['Accept', 'application/json'],
            ['Authorization', `Bearer ${token}`],
          ],
        });
        expect(response.status, `${method} ${path}`).to.equal(405);
        expect(headerOf(response, 'Allow'), `${method} ${path}`).to.include(allow);
        expect(headerOf(response, 'Content-Type')).to.match(/^application\/problem\+json/);
      }
    }
  });
});
