import { expect } from 'chai';
import pg from 'pg';
import { CLIENT_CACHE_TTL_MS } from '../../src/store/clients.ts';
import { CLIENT_CHANGED_CHANNEL } from '../../src/store/client-changes.ts';
import { createTestClient } from '../helpers/factories.ts';
import { runNode } from '../helpers/process.ts';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * Every auth instance caches clients for CLIENT_CACHE_TTL_MS. A change made elsewhere (another
 * instance, the CLI, SQL by hand) reaches the others through a Postgres trigger and LISTEN, so a
 * disabled client is refused everywhere at once, not after the cache entry expires.
 */
describe('client changes reach every instance at once (LISTEN/NOTIFY)', function () {
  this.timeout(60_000);
  let a: TestServers;
  let b: TestServers;

  before(async function () {
    [a, b] = [await startTestServers(), await startTestServers()];
  });

  after(async function () {
    await Promise.all([a.stop(), b.stop()]);
  });

  async function serviceClient() {
    const registered = await createTestClient(a.deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'records:read',
    });
    const grant = async (on: TestServers) => {
      const response = await fetch(`${on.issuer}/token`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: basicAuth(registered.client_id, registered.client_secret),
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'records:read', resource: on.apiUrl }),
      });
      const body = (await response.json()) as { error?: string };
      return { status: response.status, error: body.error };
    };
    return { clientId: registered.client_id, grant };
  }

  /** Milliseconds until instance `on` refuses the client (invalid_client), polling every 10 ms; served (200) until then. */
  async function untilRefused(
    grant: (on: TestServers) => Promise<{ status: number; error?: string | undefined }>,
    on: TestServers,
    budgetMs = 3000,
  ): Promise<number> {
    const started = Date.now();
    const otherwise: string[] = [];
    await eventually(
      async () => {
        const result = await grant(on);
        if (result.status === 401 && result.error === 'invalid_client') return;
        if (result.status !== 200) otherwise.push(`${result.status} ${result.error ?? ''}`);
        throw new Error(`still served (${result.status})`);
      },
      { timeoutMs: budgetMs, intervalMs: 10, message: 'the instance refuses the changed client' },
    );
    expect(otherwise, 'served until the change arrives').to.deep.equal([]);
    return Date.now() - started;
  }

  it('a client disabled by the CLI is refused by a running instance that had it cached, well inside the cache TTL', async function () {
    const { clientId, grant } = await serviceClient();
    expect((await grant(b)).status).to.equal(200); // b now holds the client in its cache
    const cli = await runNode(['src/cli.ts', 'clients', 'disable', '--', clientId], testConfigEnv());
    expect(cli.code, cli.stderr).to.equal(0);
    const elapsed = await untilRefused(grant, b);
    expect(elapsed).to.be.below(CLIENT_CACHE_TTL_MS / 5);
  });

  it('a change by another instance, and one by hand in SQL, are seen by the other instance at once', async function () {
    const first = await serviceClient();
    expect((await first.grant(b)).status).to.equal(200);
    expect(await a.deps.stores.clients.setDisabled(first.clientId, true)).to.equal(true);
    expect(await untilRefused(first.grant, b)).to.be.below(CLIENT_CACHE_TTL_MS / 5);

    const second = await serviceClient();
    expect((await second.grant(a)).status).to.equal(200);
    expect((await second.grant(b)).status).to.equal(200);
    await a.deps.knex('oauth_clients').where({ client_id: second.clientId }).update({ disabled: true });
    for (const instance of [a, b]) expect(await untilRefused(second.grant, instance)).to.be.below(CLIENT_CACHE_TTL_MS / 5);
  });

  it('after its LISTEN connection is cut, an instance reconnects and hears changes again', async function () {
    const { clientId, grant } = await serviceClient();
    expect((await grant(b)).status).to.equal(200);
    // Cut every LISTEN connection of this run's database (both instances'); they come back with back-off.
    const cut = await a.deps.knex.raw<{ rows: unknown[] }>(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
    );
    expect(cut.rows.length).to.be.at.least(2);
    const listening = async () =>
      (
        await a.deps.knex.raw<{ rows: unknown[] }>(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`,
        )
      ).rows.length;
    // Reconnection backs off from 0.5 s and doubles per failed attempt (up to 30 s); on a loaded
    // machine an attempt can fail, so allow a few rounds.
    await eventually(async () => expect(await listening(), 'LISTEN connections after the cut').to.be.at.least(2), {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    await a.deps.stores.clients.setDisabled(clientId, true);
    expect(await untilRefused(grant, b)).to.be.below(CLIENT_CACHE_TTL_MS / 5);
  });

  it('the trigger notifies changes to metadata, secret and disabled, not the hourly last-use stamp', async function () {
    const { clientId } = await serviceClient();
    const listener = new pg.Client({ connectionString: testEnv.databaseUrl });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (message) => heard.push(`${message.channel}:${message.payload ?? ''}`));
    try {
      await listener.query(`LISTEN ${CLIENT_CHANGED_CHANNEL}`);
      const rows = a.deps.knex('oauth_clients').where({ client_id: clientId });
      await rows.clone().update({ last_used_at: new Date() });
      await rows.clone().update({ disabled: true });
      await rows.clone().delete();
      // Notifications arrive in commit order: a notice for the last-use stamp would come first,
      // so the two heard once both later ones are in must be exactly those two.
      await eventually(() => expect(heard.length, 'notifications heard').to.be.at.least(2), { timeoutMs: 2000 });
      expect(heard).to.deep.equal([`${CLIENT_CHANGED_CHANNEL}:${clientId}`, `${CLIENT_CHANGED_CHANNEL}:${clientId}`]);
    } finally {
      await listener.end();
    }
  });
});
