import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type * as client from 'openid-client';
import { call, createRp, openApiChecker, signedInUser } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { vaultKeyId } from '../../src/shared/vault-key.ts';
import { testEnv } from '../setup.ts';

type RecordBody = {
  id: string;
  type: string;
  label: string;
  data: Record<string, unknown>;
  owner_id: string;
  access: string;
  shared_with?: string[];
};
type Page = { items: RecordBody[]; next_cursor: string | null };

describe('resource API: records vault', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let rp: client.Configuration;
  let conforms: Awaited<ReturnType<typeof openApiChecker>>;
  let alice: Awaited<ReturnType<typeof signedInUser>>;
  let bob: Awaited<ReturnType<typeof signedInUser>>;

  before(async function () {
    servers = await startTestServers();
    rp = await createRp(servers);
    conforms = await openApiChecker(servers);
    alice = await signedInUser(servers, rp);
    bob = await signedInUser(servers, rp);
  });
  after(async function () {
    await servers.stop();
  });

  const create = async (
    token: string,
    body: Record<string, unknown> = { type: 'financial', label: 'Bank account', data: { iban: 'DE89370400440532013000' } },
  ) => {
    const res = await call(servers, 'POST', '/v1/records', token, body);
    expect(res.status, res.text).to.equal(201);
    conforms('POST', '/v1/records', res);
    return res.body as RecordBody;
  };

  it('creates, reads, changes and deletes a record (owner)', async function () {
    const created = await create(alice.token);
    expect(created).to.deep.include({ type: 'financial', label: 'Bank account', owner_id: alice.id, access: 'owner', shared_with: [] });
    const got = await call(servers, 'GET', `/v1/records/${created.id}`, alice.token);
    expect(got.status).to.equal(200);
    expect((got.body as RecordBody).data).to.deep.equal({ iban: 'DE89370400440532013000' });
    conforms('GET', '/v1/records/{id}', got);
    const patched = await call(servers, 'PATCH', `/v1/records/${created.id}`, alice.token, { label: 'Main account' });
    expect(patched.status, patched.text).to.equal(200);
    expect(patched.body).to.deep.include({ label: 'Main account', type: 'financial' });
    expect((patched.body as RecordBody).data).to.deep.equal({ iban: 'DE89370400440532013000' });
    conforms('PATCH', '/v1/records/{id}', patched);
    const deleted = await call(servers, 'DELETE', `/v1/records/${created.id}`, alice.token);
    expect(deleted.status).to.equal(204);
    conforms('DELETE', '/v1/records/{id}', deleted);
    const gone = await call(servers, 'GET', `/v1/records/${created.id}`, alice.token);
    expect(gone.status).to.equal(404);
    conforms('GET', '/v1/records/{id}', gone);
  });

  it('stores label and data encrypted, never in clear', async function () {
    const created = await create(alice.token, { type: 'medical', label: 'Allergy card', data: { allergy: 'penicillin-secret-marker' } });
    const row = await servers.deps.knex('records').where({ id: created.id }).first<{ payload_sealed: string; type: string }>();
    expect(row.type).to.equal('medical');
    expect(row.payload_sealed).to.match(/^v1\.d1\./);
    expect(row.payload_sealed).to.not.include('penicillin');
    expect(row.payload_sealed).to.not.include('Allergy');
    const key = await servers.deps.knex('user_data_keys').where({ user_id: alice.id }).first<{ key_wrapped: string }>();
    // Wrapped under VAULT_KEY, never MASTER_KEY, which the API does not hold (S3).
    expect(key.key_wrapped).to.match(new RegExp(`^v1\\.${vaultKeyId(Buffer.from(testEnv.vaultKey, 'base64'))}\\.`));
    expect(key.key_wrapped).to.not.include(servers.deps.box.keyId);
  });

  it('fails authentication for tampered ciphertext and for ciphertext moved to another row or owner', async function () {
    const a1 = await create(alice.token, { type: 'note', label: 'one', data: { n: 1 } });
    const a2 = await create(alice.token, { type: 'note', label: 'two', data: { n: 2 } });
    const b1 = await create(bob.token, { type: 'note', label: 'bob', data: { n: 3 } });
    const sealed = async (id: string) =>
      (await servers.deps.knex('records').where({ id }).first<{ payload_sealed: string }>()).payload_sealed;
    const original = await sealed(a1.id);
    const { vault } = servers.deps.api;
    const aliceKey = await vault.keyOf(alice.id);
    const bobKey = await vault.keyOf(bob.id);

    // Moved to another row of the same owner: the record id in the associated data differs.
    expect(() => vault.open(aliceKey, a2.id, alice.id, original)).to.throw(/authentication failed/);
    // Moved to another owner's row: neither key nor associated data match.
    expect(() => vault.open(bobKey, b1.id, bob.id, original)).to.throw(/authentication failed/);
    // One flipped bit in the ciphertext.
    const parts = original.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    const tampered = [...parts.slice(0, 3), body.toString('base64url')].join('.');
    expect(() => vault.open(aliceKey, a1.id, alice.id, tampered)).to.throw(/authentication failed/);

    // Through the API: a swapped row is an opaque 500, never the wrong plaintext.
    await servers.deps.knex('records').where({ id: a2.id }).update({ payload_sealed: original });
    const swapped = await call(servers, 'GET', `/v1/records/${a2.id}`, alice.token);
    expect(swapped.status).to.equal(500);
    expect(swapped.text).to.not.include('one');
    expect(swapped.body).to.deep.equal({ type: 'urn:portcullis:problem:internal', title: 'Internal server error', status: 500 });
    await servers.deps.knex('records').where({ id: a2.id }).delete();
  });

  it('answers 404, not 403, for records of others and for unknown ids (same body)', async function () {
    const mine = await create(alice.token);
    const theirs = await call(servers, 'GET', `/v1/records/${mine.id}`, bob.token);
    const unknown = await call(servers, 'GET', `/v1/records/${randomUUID()}`, bob.token);
    expect(theirs.status).to.equal(404);
    expect(theirs.body).to.deep.equal(unknown.body);
    for (const [method, body] of [
      ['PATCH', { label: 'x' }],
      ['DELETE', undefined],
    ] as const) {
      const res = await call(servers, method, `/v1/records/${mine.id}`, bob.token, body);
      expect(res.status, method).to.equal(404);
    }
    expect((await call(servers, 'POST', `/v1/records/${mine.id}/shares`, bob.token, { userId: bob.id })).status).to.equal(404);
    const list = (await call(servers, 'GET', '/v1/records?limit=100', bob.token)).body as Page;
    expect(list.items.map((r) => r.id)).to.not.include(mine.id);
  });

  it('shares read-only with another user, and takes it back', async function () {
    const record = await create(alice.token, { type: 'identity', label: 'Passport', data: { number: 'X1234567' } });
    const shared = await call(servers, 'POST', `/v1/records/${record.id}/shares`, alice.token, { userId: bob.id });
    expect(shared.status, shared.text).to.equal(201);
    expect(shared.body).to.deep.equal({ record_id: record.id, user_id: bob.id, state: 'offered' });
    conforms('POST', '/v1/records/{id}/shares', shared);
    const again = await call(servers, 'POST', `/v1/records/${record.id}/shares`, alice.token, { userId: bob.id });
    expect(again.status).to.equal(200);
    conforms('POST', '/v1/records/{id}/shares', again);
    // A share is an offer until Bob accepts it (R13).
    expect((await call(servers, 'GET', `/v1/records/${record.id}`, bob.token)).status).to.equal(404);
    expect((await call(servers, 'POST', `/v1/shares/incoming/${record.id}/accept`, bob.token)).status).to.equal(204);

    const asBob = await call(servers, 'GET', `/v1/records/${record.id}`, bob.token);
    expect(asBob.status).to.equal(200);
    expect(asBob.body).to.deep.include({ access: 'shared', owner_id: alice.id, label: 'Passport' });
    expect(asBob.body).to.not.have.property('shared_with');
    conforms('GET', '/v1/records/{id}', asBob);
    const ownerView = (await call(servers, 'GET', `/v1/records/${record.id}`, alice.token)).body as RecordBody;
    expect(ownerView.shared_with).to.deep.equal([bob.id]);
    expect(ownerView).to.have.property('offered_to').that.deep.equals([]);
    const bobList = (await call(servers, 'GET', '/v1/records?limit=100', bob.token)).body as Page;
    expect(bobList.items.map((r) => r.id)).to.include(record.id);

    // Read-only: the reader knows it exists, so 403 (not 404) for changes.
    for (const [method, path, body] of [
      ['PATCH', `/v1/records/${record.id}`, { label: 'mine now' }],
      ['DELETE', `/v1/records/${record.id}`, undefined],
      ['POST', `/v1/records/${record.id}/shares`, { userId: alice.id }],
      ['DELETE', `/v1/records/${record.id}/shares/${bob.id}`, undefined],
    ] as const) {
      const res = await call(servers, method, path, bob.token, body);
      expect(res.status, `${method} ${path}`).to.equal(403);
      expect(res.body).to.have.property('type', 'urn:portcullis:problem:read-only-share');
    }

    const unshared = await call(servers, 'DELETE', `/v1/records/${record.id}/shares/${bob.id}`, alice.token);
    expect(unshared.status).to.equal(204);
    conforms('DELETE', '/v1/records/{id}/shares/{userId}', unshared);
    expect((await call(servers, 'GET', `/v1/records/${record.id}`, bob.token)).status).to.equal(404);
    expect((await call(servers, 'DELETE', `/v1/records/${record.id}/shares/${bob.id}`, alice.token)).status).to.equal(404);
  });

  it('refuses shares with yourself; an unknown user id gets an offer like any other (R13)', async function () {
    const record = await create(alice.token);
    const self = await call(servers, 'POST', `/v1/records/${record.id}/shares`, alice.token, { userId: alice.id });
    expect(self.status).to.equal(422);
    conforms('POST', '/v1/records/{id}/shares', self);
    const nobody = await call(servers, 'POST', `/v1/records/${record.id}/shares`, alice.token, { userId: randomUUID() });
    expect(nobody.status).to.equal(201);
  });

  it('pages with an opaque cursor, newest first, without gaps or repeats', async function () {
    const carol = await signedInUser(servers, rp);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await create(carol.token, { type: 'note', label: `note ${i}`, data: { i } })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await call(servers, 'GET', `/v1/records?limit=2${cursor ? `&cursor=${cursor}` : ''}`, carol.token);
      expect(res.status, res.text).to.equal(200);
      conforms('GET', '/v1/records', res);
      const page = res.body as Page;
      seen.push(...page.items.map((r) => r.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).to.equal(3);
    expect(seen).to.deep.equal([...ids].reverse());
    const filtered = (await call(servers, 'GET', '/v1/records?type=financial', carol.token)).body as Page;
    expect(filtered.items).to.deep.equal([]);
    const bad = await call(servers, 'GET', '/v1/records?cursor=bm90LWEtY3Vyc29y', carol.token);
    expect(bad.status).to.equal(400);
    conforms('GET', '/v1/records', bad);
  });

  it('validates input: unknown fields, types, bounds, JSON, media type', async function () {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/records', { type: 'note', label: 'x', data: {}, owner_id: bob.id }, '/body/owner_id'],
      ['POST', '/v1/records', { type: 'secret', label: 'x', data: {} }, '/body/type'],
      ['POST', '/v1/records', { type: 'note', data: {} }, '/body'],
      ['POST', '/v1/records', { type: 'note', label: 'x'.repeat(201), data: {} }, '/body/label'],
      ['POST', '/v1/records', { type: 'note', label: 'x', data: 'not an object' }, '/body/data'],
      ['GET', '/v1/records?limit=0', undefined, '/query/limit'],
      ['GET', '/v1/records?limit=101', undefined, '/query/limit'],
      ['GET', '/v1/records?sort=asc', undefined, '/query/sort'],
      ['GET', '/v1/records/not-a-uuid', undefined, '/path/id'],
      ['PATCH', `/v1/records/${randomUUID()}`, {}, '/body'],
    ];
    for (const [method, path, body, pointer] of cases) {
      const res = await call(servers, method, path, alice.token, body);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).to.equal(400);
      expect(res.body).to.have.property('type', 'urn:portcullis:problem:invalid-request');
      const errors = (res.body as { errors: { pointer: string }[] }).errors;
      expect(
        errors.map((e) => e.pointer),
        `${method} ${path}`,
      ).to.include(pointer);
    }
    const notJson = await call(servers, 'POST', '/v1/records', alice.token, '{"type":', {});
    expect(notJson.status).to.equal(400);
    const form = await call(servers, 'POST', '/v1/records', alice.token, 'type=note', {
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).to.equal(415);
    conforms('POST', '/v1/records', form);
  });

  it('answers 405 with Allow for a known path and another method', async function () {
    const res = await call(servers, 'PUT', '/v1/records', alice.token, { type: 'note', label: 'x', data: {} });
    expect(res.status).to.equal(405);
    expect(res.headers.get('Allow')).to.include('GET').and.include('POST');
    expect(res.body).to.have.property('type', 'urn:portcullis:problem:method-not-allowed');
    expect((await call(servers, 'GET', '/v1/nothing-here', alice.token)).status).to.equal(404);
  });

  it('answers 413 for bodies over the limit', async function () {
    const res = await call(servers, 'POST', '/v1/records', alice.token, {
      type: 'note',
      label: 'big',
      data: { blob: 'x'.repeat(70 * 1024) },
    });
    expect(res.status).to.equal(413);
    expect(res.body).to.have.property('type', 'urn:portcullis:problem:payload-too-large');
    conforms('POST', '/v1/records', res);
  });

  it('needs the scope (403 insufficient_scope with a hint) and the permission (403 problem)', async function () {
    const reader = await signedInUser(servers, rp, { scopes: 'records:read' });
    const denied = await call(servers, 'POST', '/v1/records', reader.token, { type: 'note', label: 'x', data: {} });
    expect(denied.status).to.equal(403);
    expect(denied.headers.get('WWW-Authenticate')).to.match(/^Bearer .*error="insufficient_scope".*scope="records:write"/);
    conforms('POST', '/v1/records', denied);
    expect((await call(servers, 'GET', '/v1/records', reader.token)).status).to.equal(200);

    const noScope = await signedInUser(servers, rp, { scopes: '' });
    const list = await call(servers, 'GET', '/v1/records', noScope.token);
    expect(list.status).to.equal(403);
    expect(list.headers.get('WWW-Authenticate')).to.include('scope="records:read"');

    // An auditor's roles do not grant records:read, whatever the token's scopes.
    const auditor = await signedInUser(servers, rp, { roles: ['auditor'], scopes: 'records:read records:write' });
    const forbidden = await call(servers, 'GET', '/v1/records', auditor.token);
    expect(forbidden.status).to.equal(403);
    expect(forbidden.body).to.deep.include({
      type: 'urn:portcullis:problem:forbidden',
      detail: 'This request needs the permission "records:read".',
    });
    expect(forbidden.headers.get('WWW-Authenticate')).to.equal(null);
    conforms('GET', '/v1/records', forbidden);
  });
});
