import { expect } from 'chai';
import type * as client from 'openid-client';
import { call, createRp, signedInUser, type ApiResponse } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

type Page = { items: { id: string; owner_id?: string }[]; next_cursor: string | null };

/**
 * R15: keyset cursors are opaque positions in one listing. A malformed, tampered or other
 * listing's cursor is a 400 problem naming `cursor`, never a 500 (a value the database refuses)
 * and never a query beyond the caller's own rows.
 */
describe('R15 keyset cursors (records, admin users, audit)', function () {
  this.timeout(90_000);
  let servers: TestServers;
  let admin: Awaited<ReturnType<typeof signedInUser>>;
  let alice: Awaited<ReturnType<typeof signedInUser>>;
  let bob: Awaited<ReturnType<typeof signedInUser>>;

  before(async function () {
    servers = await startTestServers();
    const rp: client.Configuration = await createRp(servers, { scope: 'openid offline_access records:read records:write admin' });
    admin = await signedInUser(servers, rp, { roles: ['admin'], scopes: 'records:read records:write admin' });
    alice = await signedInUser(servers, rp);
    bob = await signedInUser(servers, rp);
    for (const who of [alice, alice, alice, bob, bob, bob]) {
      const created = await call(servers, 'POST', '/v1/records', who.token, { type: 'note', label: 'n', data: {} });
      expect(created.status).to.equal(201);
    }
  });
  after(async function () {
    await servers.stop();
  });

  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

  function expectCursorProblem(what: string, response: ApiResponse): void {
    expect(response.status, `${what}: ${response.text.slice(0, 300)}`).to.equal(400);
    expect(response.headers.get('Content-Type'), what).to.match(/^application\/problem\+json/);
    const pointers = ((response.body as { errors?: { pointer: string }[] }).errors ?? []).map((e) => e.pointer);
    expect(pointers, what).to.deep.equal(['/query/cursor']);
  }

  it('R15 a malformed or tampered cursor is a 400 problem naming cursor on /v1/records and /v1/admin/users, never a 500', async function () {
    const first = (await call(servers, 'GET', '/v1/records?limit=1', alice.token)).body as Page;
    const real = JSON.parse(Buffer.from(first.next_cursor ?? '', 'base64url').toString('utf8')) as unknown[];
    const id = String(real.at(-1));
    const at = String(real.at(-2));
    const bad: [string, string][] = [
      ['not base64 JSON', 'bm90LWEtY3Vyc29y'],
      ['an object', encode({ createdAt: at, id })],
      ['null', encode(null)],
      ['36 dashes for the id', encode([...real.slice(0, -1), '-'.repeat(36)])],
      ['36 hex digits without dashes', encode([...real.slice(0, -1), 'a'.repeat(36)])],
      ['an uppercase id', encode([...real.slice(0, -1), id.toUpperCase()])],
      ['a year the database cannot store', encode([...real.slice(0, -2), '+275760-09-13T00:00:00.000Z', id])],
      ['a date before the epoch', encode([...real.slice(0, -2), '-001000-01-01T00:00:00.000Z', id])],
      ['a time that is not ISO', encode([...real.slice(0, -2), '1', id])],
      ['a time before 1970', encode([...real.slice(0, -2), '1969-12-31T23:59:59.999999Z', id])],
      ['a day that does not exist', encode([...real.slice(0, -2), '2026-02-30T00:00:00.000000Z', id])],
      ['a time cut to milliseconds', encode([...real.slice(0, -2), `${at.slice(0, 23)}Z`, id])],
      ['a cursor of the earlier format', encode([`${at.slice(0, 23)}Z`, id])],
      ['the same position spelled with spaces', Buffer.from(JSON.stringify(real, null, 1)).toString('base64url')],
      ['an extra member', encode([...real, 'x'])],
      ['a number for the id', encode([...real.slice(0, -1), 7])],
    ];
    for (const [what, cursor] of bad) {
      expectCursorProblem(`records: ${what}`, await call(servers, 'GET', `/v1/records?cursor=${cursor}`, alice.token));
      expectCursorProblem(`users: ${what}`, await call(servers, 'GET', `/v1/admin/users?cursor=${cursor}`, admin.token));
    }
  });

  it("R15 another listing's cursor is refused: records ↔ admin users, and either on the audit log", async function () {
    const records = (await call(servers, 'GET', '/v1/records?limit=1', alice.token)).body as Page;
    const users = (await call(servers, 'GET', '/v1/admin/users?limit=1', admin.token)).body as Page;
    const audit = (await call(servers, 'GET', '/v1/admin/audit?limit=1', admin.token)).body as Page;
    expect(records.next_cursor).to.be.a('string');
    expect(users.next_cursor).to.be.a('string');
    expect(audit.next_cursor).to.be.a('string');
    expectCursorProblem(
      'records cursor on users',
      await call(servers, 'GET', `/v1/admin/users?cursor=${records.next_cursor}`, admin.token),
    );
    expectCursorProblem('users cursor on records', await call(servers, 'GET', `/v1/records?cursor=${users.next_cursor}`, admin.token));
    expectCursorProblem(
      'records cursor on audit',
      await call(servers, 'GET', `/v1/admin/audit?cursor=${records.next_cursor}`, admin.token),
    );
    expectCursorProblem('audit cursor on records', await call(servers, 'GET', `/v1/records?cursor=${audit.next_cursor}`, alice.token));
    expectCursorProblem('audit cursor on users', await call(servers, 'GET', `/v1/admin/users?cursor=${audit.next_cursor}`, admin.token));
  });

  it("R15 a well-formed cursor is only a position: Bob's cursor in Alice's listing pages through Alice's records alone", async function () {
    const bobs = (await call(servers, 'GET', '/v1/records?limit=1', bob.token)).body as Page;
    let cursor = bobs.next_cursor;
    const seen: string[] = [];
    for (let pages = 0; cursor && pages < 10; pages++) {
      const response = await call(servers, 'GET', `/v1/records?limit=2&cursor=${cursor}`, alice.token);
      expect(response.status).to.equal(200);
      const page = response.body as Page;
      seen.push(...page.items.map((item) => item.owner_id ?? ''));
      cursor = page.next_cursor;
    }
    expect(
      seen.every((owner) => owner === alice.id),
      'only Alice’s records',
    ).to.equal(true);
  });

  it('R15 paging one row at a time visits every row once, in both directions (records newest first, users oldest first)', async function () {
    async function all(path: string, token: string): Promise<string[]> {
      const ids: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 50; pages++) {
        const response = await call(servers, 'GET', `${path}?limit=1${cursor ? `&cursor=${cursor}` : ''}`, token);
        expect(response.status, response.text).to.equal(200);
        const page = response.body as Page;
        ids.push(...page.items.map((item) => item.id));
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      return ids;
    }
    const records = await all('/v1/records', alice.token);
    expect(records).to.have.length(3);
    expect(new Set(records).size).to.equal(3);
    const users = await all('/v1/admin/users', admin.token);
    const total = Number((await servers.deps.knex('users').count<{ count: string }[]>({ count: '*' }))[0]?.count);
    expect(users).to.have.length(total);
    expect(new Set(users).size).to.equal(total);
  });
});
