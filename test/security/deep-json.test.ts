import { expect } from 'chai';
import { jsonNestingExceeds } from '../../src/shared/json-nesting.ts';
import { call, createRp, signedInUser, type ApiResponse } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { DEFAULT_MAX_BODY_BYTES } from '../../src/api/define-route.ts';

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

/**
 * R15 (the second adversarial review): every JSON body either server parses has a nesting limit.
 * Before it, `POST /v1/records` with `data` nested a few thousand levels deep was parsed (V8's
 * JSON.parse does not recurse) and then failed in JSON.stringify (it does) as the record was
 * sealed: a 500; nesting just below that failure was stored, and the export (which nests it a
 * few levels deeper) could then fail for good.
 */
describe('R15 JSON nesting limits (API and registration)', function () {
  it('R15 the nesting count: brackets inside strings and after escaped quotes do not count; objects and arrays do', function () {
    const of = (text: string, max: number) => jsonNestingExceeds(Buffer.from(text), max);
    expect(of('[[[]]]', 3)).to.equal(false);
    expect(of('[[[[]]]]', 3)).to.equal(true);
    expect(of('{"a":{"b":[1]}}', 3)).to.equal(false);
    expect(of('{"a":{"b":[{}]}}', 3)).to.equal(true);
    expect(of(`{"s":"${'['.repeat(100)}"}`, 1)).to.equal(false);
    expect(of(String.raw`{"s":"\"[[[[","t":"é{{{{"}`, 1)).to.equal(false);
    expect(of(String.raw`{"s":"\\"}[[`, 1)).to.equal(true);
    // Closing brackets first (not JSON) do not pay for opening ones later.
    expect(of(']]]]][[[', 2)).to.equal(true);
    expect(of('[]'.repeat(1000), 1)).to.equal(false);
  });

  this.timeout(120_000);
  let servers: TestServers;
  let member: Awaited<ReturnType<typeof signedInUser>>;
  let admin: Awaited<ReturnType<typeof signedInUser>>;
  let recordId: string;

  before(async function () {
    servers = await startTestServers();
    const rp = await createRp(servers, { scope: 'openid offline_access profile email records:read records:write admin account:export' });
    member = await signedInUser(servers, rp, { scopes: 'records:read records:write account:export' });
    admin = await signedInUser(servers, rp, { roles: ['admin'], scopes: 'admin' });
    const created = await call(servers, 'POST', '/v1/records', member.token, { type: 'note', label: 'Plain', data: { a: 1 } });
    expect(created.status, created.text).to.equal(201);
    recordId = (created.body as { id: string }).id;
  });

  after(async function () {
    await servers.stop();
  });

  /** `{"type":"note","label":"x","data":{"v":[[…]]}}` with `depth` brackets inside `data.v`. */
  const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;

  /**
   * The refusal is a problem, quickly, and the server still answers: 413 for a body over the
   * API's 64 KiB limit (it is not even parsed), otherwise 400 naming the nesting limit.
   */
  async function expectRefused(what: string, response: ApiResponse, startedAt: number, bodyBytes: number): Promise<void> {
    if (bodyBytes > DEFAULT_MAX_BODY_BYTES) {
      expect(response.status, `${what}: ${response.text.slice(0, 200)}`).to.equal(413);
      expect(response.body, what).to.include({ type: 'urn:portcullis:problem:payload-too-large' });
    } else {
      expect(response.status, `${what}: ${response.text.slice(0, 200)}`).to.equal(400);
      expect(response.text, what).to.include('is nested more than 32 levels deep');
    }
    expect(response.headers.get('Content-Type'), what).to.match(/^application\/problem\+json/);
    expect(Date.now() - startedAt, `${what}: answered in time`).to.be.below(2000);
    expect((await call(servers, 'GET', `/v1/records/${recordId}`, member.token)).status, `${what}: still serving`).to.equal(200);
  }

  it('R15 API bodies nested beyond the limit are a 400 problem (413 when over the size limit too) on every route that takes JSON (records, shares, admin patch), never a 500', async function () {
    const bodies: [string, string, string, (inner: string) => string][] = [
      ['create', 'POST', '/v1/records', (inner) => `{"type":"note","label":"x","data":{"v":${inner}}}`],
      ['update', 'PATCH', `/v1/records/${recordId}`, (inner) => `{"data":{"v":${inner}}}`],
      ['share', 'POST', `/v1/records/${recordId}/shares`, (inner) => `{"userId":${inner}}`],
      ['admin patch', 'PATCH', `/v1/admin/users/${member.id}`, (inner) => `{"roles":${inner}}`],
    ];
    for (const [name, method, path, wrap] of bodies) {
      const token = name === 'admin patch' ? admin.token : member.token;
      for (const depth of [100_000, 30_000, 5_000, 65]) {
        for (const [open, close] of [
          ['[', ']'],
          ['{"a":', '}'],
        ] as const) {
          const body = wrap(nested(depth, open, close));
          const startedAt = Date.now();
          const response = await call(servers, method, path, token, body);
          await expectRefused(`${name}, ${depth} × ${open}`, response, startedAt, Buffer.byteLength(body));
        }
      }
    }
  });

  it('R15 record data up to the nesting limit is stored, read and exported; one level more is refused naming the limit', async function () {
    // data is level 1 of the body's value `data`; the body itself is one more.
    const deepest = await call(servers, 'POST', '/v1/records', member.token, `{"type":"note","label":"deep","data":{"v":${nested(30)}}}`);
    expect(deepest.status, deepest.text).to.equal(201);
    const id = (deepest.body as { id: string }).id;
    expect((await call(servers, 'GET', `/v1/records/${id}`, member.token)).status).to.equal(200);
    const exported = await call(servers, 'GET', '/v1/me/export', member.token);
    expect(exported.status, exported.text.slice(0, 200)).to.equal(200);
    const over = await call(servers, 'POST', '/v1/records', member.token, `{"type":"note","label":"deep","data":{"v":${nested(31)}}}`);
    expect(over.status, over.text).to.equal(400);
    expect((over.body as { detail?: string }).detail).to.match(/nested more than 32 levels/);
  });

  it('R15 a registration (RFC 7591) nesting 20000 levels deep in any metadata value is refused with an OAuth error, never a 500', async function () {
    const { token } = await servers.deps.stores.initialAccessTokens.create({});
    for (const field of ['client_name', 'contacts', 'jwks', 'logo_uri', 'unknown_property', 'software_statement']) {
      const body = `{"redirect_uris":["https://app.example/cb"],"${field}":${nested(20_000)}}`;
      const startedAt = Date.now();
      const response = await fetch(`${servers.issuer}/reg`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body,
      });
      expect(response.status, field).to.be.within(400, 499);
      expect(((await response.json()) as { error?: string }).error, field).to.be.a('string');
      expect(Date.now() - startedAt, field).to.be.below(2000);
    }
  });
});
