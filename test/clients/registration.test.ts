import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import * as client from 'openid-client';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { eventually } from '../helpers/wait.ts';

const run = promisify(execFile);

/**
 * RFC 7591 registration behind initial access tokens, our registration policy (docs/security.md
 * T3/T4, B3, B16), RFC 7592 management with a rotating registration access token, and the
 * provenance/idle governance of registered clients.
 */
describe('dynamic client registration (RFC 7591/7592)', function () {
  let servers: TestServers;
  let registrationEndpoint: string;

  before(async function () {
    servers = await startTestServers();
    const meta = (await (await fetch(`${servers.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    registrationEndpoint = meta.registration_endpoint as string;
  });

  after(async function () {
    await servers.stop();
  });

  const newIat = async (options: { ttlSeconds?: number; maxUses?: number; note?: string } = {}) =>
    servers.deps.stores.initialAccessTokens.create(options);

  async function register(
    metadata: Record<string, unknown>,
    token?: string,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const response = await fetch(registrationEndpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(metadata),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => ({}))) as Record<string, unknown>,
      headers: response.headers,
    };
  }

  const web = { client_name: 'Web App', redirect_uris: ['https://app.example/cb'] };

  it('advertises the registration endpoint and device flow in discovery', async function () {
    const meta = (await (await fetch(`${servers.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(meta.registration_endpoint).to.equal(`${servers.issuer}/reg`);
    expect(meta.device_authorization_endpoint).to.equal(`${servers.issuer}/device/auth`);
    expect(meta.dpop_signing_alg_values_supported).to.include('ES256');
  });

  it('refuses registration without, or with an unknown, initial access token', async function () {
    const none = await register(web);
    expect(none.status).to.equal(401);
    expect(none.body.error).to.equal('invalid_token');
    const wrong = await register(web, 'piat_not-a-real-token');
    expect(wrong.status).to.equal(401);
    expect(wrong.body.error).to.equal('invalid_token');
  });

  it('registers a confidential web client with openid-client and records the token that made it', async function () {
    const { token, record } = await newIat({ note: 'web team' });
    const rp = await client.dynamicClientRegistration(
      new URL(servers.issuer),
      { ...web, grant_types: ['authorization_code', 'refresh_token'] },
      undefined,
      { initialAccessToken: token, execute: [client.allowInsecureRequests] },
    );
    const metadata = rp.clientMetadata();
    expect(metadata.client_id).to.be.a('string');
    expect(metadata.client_secret).to.be.a('string').with.length.greaterThan(40);
    expect(metadata.token_endpoint_auth_method).to.equal('client_secret_basic');
    expect(metadata.scope).to.equal('openid offline_access profile email records:read records:write');
    expect(metadata.registration_access_token).to.be.a('string');
    const listed = (await servers.deps.stores.clients.list()).find((c) => c.client_id === metadata.client_id);
    expect(listed?.created_by).to.equal(`iat:${record.id}`);
    expect(listed?.created_by_note).to.equal('web team');
    // Stored hashed: neither the IAT nor the registration access token is in the database.
    const rows = await servers.deps.knex('initial_access_tokens').where({ id: record.id });
    expect(JSON.stringify(rows)).to.not.include(token);
    const payloads = await servers.deps.knex('oidc_payloads').where({ type: 'RegistrationAccessToken' });
    expect(JSON.stringify(payloads)).to.not.include(metadata.registration_access_token);
    // The client secret is kept as a hash only, and it works.
    const row = await servers.deps.knex('oauth_clients').where({ client_id: metadata.client_id }).first<Record<string, unknown>>();
    expect(row.secret_sealed).to.equal(null);
    expect(row.secret_hash).to.match(/^\$sha256\$/);
    expect(JSON.stringify(row)).to.not.include(metadata.client_secret);
    expect((await client.tokenIntrospection(rp, 'anything')).active).to.equal(false);
    const wrongSecret = await fetch(`${servers.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: 'x', client_id: metadata.client_id, client_secret: row.secret_hash as string }),
    });
    expect(wrongSecret.status, 'the stored hash is not accepted as the secret').to.equal(401);
  });

  it('registers a public native client (PKCE, loopback) and a device-flow CLI', async function () {
    const { token } = await newIat();
    const native = await register(
      {
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/cb', 'http://[::1]/cb', 'com.example.app:/oauth2redirect'],
        grant_types: ['authorization_code', 'refresh_token'],
      },
      token,
    );
    expect(native.status, JSON.stringify(native.body)).to.equal(201);
    expect(native.body).to.not.have.property('client_secret');
    const cli = await register(
      {
        client_name: 'CLI',
        token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      },
      token,
    );
    expect(cli.status, JSON.stringify(cli.body)).to.equal(201);
    expect(cli.body.redirect_uris).to.deep.equal([]);
  });

  it('registers a private_key_jwt service and a client_secret_post one', async function () {
    const { token } = await newIat();
    const { publicKey } = await client.randomDPoPKeyPair('ES256', { extractable: true });
    const { exportJWK } = await import('jose');
    const jwk = { ...(await exportJWK(publicKey)), use: 'sig', alg: 'ES256' };
    const service = await register(
      {
        client_name: 'svc',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [jwk] },
        grant_types: ['client_credentials'],
        scope: 'records:read',
      },
      token,
    );
    expect(service.status, JSON.stringify(service.body)).to.equal(201);
    expect(service.body).to.not.have.property('client_secret');
    const post = await register({ ...web, token_endpoint_auth_method: 'client_secret_post' }, token);
    expect(post.status).to.equal(201);
    expect(post.body.client_secret).to.be.a('string');
  });

  describe('policy rejections', function () {
    let token: string;
    before(async function () {
      ({ token } = await newIat());
    });

    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ['T3 javascript: scheme', { redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', /forbidden scheme javascript:/],
      ['T3 JaVaScRiPt: scheme', { redirect_uris: ['JaVaScRiPt:alert(1)'] }, 'invalid_redirect_uri', /forbidden scheme/],
      [
        'T3 data: scheme',
        { redirect_uris: ['data:text/html,<script>alert(1)</script>'] },
        'invalid_redirect_uri',
        /forbidden scheme data:/,
      ],
      ['T3 vbscript: scheme', { redirect_uris: ['vbscript:msgbox(1)'] }, 'invalid_redirect_uri', /forbidden scheme vbscript:/],
      ['T3 non-loopback http', { redirect_uris: ['http://app.example/cb'] }, 'invalid_redirect_uri', /uses http/],
      ['T3 fragment', { redirect_uris: ['https://app.example/cb#frag'] }, 'invalid_redirect_uri', /fragment/],
      [
        'T3 localhost look-alike',
        { application_type: 'native', token_endpoint_auth_method: 'none', redirect_uris: ['http://localhost.evil.test/cb'] },
        'invalid_redirect_uri',
        /loopback/,
      ],
      [
        'T4 http://localhost for native',
        { application_type: 'native', token_endpoint_auth_method: 'none', redirect_uris: ['http://localhost/cb'] },
        'invalid_redirect_uri',
        /localhost/,
      ],
      ['T4 loopback http for a web client', { redirect_uris: ['http://127.0.0.1/cb'] }, 'invalid_redirect_uri', /uses http/],
      ['wildcard', { redirect_uris: ['https://*.app.example/cb'] }, 'invalid_redirect_uri', /wildcard/],
      ['userinfo', { redirect_uris: ['https://evil.test@app.example/cb'] }, 'invalid_redirect_uri', /user information/],
      ['relative URI', { redirect_uris: ['/cb'] }, 'invalid_redirect_uri', /absolute/],
      ['whitespace', { redirect_uris: ['https://app.example/cb '] }, 'invalid_redirect_uri', /whitespace/],
      ['custom scheme for a web client', { redirect_uris: ['com.example.app:/cb'] }, 'invalid_redirect_uri', /web clients must use https/],
      [
        'non reverse-domain private scheme',
        { application_type: 'native', token_endpoint_auth_method: 'none', redirect_uris: ['myapp:/cb'] },
        'invalid_redirect_uri',
        /reverse domain/,
      ],
      [
        'dangerous post-logout URI',
        { post_logout_redirect_uris: ['javascript:alert(1)'] },
        'invalid_client_metadata',
        /post_logout_redirect_uris/,
      ],
      ['implicit grant', { grant_types: ['implicit'] }, 'invalid_client_metadata', /"implicit" is not allowed/],
      ['password grant (B9)', { grant_types: ['password'] }, 'invalid_client_metadata', /"password" is not allowed/],
      ['token response type', { response_types: ['code token'] }, 'invalid_client_metadata', /only "code"/],
      [
        'public client_credentials',
        { token_endpoint_auth_method: 'none', grant_types: ['client_credentials'], redirect_uris: [] },
        'invalid_client_metadata',
        /confidential client/,
      ],
      [
        'client_secret_jwt',
        { token_endpoint_auth_method: 'client_secret_jwt' },
        'invalid_client_metadata',
        /token_endpoint_auth_method must be one of/,
      ],
      ['private_key_jwt without keys', { token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', /jwks/],
      ['http logo', { logo_uri: 'http://app.example/logo.png' }, 'invalid_client_metadata', /logo_uri must be an https URL/],
      [
        'jwks_uri on a private network (SSRF)',
        { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://169.254.169.254/keys' },
        'invalid_client_metadata',
        /internal hosts are refused/,
      ],
      [
        'jwks_uri on localhost (SSRF)',
        { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://localhost/keys' },
        'invalid_client_metadata',
        /internal hosts/,
      ],
      [
        'sector_identifier_uri on 10/8 (SSRF)',
        { sector_identifier_uri: 'https://10.0.0.5/sector' },
        'invalid_client_metadata',
        /internal hosts/,
      ],
      [
        'sector_identifier_uri on [fd00::1] (SSRF)',
        { sector_identifier_uri: 'https://[fd00::1]/sector' },
        'invalid_client_metadata',
        /internal hosts/,
      ],
      ['self-granted admin scope', { scope: 'openid admin' }, 'invalid_client_metadata', /"admin" cannot be self-registered/],
      ['unknown scope', { scope: 'openid superpowers' }, 'invalid_client_metadata', /not a scope of this server/],
      ['no redirect URI for code', { redirect_uris: [] }, 'invalid_redirect_uri', /at least one redirect URI/],
    ];
    for (const [name, metadata, error, description] of cases) {
      it(`rejects ${name}`, async function () {
        const result = await register({ ...web, ...metadata }, token);
        expect(result.status, JSON.stringify(result.body)).to.equal(400);
        expect(result.body.error).to.equal(error);
        expect(result.body.error_description).to.match(description);
      });
    }

    it('does not count refused registrations against max_uses', async function () {
      const limited = await newIat({ maxUses: 1 });
      expect((await register({ ...web, redirect_uris: ['javascript:x'] }, limited.token)).status).to.equal(400);
      // Released asynchronously by the provider's error event.
      await eventually(async () => {
        const row = await servers.deps.knex('initial_access_tokens').where({ id: limited.record.id }).first<{ uses: number }>('uses');
        expect(row.uses, 'uses of the token after the refusal').to.equal(0);
      });
      expect((await register(web, limited.token)).status).to.equal(201);
      expect((await register(web, limited.token)).status).to.equal(401);
    });
  });

  it('enforces max uses atomically under concurrency, expiry and revocation', async function () {
    const limited = await newIat({ maxUses: 3 });
    const results = await Promise.all(Array.from({ length: 10 }, () => register(web, limited.token)));
    expect(results.filter((r) => r.status === 201)).to.have.length(3);
    expect(results.filter((r) => r.status === 401)).to.have.length(7);

    // Expired: its expiry moved a second into the past rather than waited for.
    const expired = await newIat({ ttlSeconds: 60 });
    await servers.deps
      .knex('initial_access_tokens')
      .where({ id: expired.record.id })
      .update({ expires_at: new Date(Date.now() - 1000) });
    expect((await register(web, expired.token)).status).to.equal(401);

    const revoked = await newIat();
    expect(await servers.deps.stores.initialAccessTokens.revoke(revoked.record.id)).to.equal(true);
    expect((await register(web, revoked.token)).status).to.equal(401);
  });

  it('RFC 7592: reads, updates (rotating the registration access token) and deletes', async function () {
    const { token } = await newIat();
    const created = await register(web, token);
    const uri = created.body.registration_client_uri as string;
    const rat = created.body.registration_access_token as string;
    expect(uri).to.equal(`${servers.issuer}/reg/${created.body.client_id as string}`);

    const read = await fetch(uri, { headers: { Authorization: `Bearer ${rat}` } });
    expect(read.status).to.equal(200);
    const readBody = (await read.json()) as Record<string, unknown>;
    expect(readBody.client_name).to.equal('Web App');
    // The secret is only stored as a hash, which is never sent back.
    expect(readBody).to.not.have.property('client_secret');
    expect((await fetch(uri, { headers: { Authorization: 'Bearer wrong' } })).status).to.equal(401);

    const update = async (accessToken: string, body: Record<string, unknown>) =>
      fetch(uri, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    // The policy applies to updates too.
    const bad = await update(rat, { client_id: created.body.client_id, ...web, redirect_uris: ['http://app.example/cb'] });
    expect(bad.status).to.equal(400);
    expect(((await bad.json()) as Record<string, unknown>).error).to.equal('invalid_redirect_uri');

    const good = await update(rat, { client_id: created.body.client_id, ...web, client_name: 'Renamed' });
    expect(good.status).to.equal(200);
    const updated = (await good.json()) as Record<string, unknown>;
    expect(updated.client_name).to.equal('Renamed');
    expect(updated).to.not.have.property('client_secret');
    // The secret survives the update.
    const auth = await fetch(`${servers.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: 'x',
        client_id: created.body.client_id as string,
        client_secret: created.body.client_secret as string,
      }),
    });
    expect(auth.status).to.equal(200);
    const rotated = updated.registration_access_token as string;
    expect(rotated).to.be.a('string').and.not.equal(rat);
    expect((await fetch(uri, { headers: { Authorization: `Bearer ${rat}` } })).status).to.equal(401);

    const removed = await fetch(uri, { method: 'DELETE', headers: { Authorization: `Bearer ${rotated}` } });
    expect(removed.status).to.equal(204);
    expect(await servers.deps.stores.clients.find(created.body.client_id as string)).to.equal(undefined);
    expect((await fetch(uri, { headers: { Authorization: `Bearer ${rotated}` } })).status).to.equal(401);
  });

  it('R14 a self-registered client cannot take the name of the product or its first-party apps (case, spacing, width, accents, look-alike letters), at registration or by update; an operator can', async function () {
    const reserved = [
      'Portcullis',
      'Portcullis Account',
      'portcullis account',
      '  PORTCULLIS  ',
      'Sign in to Portcullis',
      'Port-cullis',
      'P o r t c u l l i s',
      'Ｐｏｒｔｃｕｌｌｉｓ', // fullwidth (NFKC)
      'Pоrtcullis', // Cyrillic о
      'PortcuIIis', // capital I for l
      'P0rtcullis', // zero for o
      'Pórtcüllis', // accents
      'Port\u200Bcullis', // zero-width space
      'Your account',
      'YOUR  ACCOUNT',
      'Admin console',
      'Adrnin console', // rn for m
      'Аdmin Console', // Cyrillic А
      'Administrator',
    ];
    for (const name of reserved) {
      const { token } = await newIat();
      const refused = await register({ ...web, client_name: name }, token);
      expect(refused.status, name).to.equal(400);
      expect(refused.body.error, name).to.equal('invalid_client_metadata');
      expect(refused.body.error_description, name).to.match(/client_name/);
    }
    // Names that merely share words are fine.
    for (const name of ['Acme Notes', 'Account Manager Pro', 'Admin Tools for Acme', 'Cullis']) {
      const { token } = await newIat();
      expect((await register({ ...web, client_name: name }, token)).status, name).to.equal(201);
    }
    // Nor by RFC 7592 update.
    const { token } = await newIat();
    const created = await register(web, token);
    const renamed = await fetch(created.body.registration_client_uri as string, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${created.body.registration_access_token as string}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: created.body.client_id, ...web, client_name: 'Portcullis Account' }),
    });
    expect(renamed.status).to.equal(400);
    expect(((await renamed.json()) as Record<string, unknown>).error).to.equal('invalid_client_metadata');
    // An operator names first-party apps (portcullis clients create).
    const { createClient } = await import('../../src/cli/clients.ts');
    const operators = await createClient(servers.deps, { ...web, client_name: 'Portcullis CLI' });
    expect(operators.client_name).to.equal('Portcullis CLI');
  });

  it('client cache: RFC 7592 updates and deletes, and disabling, are seen at once by the same instance', async function () {
    const { token } = await newIat();
    const created = await register(
      { client_name: 'Cached service', grant_types: ['client_credentials'], scope: 'records:read records:write' },
      token,
    );
    const clientId = created.body.client_id as string;
    const uri = created.body.registration_client_uri as string;
    const grant = async (scope: string) => {
      const response = await fetch(`${servers.issuer}/token`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: basicAuth(clientId, created.body.client_secret as string),
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource: servers.apiUrl }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect((await grant('records:write')).status).to.equal(200);

    // The client is now served from memory; a write that bypasses the store (SQL by hand) still
    // reaches the cache, through the table's change notification (test/store/client-changes.test.ts).
    await servers.deps.knex('oauth_clients').where({ client_id: clientId }).update({ disabled: true });
    await eventually(async () => expect((await grant('records:write')).body.error).to.equal('invalid_client'), {
      message: 'the cached client is refused once the table says it is disabled',
    });
    expect(await servers.deps.stores.clients.setDisabled(clientId, false)).to.equal(true);
    expect((await grant('records:write')).status).to.equal(200);
    expect(await servers.deps.stores.clients.setDisabled(clientId, true)).to.equal(true);
    expect((await grant('records:write')).body.error).to.equal('invalid_client');
    expect(await servers.deps.stores.clients.setDisabled(clientId, false)).to.equal(true);
    expect((await grant('records:write')).status).to.equal(200);

    // RFC 7592 update: the narrowed scope applies to the very next request.
    const updated = await fetch(uri, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${created.body.registration_access_token as string}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        client_id: clientId,
        client_name: 'Cached service',
        grant_types: ['client_credentials'],
        scope: 'records:read',
        redirect_uris: [],
        response_types: [],
      }),
    });
    expect(updated.status).to.equal(200);
    expect((await grant('records:write')).body.error).to.equal('invalid_scope');
    expect((await grant('records:read')).status).to.equal(200);

    // RFC 7592 delete: the client is gone for the very next request.
    const rotated = ((await updated.json()) as Record<string, unknown>).registration_access_token as string;
    expect((await fetch(uri, { method: 'DELETE', headers: { Authorization: `Bearer ${rotated}` } })).status).to.equal(204);
    expect((await grant('records:read')).body.error).to.equal('invalid_client');
  });

  it('a registration access token cannot manage another client', async function () {
    const { token } = await newIat();
    const a = await register(web, token);
    const b = await register(web, token);
    const response = await fetch(b.body.registration_client_uri as string, {
      headers: { Authorization: `Bearer ${a.body.registration_access_token as string}` },
    });
    expect(response.status).to.equal(401);
  });

  it('disables clients idle for longer than CLIENT_IDLE_DISABLE_DAYS and re-enables on request', async function () {
    const { token } = await newIat();
    const created = await register(web, token);
    const clientId = created.body.client_id as string;
    await servers.deps
      .knex('oauth_clients')
      .where({ client_id: clientId })
      .update({ created_at: new Date(Date.now() - 40 * 86_400_000) });
    let audited = 0;
    expect(
      await servers.deps.stores.clients.find(clientId, 30, () => {
        audited++;
        return Promise.resolve();
      }),
    ).to.equal(undefined);
    expect(audited).to.equal(1);
    const listed = (await servers.deps.stores.clients.list()).find((c) => c.client_id === clientId);
    expect(listed?.disabled).to.equal(true);
    expect(await servers.deps.stores.clients.setDisabled(clientId, false)).to.equal(true);
    expect(await servers.deps.stores.clients.find(clientId, 30)).to.not.equal(undefined);
  });

  it('CLIENT_IDLE_DISABLE_DAYS: an idle client is refused at the token endpoint, disabled and audited', async function () {
    const idle = await startTestServers({ env: { CLIENT_IDLE_DISABLE_DAYS: '30' } });
    try {
      const { token } = await newIat();
      const created = await fetch(`${idle.issuer}/reg`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ client_name: 'Idle service', grant_types: ['client_credentials'], scope: 'records:read' }),
      });
      const body = (await created.json()) as { client_id: string; client_secret: string };
      const grant = () =>
        fetch(`${idle.issuer}/token`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/x-www-form-urlencoded',
            Authorization: basicAuth(body.client_id, body.client_secret),
          },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'records:read', resource: idle.apiUrl }),
        });
      expect((await grant()).status).to.equal(200);
      // The token endpoint notes last use in the background; wait for it so it cannot land after
      // the back-dating below and make the client look fresh again.
      const row = () =>
        idle.deps.knex('oauth_clients').where({ client_id: body.client_id }).first<{ last_used_at: Date | null }>('last_used_at');
      await eventually(async () => expect((await row()).last_used_at, 'last_used_at').to.be.instanceOf(Date));
      await idle.deps
        .knex('oauth_clients')
        .where({ client_id: body.client_id })
        .update({ last_used_at: new Date(Date.now() - 31 * 86_400_000) });
      // The first grant cached the client; a direct SQL write is only seen once the entry goes.
      idle.deps.stores.clients.forget(body.client_id);
      const refused = await grant();
      expect(refused.status).to.equal(401);
      expect(((await refused.json()) as Record<string, unknown>).error).to.equal('invalid_client');
      expect((await idle.deps.stores.clients.list()).find((c) => c.client_id === body.client_id)?.disabled).to.equal(true);
      const events = await idle.deps.knex('audit_events').where({ type: 'client.disabled', client_id: body.client_id });
      expect(events).to.have.length(1);
    } finally {
      await idle.stop();
    }
  });

  describe('CLI', function () {
    const cli = async (...args: string[]) => {
      const { stdout } = await run(process.execPath, ['src/cli.ts', ...args], { env: { ...process.env, ...testConfigEnv() } });
      return JSON.parse(stdout) as unknown;
    };

    it('iat create | list | revoke, and clients create applies the same policy', async function () {
      this.timeout(60_000); // seven CLI processes, each loading the whole app: slower with other files running beside it
      const created = (await cli('iat', 'create', '--ttl', '600', '--max-uses', '2', '--note', 'from the CLI')) as Record<string, unknown>;
      expect(created.initial_access_token).to.match(/^piat_/);
      expect(created).to.include({ max_uses: 2, uses: 0, note: 'from the CLI' });
      const listed = (await cli('iat', 'list')) as Record<string, unknown>[];
      const entry = listed.find((t) => t.id === created.id);
      expect(entry).to.not.have.property('initial_access_token');
      expect(entry).to.not.have.property('token_hash');
      expect(entry?.state).to.equal('active');
      expect((await register(web, created.initial_access_token as string)).status).to.equal(201);
      expect(await cli('iat', 'revoke', created.id as string)).to.deep.equal({ id: created.id, revoked: true });
      const audited = await servers.deps
        .knex('audit_events')
        .whereIn('type', ['iat.created', 'iat.revoked'])
        .whereRaw("data->>'id' = ?", [created.id as string]);
      expect(audited.map((e: { type: string }) => e.type)).to.have.members(['iat.created', 'iat.revoked']);
      expect((await register(web, created.initial_access_token as string)).status).to.equal(401);
      const afterRevoke = (await cli('iat', 'list')) as Record<string, unknown>[];
      expect(afterRevoke.find((t) => t.id === created.id)?.state).to.equal('revoked');

      let failure: unknown;
      try {
        await cli('clients', 'create', '--json', JSON.stringify({ redirect_uris: ['javascript:alert(1)'] }));
      } catch (error) {
        failure = error;
      }
      const stderr = (failure as { stderr?: string }).stderr ?? '';
      expect(JSON.parse(stderr)).to.deep.include({ error: 'invalid_redirect_uri' });

      const clientsList = (await cli('clients', 'list')) as Record<string, unknown>[];
      expect(clientsList.some((c) => typeof c.created_by === 'string' && c.created_by.startsWith('iat:'))).to.equal(true);
    });
  });
});
