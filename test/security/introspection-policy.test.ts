import { expect } from 'chai';
import { createClient, ClientMetadataError } from '../../src/cli/clients.ts';
import { createTestClient } from '../helpers/factories.ts';
import { rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';

type Registered = { client_id: string; client_secret?: string };

const service = { grant_types: ['client_credentials'], redirect_uris: [], post_logout_redirect_uris: [], response_types: [] };

/**
 * R13 (issue 19, adversarial review): any confidential client holding `admin` could introspect
 * every token of every client. "May ask users for admin tokens" (an admin console) and "is a
 * resource server trusted with other clients' tokens" are separate: the second is the
 * operator-only client property `introspect_any_token`, settable through `portcullis clients
 * create` only, never by a client through RFC 7591 registration or an RFC 7592 update.
 * Both storage modes: clients, registrations and tokens live in the stores.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13 who may introspect other clients' tokens (${storage} storage)`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let owner: Registered;
    let token: string;

    before(async function () {
      servers = await startTestServers({ storage });
      owner = await createTestClient(servers.deps, service);
      // No resource and no scope: an opaque token, which introspection can speak about.
      const response = await fetch(`${servers.issuer}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basicAuth(owner.client_id, owner.client_secret) },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      });
      expect(response.status).to.equal(200);
      token = ((await response.json()) as { access_token: string }).access_token;
    });
    after(async function () {
      await servers.stop();
    });

    const introspect = async (as: Registered, value = token) => {
      const response = await fetch(`${servers.issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basicAuth(as.client_id, as.client_secret) },
        body: new URLSearchParams({ token: value }),
      });
      expect(response.status).to.equal(200);
      return (await response.json()) as { active: boolean; client_id?: string };
    };

    it("R13 a client holding the admin scope cannot introspect another client's token; the owner can", async function () {
      expect(await introspect(owner)).to.include({ active: true, client_id: owner.client_id });
      const adminConsole = await createTestClient(servers.deps, { scope: 'openid profile email records:read admin' });
      expect(await introspect(adminConsole)).to.deep.equal({ active: false });
    });

    it("R13 a client an operator flagged introspect_any_token introspects any client's token", async function () {
      const resourceServer = await createTestClient(servers.deps, { ...service, scope: 'records:read', introspect_any_token: true });
      expect(resourceServer.introspect_any_token).to.equal(true);
      expect(await introspect(resourceServer)).to.include({ active: true, client_id: owner.client_id });
      // false is the same as unset.
      const unflagged = await createTestClient(servers.deps, { ...service, introspect_any_token: false });
      expect(await introspect(unflagged)).to.deep.equal({ active: false });
    });

    it('R13 clients create refuses introspect_any_token that is not a boolean, or on a public client', async function () {
      for (const metadata of [
        { ...service, introspect_any_token: 'yes' },
        { redirect_uris: ['https://rp.example.test/cb'], token_endpoint_auth_method: 'none', introspect_any_token: true },
      ]) {
        const error = await rejectionOf(() => createClient(servers.deps, metadata));
        expect(error, JSON.stringify(metadata)).to.be.instanceOf(ClientMetadataError);
        expect((error as ClientMetadataError).message).to.include('introspect_any_token');
      }
    });

    it('R13 a self-registered client cannot set introspect_any_token, at registration (RFC 7591) or by update (RFC 7592)', async function () {
      const web = {
        client_name: 'Partner',
        redirect_uris: ['https://rp.example.test/cb'],
        grant_types: ['authorization_code', 'client_credentials'],
      };
      const { token: iat } = await servers.deps.stores.initialAccessTokens.create({
        note: 'R13',
        allowedScopes: ['account:export', 'account:erase'],
      });
      const register = (metadata: Record<string, unknown>) =>
        fetch(`${servers.issuer}/reg`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${iat}` },
          body: JSON.stringify(metadata),
        });
      const refused = await register({ ...web, introspect_any_token: true });
      expect(refused.status).to.equal(400);
      expect(await refused.json())
        .to.include({ error: 'invalid_client_metadata' })
        .and.to.have.property('error_description')
        .that.includes('introspect_any_token');

      const created = (await (await register(web)).json()) as Record<string, string>;
      expect(created).not.to.have.property('introspect_any_token');
      const update = await fetch(created.registration_client_uri ?? '', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${created.registration_access_token ?? ''}` },
        body: JSON.stringify({ ...web, client_id: created.client_id, introspect_any_token: true }),
      });
      expect(update.status).to.equal(400);
      expect(await update.json()).to.include({ error: 'invalid_client_metadata' });
      // Its tokens stay its own.
      expect(await introspect({ client_id: created.client_id ?? '', client_secret: created.client_secret ?? '' })).to.deep.equal({
        active: false,
      });
    });
  });
}
