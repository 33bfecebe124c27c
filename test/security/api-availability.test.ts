import { expect } from 'chai';
import { call, createRp, userTokens } from '../helpers/api.ts';
import { startPrivateRedis, type PrivateRedis } from '../helpers/cluster.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * T45, resource-server side: access tokens for the API are self-contained JWTs checked against
 * the cached JWKS, so an outage of Redis (sessions, grants, tokens) must not take the API down
 * with it. DPoP-bound requests need the replay store and fail closed instead (their own tests).
 * A private redis-server is killed, never the shared one.
 */
describe('T45 Redis outage seen from the resource API', function () {
  this.timeout(90_000);
  let redis: PrivateRedis | undefined;
  let servers: TestServers;

  before(async function () {
    redis = await startPrivateRedis();
    servers = await startTestServers({ env: { REDIS_URL: redis.url } });
  });

  after(async function () {
    await servers.stop();
    await redis?.stop();
  });

  it('T45 Redis down: the API still answers a valid JWT access token, and refuses a forged one', async function () {
    const rp = await createRp(servers);
    const user = await createTestUser(servers.deps);
    const tokens = await userTokens(servers, rp, user, 'records:read');
    expect((await call(servers, 'GET', '/v1/me', tokens.access_token)).status).to.equal(200);

    const port = redis!.port;
    await redis!.stop();
    redis = undefined;

    const me = await call(servers, 'GET', '/v1/me', tokens.access_token);
    expect(me.status, me.text).to.equal(200);
    expect(me.body).to.deep.include({ sub: user.id });
    // Failing open would be the bug to fear here: a tampered token is still refused.
    const [header, payload] = tokens.access_token.split('.');
    const forged = `${header}.${payload}.${Buffer.alloc(64).toString('base64url')}`;
    expect((await call(servers, 'GET', '/v1/me', forged)).status).to.equal(401);

    redis = await startPrivateRedis([], port);
    await eventually(
      async () =>
        expect((await fetch(`${servers.issuer}/.well-known/openid-configuration`)).status, 'discovery once Redis is back').to.equal(200),
      { timeoutMs: 20_000, intervalMs: 250 },
    );
  });
});
