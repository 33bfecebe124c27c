import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type * as client from 'openid-client';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

type User = Awaited<ReturnType<typeof signedInUser>>;

/**
 * R15: ids were compared as the strings the request spelled, while Postgres compares UUIDs by
 * value, so an uppercase spelling of one's own id passed every "is this me?" check. Every UUID
 * from a request is now validated and lowercased (the spelling the database writes) before any
 * code sees it; other spellings (`urn:uuid:`, braces, no hyphens) are refused.
 */
describe('R15 UUID spellings in requests', function () {
  this.timeout(90_000);
  let servers: TestServers;
  let rp: client.Configuration;
  let admin: User;

  before(async function () {
    servers = await startTestServers({ env: { SHARE_OFFERS_PENDING_PER_RECIPIENT: '3' } });
    rp = await createRp(servers, { scope: 'openid offline_access records:read records:write admin' });
    admin = await signedInUser(servers, rp, { roles: ['admin'], scopes: 'admin' });
  });
  after(async function () {
    await servers.stop();
  });

  const create = async (owner: User, label = 'Mine') => {
    const res = await call(servers, 'POST', '/v1/records', owner.token, { type: 'note', label, data: {} });
    expect(res.status, res.text).to.equal(201);
    return (res.body as { id: string }).id;
  };

  it('R15 sharing a record with yourself through an uppercase spelling of your own id is refused like the lowercase one, and stores no offer', async function () {
    const owner = await signedInUser(servers, rp);
    const recordId = await create(owner);
    for (const spelling of [owner.id, owner.id.toUpperCase(), `${owner.id.slice(0, 8).toUpperCase()}${owner.id.slice(8)}`]) {
      const res = await call(servers, 'POST', `/v1/records/${recordId}/shares`, owner.token, { userId: spelling });
      expect(res.status, `${spelling}: ${res.text}`).to.equal(422);
    }
    expect(await servers.deps.knex('record_share_offers').where({ record_id: recordId })).to.deep.equal([]);
    expect((await call(servers, 'POST', `/v1/shares/incoming/${recordId}/accept`, owner.token)).status).to.equal(404);
  });

  it('R15 an administrator cannot disable themselves or drop their own admin role through an uppercase spelling of their id', async function () {
    for (const patch of [{ disabled: true }, { roles: ['user'] }]) {
      const res = await call(servers, 'PATCH', `/v1/admin/users/${admin.id.toUpperCase()}`, admin.token, patch);
      expect(res.status, `${JSON.stringify(patch)}: ${res.text}`).to.equal(409);
    }
    const me = await call(servers, 'GET', `/v1/admin/users/${admin.id}`, admin.token);
    expect(me.body).to.deep.include({ disabled: false, roles: ['admin'] });
  });

  it('R15 ids are answered in the lowercase spelling whatever the request used; urn:uuid:, braced and unhyphenated spellings are a 400 problem', async function () {
    const owner = await signedInUser(servers, rp);
    const recipient = await signedInUser(servers, rp);
    const recordId = await create(owner);
    const read = await call(servers, 'GET', `/v1/records/${recordId.toUpperCase()}`, owner.token);
    expect(read.status).to.equal(200);
    expect((read.body as { id: string }).id).to.equal(recordId);
    const offered = await call(servers, 'POST', `/v1/records/${recordId.toUpperCase()}/shares`, owner.token, {
      userId: recipient.id.toUpperCase(),
    });
    expect(offered.status, offered.text).to.equal(201);
    expect(offered.body).to.deep.equal({ record_id: recordId, user_id: recipient.id, state: 'offered' });
    // The audit trail names the ids as the database spells them.
    const [event] = await servers.deps.knex<AuditEventRow>('audit_events').where({ type: 'record.shared', actor_id: owner.id });
    expect(event?.data).to.deep.include({ record_id: recordId, with_user: recipient.id });
    // Offered twice in two spellings is one offer.
    const again = await call(servers, 'POST', `/v1/records/${recordId}/shares`, owner.token, { userId: recipient.id });
    expect(again.status).to.equal(200);

    const other = [`urn:uuid:${recordId}`, `{${recordId}}`, recordId.replaceAll('-', ''), `${recordId} `, `${recordId.slice(0, 35)}g`];
    for (const spelling of other) {
      const path = await call(servers, 'GET', `/v1/records/${encodeURIComponent(spelling)}`, owner.token);
      expect(path.status, `path ${spelling}: ${path.text}`).to.equal(400);
      expect(path.headers.get('Content-Type')).to.match(/^application\/problem\+json/);
      const body = await call(servers, 'POST', `/v1/records/${recordId}/shares`, owner.token, {
        userId: spelling.replace(recordId, recipient.id),
      });
      expect(body.status, `body ${spelling}: ${body.text}`).to.equal(400);
    }
  });

  it('R15 concurrent offers to one recipient in different spellings cannot pass the per-recipient limit', async function () {
    const recipient = randomUUID();
    const spellings = [
      recipient,
      recipient.toUpperCase(),
      `${recipient.slice(0, 9)}${recipient.slice(9).toUpperCase()}`,
      `${recipient.slice(0, 19).toUpperCase()}${recipient.slice(19)}`,
    ];
    const sharers = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => signedInUser(servers, rp)));
    const records = await Promise.all(sharers.map((sharer) => create(sharer, 'Burst')));
    const answers = await Promise.all(
      sharers.map((sharer, i) =>
        call(servers, 'POST', `/v1/records/${records[i]}/shares`, sharer.token, { userId: spellings[i % spellings.length] }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).to.deep.equal([201, 201, 201, 409, 409, 409, 409, 409]);
    expect(await servers.deps.knex('record_share_offers').where({ recipient_id: recipient })).to.have.length(3);
  });
});
