import { expect } from 'chai';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

type Reply = { status: number; body: Record<string, unknown> };

/**
 * RFC 7592 client management: R10 (rotating the registration access token is one atomic claim)
 * and R11 (a PUT that echoes the client's own current secret, as RFC 7592 §2.2 clients do).
 */
describe('R10/R11 RFC 7592 registration management', function () {
  this.timeout(60_000);

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    describe(`${storage} storage`, function () {
      let servers: TestServers;

      before(async function () {
        servers = await startTestServers({ storage });
      });

      after(async function () {
        await servers.stop();
      });

      const web = { client_name: 'Managed App', redirect_uris: ['https://app.example/cb'] };

      async function json(response: Response): Promise<Reply> {
        return { status: response.status, body: (await response.json().catch(() => ({}))) as Record<string, unknown> };
      }

      async function register(): Promise<{ clientId: string; secret: string; uri: string; rat: string }> {
        const { token } = await servers.deps.stores.initialAccessTokens.create({});
        const created = await json(
          await fetch(`${servers.issuer}/reg`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
            body: JSON.stringify(web),
          }),
        );
        expect(created.status).to.equal(201);
        return {
          clientId: created.body.client_id as string,
          secret: created.body.client_secret as string,
          uri: created.body.registration_client_uri as string,
          rat: created.body.registration_access_token as string,
        };
      }

      const put = async (uri: string, rat: string, body: Record<string, unknown>): Promise<Reply> =>
        json(
          await fetch(uri, {
            method: 'PUT',
            headers: { Authorization: `Bearer ${rat}`, 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
          }),
        );

      const read = async (uri: string, rat: string): Promise<Reply> =>
        json(await fetch(uri, { headers: { Authorization: `Bearer ${rat}` } }));

      /** The registration access tokens stored for a client (always in Postgres: they are configuration). */
      async function storedTokens(clientId: string): Promise<number> {
        const rows = await servers.deps
          .knex('oidc_payloads')
          .where({ type: 'RegistrationAccessToken' })
          .whereRaw("payload->>'clientId' = ?", [clientId]);
        return rows.length;
      }

      const introspectWith = async (clientId: string, secret: string): Promise<number> =>
        (
          await fetch(`${servers.issuer}/token/introspection`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ token: 'x', client_id: clientId, client_secret: secret }),
          })
        ).status;

      it('R10 ten parallel PUTs with one registration access token: exactly one succeeds, nine get invalid_token, one new token is live', async function () {
        const { clientId, uri, rat } = await register();
        expect(await storedTokens(clientId)).to.equal(1);
        const replies = await Promise.all(
          Array.from({ length: 10 }, (_, i) => put(uri, rat, { client_id: clientId, ...web, client_name: `Renamed ${i}` })),
        );
        const won = replies.filter((r) => r.status === 200);
        const lost = replies.filter((r) => r.status !== 200);
        expect(won.length, JSON.stringify(replies.map((r) => r.status))).to.equal(1);
        expect(lost.map((r) => [r.status, r.body.error])).to.deep.equal(Array.from({ length: 9 }, () => [401, 'invalid_token']));
        const winner = won[0]!.body;
        const fresh = winner.registration_access_token as string;
        expect(fresh).to.be.a('string').and.not.equal(rat);
        expect((await read(uri, rat)).status, 'the old token is gone').to.equal(401);
        const current = await read(uri, fresh);
        expect(current.status).to.equal(200);
        // Nothing half-written: the stored client is the winner's update, not a loser's.
        expect(current.body.client_name).to.equal(winner.client_name);
        expect(await storedTokens(clientId), 'exactly one live registration access token').to.equal(1);
      });

      it('R10 a refused update keeps the token usable; of PUTs and DELETEs racing with one token exactly one runs, so a PUT cannot bring a deleted client back', async function () {
        const { clientId, uri, rat } = await register();
        const refused = await put(uri, rat, { client_id: clientId, ...web, redirect_uris: ['http://app.example/cb'] });
        expect(refused.status).to.equal(400);
        const ok = await put(uri, rat, { client_id: clientId, ...web, client_name: 'After a refusal' });
        expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
        const next = ok.body.registration_access_token as string;
        const replies = await Promise.all(
          Array.from({ length: 10 }, async (_, i) =>
            i % 2 === 0
              ? { kind: 'put', ...(await put(uri, next, { client_id: clientId, ...web, client_name: `Racing ${i}` })) }
              : { kind: 'delete', status: (await fetch(uri, { method: 'DELETE', headers: { Authorization: `Bearer ${next}` } })).status },
          ),
        );
        const ran = replies.filter((r) => r.status === 200 || r.status === 204);
        expect(ran.length, JSON.stringify(replies.map((r) => [r.kind, r.status]))).to.equal(1);
        expect(replies.filter((r) => r.status === 401).length).to.equal(9);
        // The client exists exactly when the one that ran was an update.
        expect((await servers.deps.stores.clients.find(clientId)) !== undefined).to.equal(ran[0]!.kind === 'put');
        expect(await storedTokens(clientId)).to.equal(ran[0]!.kind === 'put' ? 1 : 0);
      });

      it('R11 an RFC 7592 PUT echoing the current client_secret is accepted; any other client_secret, and the stored hash, are refused', async function () {
        const { clientId, secret, uri, rat } = await register();
        const echoed = await put(uri, rat, { client_id: clientId, ...web, client_secret: secret, client_name: 'Echoed' });
        expect(echoed.status, JSON.stringify(echoed.body)).to.equal(200);
        expect(echoed.body.client_name).to.equal('Echoed');
        expect(echoed.body).not.to.have.property('client_secret');
        expect(await introspectWith(clientId, secret), 'the secret is unchanged').to.equal(200);
        let token = echoed.body.registration_access_token as string;

        const hash = (await servers.deps.knex('oauth_clients').where({ client_id: clientId }).first<{ secret_hash: string }>('secret_hash'))
          .secret_hash;
        expect(hash).to.match(/^\$sha256\$/);
        for (const other of [`${secret}x`, secret.slice(1), secret.toUpperCase(), '', hash, 42]) {
          const refused = await put(uri, token, { client_id: clientId, ...web, client_secret: other, client_name: 'Refused' });
          expect(refused.status, String(other)).to.equal(400);
          expect(refused.body.error, String(other)).to.equal('invalid_request');
          // A refused update leaves the token usable.
          expect((await read(uri, token)).body.client_name, String(other)).to.equal('Echoed');
        }
        const again = await put(uri, token, { client_id: clientId, ...web, client_secret: secret, client_name: 'Echoed again' });
        expect(again.status).to.equal(200);
        token = again.body.registration_access_token as string;
        expect((await read(uri, token)).body.client_name).to.equal('Echoed again');
        expect(await introspectWith(clientId, secret)).to.equal(200);
      });
    });
  }
});
