import { expect } from 'chai';
import { createTestClient } from '../helpers/factories.ts';
import { startInstance, stopInstance, type Instance } from '../helpers/cluster.ts';
import { formBody, rawRequest, type RawReply } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

type Registered = { client_id: string; client_secret?: string };

/** A client_credentials request with client_secret_post: the client_id the token bucket reads ahead is in the body. */
const tokenRequest = (
  origin: string,
  client: Registered,
  form: Record<string, string>,
  options: { chunked?: boolean; contentType?: string } = {},
): Promise<RawReply> =>
  rawRequest(origin, {
    method: 'POST',
    target: '/token',
    headers: { 'Content-Type': options.contentType ?? 'application/x-www-form-urlencoded' },
    body: formBody({ grant_type: 'client_credentials', client_id: client.client_id, client_secret: client.client_secret ?? '', ...form }),
    ...(options.chunked ? { chunked: true } : {}),
  });

/** What a token answer says, without the parts that differ between two issued tokens. */
const shapeOf = (reply: RawReply) => {
  const body = JSON.parse(reply.body) as Record<string, unknown>;
  return {
    status: reply.status,
    error: body.error,
    error_description: body.error_description,
    scope: body.scope,
    token_type: body.token_type,
    issued: typeof body.access_token === 'string',
  };
};

/**
 * R13 (issue 19, adversarial review): two of our middlewares read a request body before
 * oidc-provider (the token bucket's client_id peek, the RFC 7592 secret echo). The provider
 * found its stream drained, fell back to req.body and printed "oidc-provider WARNING: already
 * parsed request body detected…" to stderr, unstructured, once per process. The bytes read ahead
 * are now put back into the request stream, so the provider reads its body as if nobody had.
 */
describe('R13 bodies read ahead of oidc-provider', function () {
  this.timeout(90_000);

  describe('in a server process of its own (the warning is printed once per process)', function () {
    let servers: TestServers;
    let auth: Instance | undefined;

    before(async function () {
      servers = await startTestServers();
    });
    after(async function () {
      await stopInstance(auth);
      await servers.stop();
    });

    it('R13 a token request read ahead (Content-Length and chunked) and an RFC 7592 echo print no oidc-provider warning, and are answered', async function () {
      auth = await startInstance('auth', { RATE_LIMIT_TOKEN_PER_CLIENT: '1000', LOG_LEVEL: 'warn', API_URL: servers.apiUrl });
      const service = await createTestClient(servers.deps, {
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      });
      const form = { scope: 'records:read', resource: servers.apiUrl };
      for (const chunked of [false, true]) {
        const reply = await tokenRequest(auth.url, service, form, { chunked });
        expect(shapeOf(reply), reply.body).to.include({ status: 200, scope: 'records:read', issued: true });
      }

      // RFC 7592 §2.2: a PUT echoing the current secret is read ahead and rewritten before the provider parses it.
      const { token: iat } = await servers.deps.stores.initialAccessTokens.create({ note: 'R13 read-ahead' });
      const metadata = { client_name: 'Echo', redirect_uris: ['https://rp.example.test/cb'], grant_types: ['authorization_code'] };
      const registered = await fetch(`${auth.url}/reg`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${iat}` },
        body: JSON.stringify(metadata),
      });
      expect(registered.status).to.equal(201);
      const created = (await registered.json()) as Record<string, string>;
      const echoed = await rawRequest(auth.url, {
        method: 'PUT',
        target: new URL(created.registration_client_uri ?? '').pathname,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${created.registration_access_token ?? ''}` },
        body: JSON.stringify({ ...metadata, client_id: created.client_id, client_secret: created.client_secret, client_name: 'Echoed' }),
      });
      expect(echoed.status, echoed.body).to.equal(200);
      expect((JSON.parse(echoed.body) as Record<string, unknown>).client_name).to.equal('Echoed');

      const output = auth.output();
      expect(output).not.to.include('already parsed request body');
      expect(output).not.to.include('oidc-provider WARNING');
    });
  });

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    describe(`parsed identically (${storage} storage)`, function () {
      let peeking: TestServers;
      let plain: TestServers;
      let peekingClient: Registered;
      let plainClient: Registered;

      before(async function () {
        // Same database: the per-client limit makes the token bucket read every body ahead; without it nothing is.
        peeking = await startTestServers({ storage, env: { RATE_LIMIT_TOKEN_PER_CLIENT: '1000' } });
        plain = await startTestServers({ storage });
        const metadata = {
          grant_types: ['client_credentials'],
          redirect_uris: [],
          post_logout_redirect_uris: [],
          response_types: [],
          token_endpoint_auth_method: 'client_secret_post',
        };
        peekingClient = await createTestClient(peeking.deps, metadata);
        plainClient = await createTestClient(plain.deps, metadata);
      });
      after(async function () {
        await peeking.stop();
        await plain.stop();
      });

      it('R13 the token endpoint answers a body read ahead exactly as one it reads itself (encodings, charset, chunked, duplicates)', async function () {
        const cases: { form: (apiUrl: string) => Record<string, string>; chunked?: boolean; contentType?: string }[] = [
          { form: (apiUrl) => ({ scope: 'records:read', resource: apiUrl }) },
          { form: (apiUrl) => ({ scope: 'records:read records:write', resource: apiUrl }), chunked: true },
          {
            form: (apiUrl) => ({ scope: 'records:read', resource: apiUrl }),
            contentType: 'application/x-www-form-urlencoded; charset=utf-8',
          },
          { form: (apiUrl) => ({ scope: 'records:read admin', resource: apiUrl }) },
          { form: () => ({ scope: 'records:read', resource: 'https://elsewhere.example.test' }) },
        ];
        for (const { form, chunked, contentType } of cases) {
          const options = { chunked: chunked ?? false, ...(contentType ? { contentType } : {}) };
          const read = shapeOf(await tokenRequest(peeking.issuer, peekingClient, form(peeking.apiUrl), options));
          const own = shapeOf(await tokenRequest(plain.issuer, plainClient, form(plain.apiUrl), options));
          expect(read, JSON.stringify({ form: form('API_URL'), ...options })).to.deep.equal(own);
        }
        // '+' for spaces and percent-encoded separators, and a repeated parameter, sent as raw bytes.
        for (const raw of ['scope=records%3Aread+records%3Awrite', 'scope=records:read&scope=records:read']) {
          const send = (servers: TestServers, client: Registered) =>
            rawRequest(servers.issuer, {
              method: 'POST',
              target: '/token',
              headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
              body: `grant_type=client_credentials&client_id=${client.client_id}&client_secret=${client.client_secret ?? ''}&resource=${encodeURIComponent(servers.apiUrl)}&${raw}`,
            });
          expect(shapeOf(await send(peeking, peekingClient)), raw).to.deep.equal(shapeOf(await send(plain, plainClient)));
        }
      });
    });
  }
});
