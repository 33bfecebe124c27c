import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { runNode, spawnNode, waitForReady, type Spawned } from '../helpers/process.ts';
import { freePort } from '../helpers/servers.ts';

/**
 * Zero-setup mode as a newcomer meets it: `node src/main.ts` with no DATABASE_URL, no REDIS_URL
 * and no MASTER_KEY. PGlite in DATA_DIR, a generated master key, the CLI attaching to the running
 * server's database, a full OIDC login, and data surviving a restart.
 */
describe('embedded mode (PGlite, no Redis, nothing configured)', function () {
  this.timeout(120_000);
  let dataDir: string;
  let env: Record<string, string>;
  let issuer: string;
  let apiUrl: string;
  let server: Spawned | undefined;

  async function start(): Promise<Spawned> {
    const spawned = spawnNode(['src/main.ts'], env);
    try {
      // PGlite starts and migrates in WebAssembly first: allow for other files running beside it.
      await waitForReady(`${issuer}/readyz`, 90_000);
      await waitForReady(`${apiUrl}/healthz`);
    } catch (error) {
      spawned.child.kill('SIGKILL');
      throw new Error(`the embedded server did not become ready:\n${spawned.output()}`, { cause: error });
    }
    return spawned;
  }

  async function stop(spawned: Spawned): Promise<number | null> {
    spawned.child.kill('SIGTERM');
    return spawned.exited;
  }

  before(async function () {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-embedded-'));
    const [authPort, apiPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${authPort}`;
    apiUrl = `http://127.0.0.1:${apiPort}`;
    env = {
      DATA_DIR: join(dataDir, 'data'),
      ISSUER: issuer,
      AUTH_PORT: String(authPort),
      API_URL: apiUrl,
      API_PORT: String(apiPort),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ARGON2_MEMORY_KIB: '8192',
      ARGON2_TIME_COST: '1',
    };
    server = await start();
  });

  after(async function () {
    if (server && server.child.exitCode === null) await stop(server);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('generates a master key (0600) and tells how to create the first admin', async function () {
    const info = await stat(join(env.DATA_DIR!, 'master.key'));
    expect(info.mode & 0o777).to.equal(0o600);
    expect(server!.output()).to.include('users create --email you@example.com --password-stdin --email-verified --role admin');
    expect(server!.output()).to.include('MASTER_KEY');
  });

  it('lets the CLI work against the running server, logs in, and keeps data across a restart', async function () {
    // A plain user: admins must enrol a second factor first, which the MFA suites cover.
    const created = await runNode(
      ['src/cli.ts', 'users', 'create', '--email', 'Person@Example.test', '--password-stdin'],
      env,
      'a long enough passphrase\n',
    );
    expect(created.code, created.stderr).to.equal(0);
    const user = JSON.parse(created.stdout) as { id: string; email: string };
    expect(user.email).to.equal('Person@Example.test');

    const registered = await runNode(
      [
        'src/cli.ts',
        'clients',
        'create',
        '--json',
        JSON.stringify({ client_name: 'Embedded RP', redirect_uris: ['https://rp.example.test/cb'] }),
      ],
      env,
    );
    expect(registered.code, registered.stderr).to.equal(0);
    const { client_id: clientId, client_secret: clientSecret } = JSON.parse(registered.stdout) as {
      client_id: string;
      client_secret: string;
    };

    const login = async () => {
      const rp = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, { execute: [client.allowInsecureRequests] });
      const { url, verifier } = await authorizationRequest(rp, { scope: 'openid email records:read', state: 'st', resource: apiUrl });
      // The email is matched case-insensitively.
      const callback = await signIn(new Browserless(issuer), url, { email: 'person@example.test', password: 'a long enough passphrase' });
      return client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: 'st' }, { resource: apiUrl });
    };

    const tokens = await login();
    expect(tokens.claims()?.sub).to.equal(user.id);
    const me = await fetch(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).to.equal(200);
    expect(await me.json()).to.deep.include({ sub: user.id, roles: ['user'] });
    const jwksBefore: unknown = await (await fetch(`${issuer}/jwks`)).json();

    // SIGTERM drains and exits cleanly; the next start finds the same users, clients and keys.
    expect(await stop(server!)).to.equal(0);
    server = await start();
    expect(await (await fetch(`${issuer}/jwks`)).json()).to.deep.equal(jwksBefore);
    const again = await login();
    expect(again.claims()?.sub).to.equal(user.id);
    // The token issued before the restart is still valid at the API (same keys, persisted).
    const meAgain = await fetch(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    expect(meAgain.status).to.equal(200);
  });
});
