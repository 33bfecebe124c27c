import { expect } from 'chai';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Found by the R12 fuzz pass: the RFC 7592 secret echo (src/auth/client-governance.ts) reads an
 * update's JSON ahead and writes it back with JSON.stringify, which throws RangeError on a
 * deeply nested value that JSON.parse accepted: a 500 for any request carrying the client's own
 * secret. The body is now handed on unchanged when it cannot be written back, and the provider
 * refuses it like any other bad metadata.
 */
describe('R12 deeply nested JSON bodies', function () {
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  it('R12 an RFC 7592 update nesting 10000 levels deep, with the real client secret, is refused, never a 500', async function () {
    const { token } = await servers.deps.stores.initialAccessTokens.create({});
    const created = (await (
      await fetch(`${servers.issuer}/reg`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ client_name: 'Deep', redirect_uris: ['https://app.example/cb'] }),
      })
    ).json()) as { client_id: string; client_secret: string; registration_access_token: string; registration_client_uri: string };
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const body = `{"client_id":${JSON.stringify(created.client_id)},"client_secret":${JSON.stringify(created.client_secret)},"redirect_uris":["https://app.example/cb"],"logo_uri":${deep}}`;
    for (const authorization of [`Bearer ${created.registration_access_token}`, 'Bearer not-the-token']) {
      const response = await fetch(created.registration_client_uri, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json', Authorization: authorization },
        body,
      });
      expect(response.status, authorization).to.be.within(400, 499);
      expect(((await response.json()) as { error?: string }).error, authorization).to.be.a('string');
    }
    // The client is unchanged and still managed with its token.
    const read = await fetch(created.registration_client_uri, {
      headers: { Authorization: `Bearer ${created.registration_access_token}` },
    });
    expect(read.status).to.equal(200);
  });
});
