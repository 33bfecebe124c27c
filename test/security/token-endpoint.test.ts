import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { ageStored } from '../helpers/aging.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

type Registered = { client_id: string; client_secret: string };
type TestUser = Awaited<ReturnType<typeof createTestUser>>;
type Reply = { status: number; headers: Headers; body: Record<string, unknown>; text: string };

const callback = 'https://rp.example.test/cb';
const otherCallback = 'https://rp.example.test/cb2';

async function register(servers: TestServers, metadata: Record<string, unknown> = {}): Promise<Registered> {
  const registered = await createTestClient(servers.deps, metadata);
  if (!registered.client_secret) throw new Error('expected a confidential client');
  return { client_id: registered.client_id, client_secret: registered.client_secret };
}

/** A raw form POST with client_secret_basic, so every parameter (or its absence) is ours to choose. */
async function post(
  servers: TestServers,
  path: string,
  as: Registered,
  form: Record<string, string>,
  authorization?: string,
): Promise<Reply> {
  const response = await fetch(`${servers.issuer}${path}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: authorization ?? basicAuth(as.client_id, as.client_secret),
    },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

const redeem = (servers: TestServers, as: Registered, form: Record<string, string>): Promise<Reply> =>
  post(servers, '/token', as, { grant_type: 'authorization_code', ...form });

const refresh = (servers: TestServers, as: Registered, refreshToken: string, extra: Record<string, string> = {}): Promise<Reply> =>
  post(servers, '/token', as, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });

async function introspect(servers: TestServers, as: Registered, token: string): Promise<boolean> {
  const reply = await post(servers, '/token/introspection', as, { token });
  expect(reply.status, reply.text).to.equal(200);
  return reply.body.active === true;
}

/** A refused grant: the error code, and never a token in the body. */
function expectRefused(reply: Reply, errors: string[], label = ''): void {
  expect(reply.status, `${label} ${reply.text}`).to.equal(400);
  expect(errors, `${label} ${reply.text}`).to.include(reply.body.error);
  expect(reply.body, label).to.not.have.any.keys('access_token', 'refresh_token', 'id_token');
}

type Authorized = { code: string; verifier: string; redirectUri: string; browser: Browserless };

/**
 * Authorization code + PKCE through the real login and consent pages (no access tokens are
 * requested for the API, so the access token is opaque and the server can revoke it).
 */
async function authorize(
  servers: TestServers,
  as: Registered,
  user: TestUser,
  options: { redirectUri?: string; scope?: string; browser?: Browserless } = {},
): Promise<Authorized> {
  const redirectUri = options.redirectUri ?? callback;
  const { url, verifier } = authorizationRequestTo(servers.issuer, as.client_id, {
    redirect_uri: redirectUri,
    scope: options.scope ?? 'openid offline_access',
    prompt: 'consent',
    state: 'st',
  });
  const browser = options.browser ?? new Browserless(servers.issuer);
  const back = await signIn(browser, url, user);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back.href}`);
  return { code, verifier, redirectUri, browser };
}

/** The token response of a successful redemption. */
async function tokensFor(
  servers: TestServers,
  as: Registered,
  authorized: Authorized,
): Promise<{ access_token: string; refresh_token: string }> {
  const reply = await redeem(servers, as, {
    code: authorized.code,
    code_verifier: authorized.verifier,
    redirect_uri: authorized.redirectUri,
  });
  expect(reply.status, reply.text).to.equal(200);
  return reply.body as { access_token: string; refresh_token: string };
}

/**
 * docs/security.md "Token endpoint — codes & PKCE" and "Refresh tokens": each test drives the
 * real authorization server (our configuration, Redis or Postgres storage) over HTTP.
 */
