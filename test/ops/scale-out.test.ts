import { expect } from 'chai';
import * as client from 'openid-client';
import { generate } from 'otplib';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { formOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { Browserless, discover, startBalancer, startInstance, stopInstance, type Balancer, type Instance } from '../helpers/cluster.ts';
import { runNode } from '../helpers/process.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { oauthErrorOf } from '../helpers/rejections.ts';
import { freePort, testConfigEnv } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

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
  let shared: Record<string, string>;

  before(async function () {
    const [lbPort, apiPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${lbPort}`;
    apiUrl = `http://127.0.0.1:${apiPort}`;
    // Keys are re-read (and the schedule advanced) every second; a rotated key waits an hour
    // before it signs, unless the test moves its publication back (the key-rotation test).
    shared = { ISSUER: issuer, API_URL: apiUrl, KEYS_REFRESH_SECONDS: '1', KEY_ACTIVATE_AFTER: '3600' };
    const config = loadConfig({ ...testConfigEnv(), ...shared });
    deps = await createDeps(config, { logger: createLogger(config) });
    user = await createTestUser(deps);
    const registered = await createTestClient(deps);
    // Both instances boot at once: first-start key creation must not race.
    [a, b, api] = await Promise.all([
      startInstance('auth', shared),
      startInstance('auth', shared),
      startInstance('api', shared, { port: apiPort }),
    ]);
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
    const { url, verifier, state } = await authorizationRequest(rp, {
      scope: 'openid offline_access records:read',
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
    expect(callback.origin + callback.pathname).to.equal(RP_REDIRECT);
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
    expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, second.refresh_token!))).to.equal('invalid_grant');
  });

  it('shares the second-factor lockout: failures on A and B add up, the right code is then refused on either', async function () {
    const mfaUser = await createTestUser(deps);
    const enrollment = await deps.mfa.totp.begin(mfaUser.id, mfaUser.email, 'test');
    if (!enrollment) throw new Error('no TOTP enrollment');
    await deps.mfa.totp.confirm(mfaUser.id, await generate({ secret: enrollment.secret }), 'test');
    const { url } = await authorizationRequest(rp);
    const browser = new Browserless(issuer);
    lb.pin('A');
    const start = await browser.follow(url);
    const login = formOf(await start.response.text(), '/login');
    let page = await (
      await browser.submit(login.action, { csrf: login.csrf, email: mfaUser.email, password: mfaUser.password })
    ).response.text();
    expect(page).to.contain('Code from your authenticator app');
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      lb.pin(attempt % 2 === 0 ? 'B' : 'A');
      const form = formOf(page, '/mfa/totp');
      page = await (await browser.submit(form.action, { csrf: form.csrf, code: '000000' })).response.text();
      outcomes.push(page.includes('Too many attempts') ? 'locked' : 'wrong');
    }
    // LOCKOUT_SECOND_FACTOR_MAX_FAILURES (5) failures spread over both instances lock the account.
    expect(outcomes).to.deep.equal(['wrong', 'wrong', 'wrong', 'wrong', 'locked']);
    for (const name of ['A', 'B']) {
      lb.pin(name);
      const form = formOf(page, '/mfa/totp');
      page = await (
        await browser.submit(form.action, { csrf: form.csrf, code: await generate({ secret: enrollment.secret }) })
      ).response.text();
      expect(page, name).to.contain('Too many attempts');
    }
    expect(servedBy(/\/mfa\/totp$/, 'POST')).to.deep.equal(['B', 'A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('rotates signing keys via the CLI: published by both instances before signing, old and new tokens accepted by the API', async function () {
    this.timeout(120_000);
    const cli = async (...args: string[]) => {
      const result = await runNode(['src/cli.ts', 'keys', ...args], { ...testConfigEnv(), ...shared });
      return { ...result, json: result.code === 0 ? (JSON.parse(result.stdout) as unknown) : undefined };
    };
    type Key = { kid: string; alg: string; state: string; signing: boolean };
    const kidOf = (jwt: string): string => (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const jwksKids = async (instance: Instance) =>
      ((await (await fetch(`${instance.url}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const callApi = async (token: string) => (await fetch(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${token}` } })).status;

    const before = (await cli('list')).json as Key[];
    const oldSigner = (alg: string) => before.find((k) => k.alg === alg && k.signing)!.kid;

    // A token from the old keys, through a fresh login.
    lb.pin(undefined);
    const { url, verifier } = await authorizationRequest(rp, {
      scope: 'openid offline_access records:read',
      prompt: 'consent',
      resource: apiUrl,
    });
    const callback = await signIn(new Browserless(issuer), url, user);
    const old = await client.authorizationCodeGrant(
      rp,
      callback,
      { pkceCodeVerifier: verifier, expectedState: client.skipStateCheck },
      { resource: apiUrl },
    );
    expect(kidOf(old.access_token)).to.equal(oldSigner('ES256'));
    expect(kidOf(old.id_token!)).to.equal(oldSigner('RS256'));

    const rotatedAt = Date.now();
    const rotated = await cli('rotate');
    expect(rotated.code, rotated.stderr).to.equal(0);
    const published = (rotated.json as { published: Key[] }).published;
    expect(published.map((k) => k.alg)).to.have.members(['ES256', 'RS256', 'EdDSA']);
    expect(published.every((k) => k.state === 'next' && !k.signing)).to.equal(true);
    const newKid = (alg: string) => published.find((k) => k.alg === alg)!.kid;
    // A second rotation while keys wait is refused.
    const again = await cli('rotate');
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/already published and waiting to sign/);

    // Both instances publish the new keys without a restart, before they sign.
    for (const instance of [a, b])
      await eventually(async () => expect(await jwksKids(instance)).to.include.members(published.map((k) => k.kid)), {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: `${instance.url} publishes the new keys`,
      });
    const publishedAfter = Date.now() - rotatedAt;
    let refreshed: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers = old;
    for (const name of ['A', 'B']) {
      lb.pin(name);
      refreshed = await client.refreshTokenGrant(rp, refreshed.refresh_token!, { resource: apiUrl });
      expect(kidOf(refreshed.access_token), `${name} signs with the old key while the new one waits`).to.equal(oldSigner('ES256'));
    }

    // KEY_ACTIVATE_AFTER passes: every key's history moves an hour back (as if that hour had gone
    // by; which key is newest stays as it was). Both sign with the new keys at their next schedule
    // step; the old ones stay published.
    await deps.knex('signing_keys').update({
      created_at: deps.knex.raw("created_at - interval '3601 seconds'"),
      activated_at: deps.knex.raw("activated_at - interval '3601 seconds'"),
      retired_at: deps.knex.raw("retired_at - interval '3601 seconds'"),
    });
    for (const name of ['A', 'B']) {
      lb.pin(name);
      refreshed = await eventually(
        async () => {
          refreshed = await client.refreshTokenGrant(rp, refreshed.refresh_token!, { resource: apiUrl });
          expect(kidOf(refreshed.access_token), `${name} signs with the new key`).to.equal(newKid('ES256'));
          return refreshed;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      expect(kidOf(refreshed.id_token!)).to.equal(newKid('RS256'));
    }
    const signingAfter = Date.now() - rotatedAt;
    for (const instance of [a, b]) expect(await jwksKids(instance)).to.include.members([oldSigner('ES256'), newKid('ES256')]);

    // The API accepts tokens signed by the new key (it refetches the JWKS on an unknown kid,
    // at most every 30 s) and still those signed by the old one.
    await eventually(async () => expect(await callApi(refreshed.access_token), 'the API on a token with the new key').to.equal(200), {
      timeoutMs: 45_000,
      intervalMs: 500,
    });
    const apiAcceptedAfter = Date.now() - rotatedAt;
    expect(await callApi(old.access_token)).to.equal(200);

    // Retiring the superseded key early is refused while its tokens may live, then forced.
    const refused = await cli('retire', oldSigner('ES256'));
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/may be valid for \d+ more seconds/);
    expect((await cli('retire', newKid('ES256'))).stderr).to.match(/current ES256 signing key/);
    const retired = await cli('retire', oldSigner('ES256'), '--force');
    expect(retired.code, retired.stderr).to.equal(0);
    for (const instance of [a, b])
      await eventually(async () => expect(await jwksKids(instance)).to.not.include(oldSigner('ES256')), {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: `${instance.url} stops publishing the retired key`,
      });

    const after = (await cli('list')).json as Key[];
    expect(after.find((k) => k.kid === oldSigner('ES256'))).to.include({ state: 'retired', signing: false });
    expect(after.find((k) => k.kid === newKid('ES256'))).to.include({ state: 'active', signing: true });
    expect(after.find((k) => k.kid === oldSigner('RS256'))).to.include({ state: 'active', signing: false });
    process.stdout.write(
      `      published on both after ${publishedAfter} ms, signing on both after ${signingAfter} ms, API accepted new key after ${apiAcceptedAfter} ms\n`,
    );
  });
});
