import { expect } from 'chai';
import type * as client from 'openid-client';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { Browserless } from '../helpers/browserless.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

type Access = { via: string; records: { id: string; owner_id: string; type: string }[]; owner_ids: string[] };

/**
 * S11: every read of a record by someone other than its owner is audited (one event per
 * request, however many records a listing shows), and the owner sees an access history on the
 * account page: who (the reader's account id, which the owner shared with), which record, when,
 * through which app; never the reader's address, user agent or email.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S11 reads of records by others are audited and shown to the owner (${storage} storage)`, function () {
    this.timeout(120_000);
    let servers: TestServers;
    let rp: client.Configuration;

    before(async function () {
      servers = await startTestServers({ storage, env: { TRUST_PROXY: 'true' } });
      rp = await createRp(servers, { client_name: 'Reader App' });
    });
    after(async function () {
      await servers.stop();
    });

    const readerHeaders = { 'X-Forwarded-For': '198.51.100.44', 'User-Agent': 'reader-agent/9.1' };
    const accessEvents = (readerId: string) =>
      servers.deps.knex<AuditEventRow>('audit_events').where({ type: 'record.accessed', actor_id: readerId }).orderBy('id');
    const create = async (token: string, label: string, type = 'note') => {
      const res = await call(servers, 'POST', '/v1/records', token, { type, label, data: { secret: label } });
      expect(res.status).to.equal(201);
      return (res.body as { id: string }).id;
    };
    /** Offers the record and has the recipient accept it (R13: reads before that are impossible). */
    const share = async (token: string, recordId: string, recipient: { id: string; token: string }) => {
      expect((await call(servers, 'POST', `/v1/records/${recordId}/shares`, token, { userId: recipient.id })).status).to.equal(201);
      expect((await call(servers, 'POST', `/v1/shares/incoming/${recordId}/accept`, recipient.token)).status).to.equal(204);
    };

    /** Signs in to /account through the provider's login page; returns the account page HTML. */
    async function accountPage(user: { email: string; password: string }): Promise<string> {
      const browser = new Browserless(servers.issuer);
      return signInToAccount(browser, user);
    }

    it("S11 a shared record read by another user appears in the owner's access history on the account page, without the reader's address, agent or email", async function () {
      const owner = await signedInUser(servers, rp);
      const reader = await signedInUser(servers, rp);
      const recordId = await create(owner.token, 'Blood test', 'medical');
      await share(owner.token, recordId, reader);
      const read = await call(servers, 'GET', `/v1/records/${recordId}`, reader.token, undefined, readerHeaders);
      expect(read.status).to.equal(200);

      const events = await accessEvents(reader.id);
      expect(events).to.have.length(1);
      expect(events[0]!.data).to.deep.equal({
        via: 'get',
        records: [{ id: recordId, owner_id: owner.id, type: 'medical' }],
        owner_ids: [owner.id],
      });

      const html = await accountPage(owner);
      const section = /<section[^>]*aria-labelledby="h-access"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
      expect(section, 'access history section').to.include('Who read your shared records');
      expect(section).to.include(reader.id);
      expect(section).to.include(recordId);
      expect(section).to.include('Reader App');
      expect(section).to.include('medical');
      expect(section).to.match(/\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
      for (const leak of ['198.51.100.44', 'reader-agent', reader.email]) expect(html, leak).to.not.include(leak);
    });

    it('S11 a listing of 5 shared records is one audit event; each owner sees only their own records of it', async function () {
      const owner = await signedInUser(servers, rp);
      const other = await signedInUser(servers, rp);
      const reader = await signedInUser(servers, rp);
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await create(owner.token, `Owner record ${i}`));
      const othersRecord = await create(other.token, 'Other owner record');
      for (const id of ids) await share(owner.token, id, reader);
      await share(other.token, othersRecord, reader);

      const listing = await call(servers, 'GET', '/v1/records?limit=10', reader.token, undefined, readerHeaders);
      expect(listing.status).to.equal(200);
      expect((listing.body as { items: unknown[] }).items).to.have.length(5);
      const events = await accessEvents(reader.id);
      expect(events, 'one event for the whole listing').to.have.length(1);
      const data = events[0]!.data as Access;
      expect(data.via).to.equal('list');
      expect(data.records.map((r) => r.id)).to.have.members([...ids, othersRecord]);
      expect(data.owner_ids).to.have.members([owner.id, other.id]);

      const html = await accountPage(owner);
      const section = /<section[^>]*aria-labelledby="h-access"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
      for (const id of ids) expect(section).to.include(id);
      expect(section, "another owner's record id").to.not.include(othersRecord);
      expect(section).to.not.include(other.id);
    });

    it("S11 the owner's own reads (one record, a listing) are not logged as accesses", async function () {
      const owner = await signedInUser(servers, rp);
      const recordId = await create(owner.token, 'Mine');
      expect((await call(servers, 'GET', `/v1/records/${recordId}`, owner.token)).status).to.equal(200);
      expect((await call(servers, 'GET', '/v1/records', owner.token)).status).to.equal(200);
      expect(await accessEvents(owner.id)).to.deep.equal([]);
    });
  });
}