describe('token endpoint abuse (docs/security.md T16–T22, T27, T28)', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let a: Registered;
  let b: Registered;
  let user: TestUser;

  before(async function () {
    servers = await startTestServers();
    // Two registered redirect URIs: redirect_uri may then never be omitted at the token endpoint.
    a = await register(servers, { redirect_uris: [callback, otherCallback] });
    b = await register(servers);
    user = await createTestUser(servers.deps);
  });

  after(async function () {
    await servers.stop();
  });

  it("T17 a code issued to client A is refused with client B's valid credentials", async function () {
    const authorized = await authorize(servers, a, user);
    const stolen = await redeem(servers, b, { code: authorized.code, code_verifier: authorized.verifier, redirect_uri: callback });
    expectRefused(stolen, ['invalid_grant']);
  });

  it("T18 redirect_uri at the token endpoint must equal the authorization request's, and may not be omitted", async function () {
    const authorized = await authorize(servers, a, user);
    const base = { code: authorized.code, code_verifier: authorized.verifier };
    expectRefused(await redeem(servers, a, { ...base, redirect_uri: otherCallback }), ['invalid_grant'], 'other registered uri');
    expectRefused(await redeem(servers, a, { ...base, redirect_uri: `${callback}/` }), ['invalid_grant'], 'trailing slash');
    expectRefused(await redeem(servers, a, base), ['invalid_request', 'invalid_grant'], 'omitted with two registered');
  });

  it('T19 a missing, wrong or malformed code_verifier gets no token', async function () {
    const authorized = await authorize(servers, a, user);
    const base = { code: authorized.code, redirect_uri: callback };
    expectRefused(await redeem(servers, a, base), ['invalid_grant'], 'omitted');
    expectRefused(await redeem(servers, a, { ...base, code_verifier: client.randomPKCECodeVerifier() }), ['invalid_grant'], 'wrong');
    // RFC 7636 §4.1: 43–128 characters.
    expectRefused(
      await redeem(servers, a, { ...base, code_verifier: authorized.verifier.slice(0, 42) }),
      ['invalid_grant', 'invalid_request'],
      '42 chars',
    );
    expectRefused(
      await redeem(servers, a, { ...base, code_verifier: `${authorized.verifier}=` }),
      ['invalid_grant', 'invalid_request'],
      'bad char',
    );
    // oidc-provider checks the verifier before it consumes the code: failed attempts (which
    // cannot guess 256 random bits) do not burn the legitimate client's code.
    await tokensFor(servers, a, authorized);
  });

  it('T20 PKCE downgrade: no challenge at /auth is refused, and a verifier for a challenge-less code is refused', async function () {
    // (a) Every client must send a challenge (pkce.required for all): an error redirect, no code.
    const url = new URL('/auth', servers.issuer);
    url.search = new URLSearchParams({
      client_id: a.client_id,
      response_type: 'code',
      redirect_uri: callback,
      scope: 'openid',
      state: 'st',
    }).toString();
    const { url: back } = await new Browserless(servers.issuer).follow(url);
    expect(back.origin + back.pathname).to.equal(callback);
    expect(back.searchParams.get('error')).to.equal('invalid_request');
    expect(back.searchParams.has('code')).to.equal(false);

    // (b) A code issued with a challenge and redeemed without a verifier.
    const withChallenge = await authorize(servers, a, user);
    expectRefused(await redeem(servers, a, { code: withChallenge.code, redirect_uri: callback }), ['invalid_grant'], 'no verifier');

    // (c) A code without a challenge (what an exempted client would get; our /auth never issues
    // one, so the stored code is stripped of its challenge) redeemed with a code_verifier: the
    // downgrade (BCP §4.8.2) is refused. Without the verifier the same code is accepted, so the
    // refusal is the verifier's doing.
    const stripped = await authorize(servers, a, user);
    const codes = servers.deps.oidcAdapter('AuthorizationCode');
    const stored = await codes.find(stripped.code);
    if (!stored) throw new Error('stored code not found');
    const { codeChallenge: _challenge, codeChallengeMethod: _method, ...rest } = stored;
    await codes.upsert(stripped.code, rest, 30);
    expectRefused(
      await redeem(servers, a, { code: stripped.code, redirect_uri: callback, code_verifier: stripped.verifier }),
      ['invalid_grant'],
      'downgrade',
    );
    expect((await redeem(servers, a, { code: stripped.code, redirect_uri: callback })).status).to.equal(200);
  });

  it('T22 a wrong client secret is 401 invalid_client with WWW-Authenticate, the same for every kind of wrong', async function () {
    this.timeout(120_000);
    const authorized = await authorize(servers, a, user);
    const form = { code: authorized.code, code_verifier: authorized.verifier, redirect_uri: callback };
    const flip = (s: string): string => `${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`;
    const wrongs: Record<string, string> = {
      'same length, same prefix': flip(a.client_secret),
      'same length, random': randomBytes(32).toString('base64url'),
      'one char': 'x',
      'prefix only': a.client_secret.slice(0, 20),
      'secret plus one char': `${a.client_secret}x`,
    };
    const replies: Record<string, Reply> = {};
    for (const [label, secret] of Object.entries(wrongs)) {
      replies[label] = await post(servers, '/token', a, { grant_type: 'authorization_code', ...form }, basicAuth(a.client_id, secret));
    }
    for (const [label, reply] of Object.entries(replies)) {
      expect(reply.status, `${label}: ${reply.text}`).to.equal(401);
      expect(reply.body.error, label).to.equal('invalid_client');
      expect(reply.headers.get('WWW-Authenticate'), label).to.match(/^Basic /);
      expect(reply.text, label).to.equal(replies['same length, random']?.text);
    }
    // An empty secret is a malformed request (oidc-provider: 400 invalid_request). The answer
    // depends only on what was sent, never on the stored secret, so it tells an attacker nothing.
    const empty = await post(servers, '/token', a, { grant_type: 'authorization_code', ...form }, basicAuth(a.client_id, ''));
    expectRefused(empty, ['invalid_request', 'invalid_client'], 'empty secret');

    // Latency: secrets are compared as fixed-length SHA-256 digests with timingSafeEqual
    // (src/shared/client-secret.ts), so a right-length and a one-character secret take the same
    // path. Interleaved samples; the band is wide enough for a busy shared machine but catches
    // a shortcut that skips the hash or an expensive check for some inputs.
    const samples: Record<'long' | 'short', number[]> = { long: [], short: [] };
    const time = async (secret: string): Promise<number> => {
      const start = performance.now();
      const reply = await post(servers, '/token', a, { grant_type: 'authorization_code', ...form }, basicAuth(a.client_id, secret));
      const elapsed = performance.now() - start;
      expect(reply.status).to.equal(401);
      return elapsed;
    };
    for (let round = 0; round < 5; round++) await time('warm-up');
    for (let round = 0; round < 60; round++) {
      samples.long.push(await time(flip(a.client_secret)));
      samples.short.push(await time('x'));
    }
    const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] ?? 0;
    const [long, short] = [median(samples.long), median(samples.short)];
    const delta = Math.abs(long - short);
    console.log(
      `      T22 median latency: right-length wrong secret ${long.toFixed(2)} ms, 1-char ${short.toFixed(2)} ms, Δ ${delta.toFixed(2)} ms`,
    );
    expect(delta < 5 || delta < 0.25 * Math.max(long, short), `Δmedian ${delta.toFixed(2)} ms`).to.equal(true);

    // The code was never consumed by the refused attempts.
    await tokensFor(servers, a, authorized);
  });

  it('T27 a refresh token is refused for another client and for a wider scope', async function () {
    const tokens = await tokensFor(servers, a, await authorize(servers, a, user));
    expectRefused(await refresh(servers, b, tokens.refresh_token), ['invalid_grant'], 'other client');
    expectRefused(
      await refresh(servers, a, tokens.refresh_token, { scope: 'openid offline_access profile' }),
      ['invalid_scope'],
      'wider scope',
    );
    expectRefused(await refresh(servers, a, tokens.refresh_token, { scope: 'openid records:read' }), ['invalid_scope'], 'api scope');
  });

  it('T28 disabling a user ends refresh, introspection and the existing session', async function () {
    const target = await createTestUser(servers.deps);
    const admin = await createTestUser(servers.deps, { roles: ['admin'] });
    const authorized = await authorize(servers, a, target);
    const tokens = await tokensFor(servers, a, authorized);
    expect(await introspect(servers, a, tokens.access_token)).to.equal(true);

    await servers.deps.api.userAdmin.update({ userId: admin.id }, target.id, { disabled: true });

    expectRefused(await refresh(servers, a, tokens.refresh_token), ['invalid_grant'], 'refresh');
    expect(await introspect(servers, a, tokens.access_token), 'opaque access token').to.equal(false);
    const userinfo = await fetch(`${servers.issuer}/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(userinfo.status).to.equal(401);

    // The browser still holds the session cookie: a new authorization must not yield a code.
    const { url } = authorizationRequestTo(servers.issuer, a.client_id, { redirect_uri: callback, state: 'st' });
    const { response, url: landed } = await authorized.browser.follow(url);
    expect(landed.origin, landed.href).to.equal(servers.issuer);
    const page = await response.text();
    expect(page, `${landed.href} ${response.status}`).to.include('name="password"');
    // …and signing in again is refused like any wrong password.
    const form = formOf(page, '/login');
    const { url: after } = await authorized.browser.submit(form.action, {
      csrf: form.csrf,
      email: target.email,
      password: target.password,
    });
    expect(after.origin, after.href).to.equal(servers.issuer);
    expect(after.searchParams.has('code')).to.equal(false);
  });

  it('T21 an expired code is refused, even while the store still holds it', async function () {
    // Its lifetime (AUTHORIZATION_CODE_TTL) goes by: moved back rather than waited for.
    const codes = servers.deps.oidcAdapter('AuthorizationCode');
    const lifetime = servers.config.ttl.authorizationCode;
    // Control: aged by half its lifetime (whole seconds: a second's margin would be a race), a code still works.
    const fresh = await authorize(servers, a, user);
    expect(await ageStored(codes, fresh.code, Math.floor(lifetime / 2))).to.be.at.least(4);
    expect((await redeem(servers, a, { code: fresh.code, code_verifier: fresh.verifier, redirect_uri: callback })).status).to.equal(200);
    // A second past it, it is refused, though the store still holds it.
    const expired = await authorize(servers, a, user);
    expect(await ageStored(codes, expired.code, lifetime + 1, { expired: 'keep' })).to.be.below(0);
    expect(await codes.find(expired.code), 'still stored').to.not.equal(undefined);
    expectRefused(await redeem(servers, a, { code: expired.code, code_verifier: expired.verifier, redirect_uri: callback }), [
      'invalid_grant',
    ]);
  });
});

for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`concurrent code redemption over HTTP (${storage} storage)`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let a: Registered;
    let user: TestUser;

    before(async function () {
      servers = await startTestServers({ storage });
      a = await register(servers);
      user = await createTestUser(servers.deps);
    });

    after(async function () {
      await servers.stop();
    });

    it('T16 one code sent in 20 parallel requests: exactly one 200, 19 invalid_grant, the grant revoked', async function () {
      const authorized = await authorize(servers, a, user);
      const form = { code: authorized.code, code_verifier: authorized.verifier, redirect_uri: callback };
      const replies = await Promise.all(Array.from({ length: 20 }, () => redeem(servers, a, form)));
      const winners = replies.filter((r) => r.status === 200);
      expect(winners, replies.map((r) => r.text).join('\n')).to.have.length(1);
      for (const loser of replies.filter((r) => r.status !== 200)) expectRefused(loser, ['invalid_grant']);
      const won = winners[0]!.body as { access_token: string; refresh_token: string };
      expect(await introspect(servers, a, won.access_token), 'access token of the winner').to.equal(false);
      expectRefused(await refresh(servers, a, won.refresh_token), ['invalid_grant'], 'refresh token of the winner');
    });
  });
}
