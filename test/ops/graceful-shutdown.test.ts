import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { authorizeCode, Browserless, discover, probe, slowPost, startInstance, stopInstance, type Instance } from '../helpers/cluster.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { freePort, testConfigEnv } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * docs/security.md T45: SIGTERM during an in-flight token request. A real `node src/main.ts`
 * (Redis mode) gets SIGTERM while a POST /token is held open by a slow client body; readiness
 * turns 503 at once, the listener stops accepting after SHUTDOWN_DELAY, the held request still
 * completes 200, the code is consumed exactly once, and the process exits 0.
 */
describe('graceful shutdown of a real process', function () {
  this.timeout(90_000);
  let deps: Deps;
  let instance: Instance | undefined;
  let env: Record<string, string>;
  let issuer: string;
  let port: number;

  before(async function () {
    port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    env = { ISSUER: issuer, API_URL: `http://127.0.0.1:${await freePort()}`, SHUTDOWN_DELAY: '1.5', SHUTDOWN_TIMEOUT: '10' };
    const config = loadConfig({ ...testConfigEnv(), ...env, AUTH_PORT: String(port) });
    deps = await createDeps(config, { logger: createLogger(config) });
  });

  after(async function () {
    await stopInstance(instance);
    await deps.close();
  });

  it('drains: readiness 503 first, in-flight token request answered 200 once, exit 0', async function () {
    const user = await createTestUser(deps);
    const registered = await createTestClient(deps);
    const clientId = registered.client_id;
    const clientSecret = registered.client_secret!;
    instance = await startInstance('auth', env, { port });

    const rp = await discover(issuer, clientId, clientSecret);
    const { callback, verifier } = await authorizeCode(rp, new Browserless(issuer), user);
    const code = callback.searchParams.get('code')!;
    expect(code).to.be.a('string');

    const tokenRequest = () =>
      slowPost(
        `${issuer}/token`,
        {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: basicAuth(clientId, clientSecret),
        },
        new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: 'https://rp.example.test/cb',
          code_verifier: verifier,
        }).toString(),
      );

    // Headers and half the body are on the wire; the request is in flight. The listener keeps
    // accepting for SHUTDOWN_DELAY after the signal, so a connection made before it is served.
    const held = tokenRequest();
    await held.sent;
    const signalledAt = Date.now();
    instance.child.kill('SIGTERM');

    // Readiness flips first while the listener still accepts (SHUTDOWN_DELAY), liveness stays.
    await eventually(async () => expect(await probe(`${issuer}/readyz`), '/readyz').to.equal(503), { timeoutMs: 1000 });
    const notReadyAfter = Date.now() - signalledAt;
    expect(await probe(`${issuer}/healthz`)).to.equal(200);
    const body = (await (await fetch(`${issuer}/readyz`)).json()) as { status: string };
    expect(body.status).to.equal('draining');

    // Then it stops accepting new connections.
    await eventually(async () => expect(await probe(`${issuer}/healthz`), '/healthz (0: connection refused)').to.equal(0), {
      timeoutMs: 5000,
    });
    const closedAfter = Date.now() - signalledAt;
    expect(closedAfter).to.be.greaterThanOrEqual(1400);
    expect(instance.child.exitCode).to.equal(null);

    // The held request finishes and gets its tokens.
    held.finish();
    const response = await held.response;
    expect(response.status, response.body).to.equal(200);
    const tokens = JSON.parse(response.body) as { access_token?: string; id_token?: string; refresh_token?: string };
    expect(tokens.access_token).to.be.a('string');
    expect(tokens.id_token).to.be.a('string');

    const code0 = await instance.exited;
    const exitedAfter = Date.now() - signalledAt;
    expect(code0, instance.output()).to.equal(0);
    expect(instance.output()).to.include('shut down cleanly');
    process.stdout.write(`      not ready after ${notReadyAfter} ms, closed after ${closedAfter} ms, exited after ${exitedAfter} ms\n`);

    // Exactly once: a fresh instance on the same storage refuses the same code.
    instance = await startInstance('auth', env, { port });
    const again = tokenRequest();
    again.finish();
    const replay = await again.response;
    expect(replay.status).to.equal(400);
    expect(JSON.parse(replay.body)).to.include({ error: 'invalid_grant' });
  });
});
