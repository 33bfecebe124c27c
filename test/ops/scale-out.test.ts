import { expect } from 'chai';
import * as client from 'openid-client';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { formOf } from '../helpers/browserless.ts';
import { Browserless, discover, startBalancer, startInstance, stopInstance, type Balancer, type Instance } from '../helpers/cluster.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { freePort, testConfigEnv } from '../helpers/servers.ts';

/**
 * Scale-out with three real processes: two auth instances (A, B) behind a tiny load balancer
 * that owns the public issuer URL, and one API instance; one Postgres database and one Redis
 * prefix. Each step is pinned to an instance so state provably crosses processes.
 */
describe('scale-out: two auth instances and an API on shared Postgres and Redis', function () {
  this.timeout(120_000);
  let deps: Deps;
  let a: Instance;
  let b: Instance;
  let api: Instance;
  let lb: Balancer;
  let issuer: string;
  let apiUrl: string;
  let rp: client.Configuration;
  let user: { email: string; password: string; id: string };
  const redirectUri = 'https://rp.example.test/cb';

  before(async function () {
    const [lbPort, apiPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${lbPort}`;
    apiUrl = `http://127.0.0.1:${apiPort}`;
    const shared = { ISSUER: issuer, API_URL: apiUrl };
    const config = loadConfig({ ...testConfigEnv(), ...shared });
    deps = await createDeps(config, { logger: createLogger(config) });
    user = await createTestUser(deps);
    const registered = await createTestClient(deps);
    // Both instances boot at once: first-start key creation must not race.
    [a, b, api] = await Promise.all([startInstance('auth', shared), startInstance('auth', shared), startInstance('api', shared, { port: apiPort })]);
    lb = await startBalancer(lbPort, { A: a.port, B: b.port });
    rp = await discover(issuer, registered.client_id, registered.client_secret!);
  });

  after(async function () {
    await lb.close();
    const codes = await Promise.all([a, b, api].map((i) => stopInstance(i)));
    await deps.close();
    expect(codes).to.deep.equal([0, 0, 0]);
  });

  const servedBy = (path: RegExp, method = 'GET') => lb.served.filter((s) => s.method === method && path.test(s.path)).map((s) => s.name);

  let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

  it('publishes identical discovery and JWKS on both instances', async function () {
    const get = async (instance: Instance, path: string) => (await fetch(`${instance.url}${path}`)).json() as Promise<unknown>;
    expect(await get(a, '/jwks')).to.deep.equal(await get(b, '/jwks'));
    const discovery = async (name: string) => {
      lb.pin(name);
      return (await fetch(`${issuer}/.well-known/openid-configuration`)).json() as Promise<unknown>;
    };
    expect(await discovery('A')).to.deep.equal(await discovery('B'));
  });

  it('finishes on B an interaction started on A, and redeems on A a code issued by B', async function () {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(rp, {
      redirect_uri: redirectUri,
      scope: 'openid offline_access records:read',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      prompt: 'consent',
      resource: apiUrl,
    });
    const browser = new Browserless(issuer);

    lb.pin('A');
    const start = await browser.follow(url);
    expect(start.url.pathname).to.match(/^\/interaction\//);
    const loginForm = formOf(await start.response.text(), '/login');
    expect(servedBy(/^\/interaction\//)).to.deep.equal(['A']);

    lb.pin('B');
    const afterLogin = await browser.submit(loginForm.action, { csrf: loginForm.csrf, email: user.email, password: user.password });
    const consentForm = formOf(await afterLogin.response.text(), '/confirm');
    const { url: callback } = await browser.submit(consentForm.action, { csrf: consentForm.csrf });
    expect(callback.origin + callback.pathname).to.equal(redirectUri);
    expect(callback.searchParams.get('code')).to.be.a('string');
    // The code came from B: the resumed authorization request was answered there.
    expect(servedBy(/^\/auth\/[^/]+$/).at(-1)).to.equal('B');
    expect(servedBy(/\/login$/, 'POST')).to.deep.equal(['B']);

    lb.pin('A');
    tokens = await client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: apiUrl });
    expect(servedBy(/^\/token$/, 'POST').at(-1)).to.equal('A');
    expect(tokens.refresh_token).to.be.a('string');

    // The API (its own process) verifies the JWT against the JWKS it fetches through the balancer.
    const me = await fetch(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).to.equal(200);
    expect(await me.json()).to.deep.include({ sub: user.id });
  });

  it('rotates refresh tokens on A then B; a revocation on B is seen by introspection on A', async function () {
    lb.pin('A');
    const first = await client.refreshTokenGrant(rp, tokens.refresh_token!);
    lb.pin('B');
    const second = await client.refreshTokenGrant(rp, first.refresh_token!);
    expect(servedBy(/^\/token$/, 'POST').slice(-2)).to.deep.equal(['A', 'B']);

    lb.pin('A');
    expect((await client.tokenIntrospection(rp, second.refresh_token!)).active).to.equal(true);
    expect((await client.tokenIntrospection(rp, second.access_token)).active).to.equal(true);

    lb.pin('B');
    await client.tokenRevocation(rp, second.refresh_token!);

    lb.pin('A');
    expect((await client.tokenIntrospection(rp, second.refresh_token!)).active).to.equal(false);
    // Revoking the refresh token revokes the grant, so its opaque access token dies too.
    expect((await client.tokenIntrospection(rp, second.access_token)).active).to.equal(false);
    const userinfo = await fetch(`${issuer}/me`, { headers: { Authorization: `Bearer ${second.access_token}` } });
    expect(userinfo.status).to.equal(401);
    let refused: unknown;
    try {
      await client.refreshTokenGrant(rp, second.refresh_token!);
    } catch (error) {
      refused = error;
    }
    expect((refused as client.ResponseBodyError).error).to.equal('invalid_grant');
  });
});
