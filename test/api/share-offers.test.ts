import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type * as client from 'openid-client';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { call, createRp, openApiChecker, signedInUser, type ApiResponse } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

type User = Awaited<ReturnType<typeof signedInUser>>;
type Offer = { record_id: string; record_type: string; from: { id: string; email: string }; offered_at: string };
type RecordView = { id: string; shared_with?: string[]; offered_to?: string[] };

/**
 * R13: a share is an offer until the recipient accepts it. Before that the recipient's ordinary
 * listings and reads do not show the record and nothing reaches the sharer's access history (a
 * share needed no consent, so any account id could be turned into a tracking beacon). The answer
 * to an offer never tells whether the account id exists, pending offers are bounded per sharer
 * and per recipient, and a decline holds off that sharer's next offers for a cooldown.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13 shares are offers the recipient accepts (${storage} storage)`, function () {
    this.timeout(120_000);
    let servers: TestServers;
    let rp: client.Configuration;
    let conforms: Awaited<ReturnType<typeof openApiChecker>>;

    before(async function () {
      servers = await startTestServers({
        storage,
        env: { SHARE_OFFERS_PENDING_PER_SHARER: '4', SHARE_OFFERS_PENDING_PER_RECIPIENT: '3', SHARE_DECLINE_COOLDOWN_DAYS: '30' },
      });
      rp = await createRp(servers, { client_name: 'Tracker App' });
      conforms = await openApiChecker(servers);
    });
    after(async function () {
      await servers.stop();
    });

    const create = async (owner: User, label = 'Lab results', type = 'medical') => {
      const res = await call(servers, 'POST', '/v1/records', owner.token, { type, label, data: { secret: label } });
      expect(res.status, res.text).to.equal(201);
      return (res.body as { id: string }).id;
    };
    const offer = (owner: User, recordId: string, userId: string) =>
      call(servers, 'POST', `/v1/records/${recordId}/shares`, owner.token, { userId });
    const incoming = async (user: User): Promise<Offer[]> => {
      const res = await call(servers, 'GET', '/v1/shares/incoming', user.token);
      expect(res.status, res.text).to.equal(200);
      conforms('GET', '/v1/shares/incoming', res);
      return (res.body as { items: Offer[] }).items;
    };
    const decide = (user: User, recordId: string, decision: 'accept' | 'decline') =>
      call(servers, 'POST', `/v1/shares/incoming/${recordId}/${decision}`, user.token);
    const listed = async (user: User): Promise<string[]> => {
      const res = await call(servers, 'GET', '/v1/records?limit=100', user.token);
      expect(res.status, res.text).to.equal(200);
      return (res.body as { items: { id: string }[] }).items.map((r) => r.id);
    };
    const ownerView = async (owner: User, recordId: string): Promise<RecordView> => {
      const res = await call(servers, 'GET', `/v1/records/${recordId}`, owner.token);
      expect(res.status, res.text).to.equal(200);
      return res.body as RecordView;
    };
    const events = (type: string, actorId: string) =>
      servers.deps.knex<AuditEventRow>('audit_events').where({ type, actor_id: actorId }).orderBy('id');

    /** Signs in to /account through the provider's login page; returns the browser and the page HTML. */
    async function accountPage(user: { email: string; password: string }): Promise<{ browser: Browserless; html: string }> {
      const browser = new Browserless(servers.issuer);
      return { browser, html: await signInToAccount(browser, user) };
    }
    const section = (html: string, id: string) =>
      new RegExp(`<section[^>]*aria-labelledby="${id}"[\\s\\S]*?</section>`).exec(html)?.[0] ?? '';

    it("R13 a share is only an offer: the recipient's listings and reads do not show the record and the sharer's access history stays empty", async function () {
      const sharer = await signedInUser(servers, rp);
      const victim = await signedInUser(servers, rp);
      const recordId = await create(sharer, 'Beacon');
      const offered = await offer(sharer, recordId, victim.id);
      expect(offered.status, offered.text).to.equal(201);

      expect(await listed(victim), 'the victim lists the offered record').to.not.include(recordId);
      expect((await call(servers, 'GET', '/v1/records?type=medical', victim.token)).status).to.equal(200);
      expect((await call(servers, 'GET', `/v1/records/${recordId}`, victim.token)).status).to.equal(404);
      expect(await events('record.accessed', victim.id), 'access events of the victim').to.deep.equal([]);
      const { html } = await accountPage(sharer);
      expect(section(html, 'h-access')).to.include('Nobody else has read your records.');
      expect(section(html, 'h-access')).to.not.include(victim.id);

      conforms('POST', '/v1/records/{id}/shares', offered);
      expect(offered.body).to.deep.equal({ record_id: recordId, user_id: victim.id, state: 'offered' });
      const view = await ownerView(sharer, recordId);
      expect(view.shared_with).to.deep.equal([]);
      expect(view.offered_to).to.deep.equal([victim.id]);
      const [offerEvent] = await events('record.shared', sharer.id);
      expect(offerEvent?.data).to.deep.equal({ record_id: recordId, with_user: victim.id });
    });

    it('R13 the recipient sees offers with only the sharer and the record id and type; after accepting, reads are accesses', async function () {
      const sharer = await signedInUser(servers, rp);
      const recipient = await signedInUser(servers, rp);
      const recordId = await create(sharer, 'Vaccination card');
      const otherRecord = await create(sharer, 'Not offered');
      expect((await offer(sharer, recordId, recipient.id)).status).to.equal(201);

      const offers = await incoming(recipient);
      expect(offers).to.have.length(1);
      expect(offers[0]).to.have.all.keys('record_id', 'record_type', 'from', 'offered_at');
      expect(offers[0]).to.deep.include({ record_id: recordId, record_type: 'medical', from: { id: sharer.id, email: sharer.email } });
      expect(JSON.stringify(offers), 'the label stays sealed until accepted').to.not.include('Vaccination card');
      expect(JSON.stringify(offers)).to.not.include(otherRecord);
      expect(await incoming(sharer), "the sharer's own inbox").to.deep.equal([]);

      const accepted = await decide(recipient, recordId, 'accept');
      expect(accepted.status, accepted.text).to.equal(204);
      conforms('POST', '/v1/shares/incoming/{recordId}/accept', accepted);
      expect(await incoming(recipient)).to.deep.equal([]);
      expect(await listed(recipient))
        .to.include(recordId)
        .and.not.include(otherRecord);
      const read = await call(servers, 'GET', `/v1/records/${recordId}`, recipient.token);
      expect(read.status).to.equal(200);
      expect(read.body).to.deep.include({ label: 'Vaccination card', access: 'shared' });
      expect(await events('record.accessed', recipient.id)).to.have.length(2);
      const [acceptEvent] = await events('record.share_accepted', recipient.id);
      expect(acceptEvent?.data).to.deep.equal({ record_id: recordId, owner_id: sharer.id });

      const view = await ownerView(sharer, recordId);
      expect(view.shared_with).to.deep.equal([recipient.id]);
      expect(view.offered_to).to.deep.equal([]);
      // Offering again what was accepted changes nothing and says so.
      const again = await offer(sharer, recordId, recipient.id);
      expect(again.status).to.equal(200);
      expect(again.body).to.deep.equal({ record_id: recordId, user_id: recipient.id, state: 'accepted' });
      conforms('POST', '/v1/records/{id}/shares', again);
      // Revoking an accepted share ends it.
      expect((await call(servers, 'DELETE', `/v1/records/${recordId}/shares/${recipient.id}`, sharer.token)).status).to.equal(204);
      expect(await listed(recipient)).to.not.include(recordId);
    });

    it('R13 the recipient can leave an accepted share: the record leaves their listings, which are then no longer shown to the owner, and the owner is held off', async function () {
      const sharer = await signedInUser(servers, rp);
      const recipient = await signedInUser(servers, rp);
      const recordId = await create(sharer, 'Joint account', 'financial');
      const own = await create(recipient, 'Mine');
      expect((await offer(sharer, recordId, recipient.id)).status).to.equal(201);
      expect((await decide(recipient, recordId, 'accept')).status).to.equal(204);

      const received = await call(servers, 'GET', '/v1/shares/received', recipient.token);
      expect(received.status, received.text).to.equal(200);
      conforms('GET', '/v1/shares/received', received);
      const items = (received.body as { items: Record<string, unknown>[] }).items;
      expect(items).to.have.length(1);
      expect(items[0]).to.deep.include({ record_id: recordId, record_type: 'financial', from: { id: sharer.id, email: sharer.email } });
      expect(received.text, 'no content').to.not.include('Joint account');
      expect(await events('record.accessed', recipient.id), 'listing shares is no read').to.deep.equal([]);
      expect(await listed(recipient)).to.include(recordId);
      expect(await events('record.accessed', recipient.id)).to.have.length(1);

      for (const id of [own, randomUUID()]) {
        const refused = await call(servers, 'DELETE', `/v1/shares/received/${id}`, recipient.token);
        expect(refused.status, refused.text).to.equal(404);
        conforms('DELETE', '/v1/shares/received/{recordId}', refused);
      }
      const left = await call(servers, 'DELETE', `/v1/shares/received/${recordId}`, recipient.token);
      expect(left.status, left.text).to.equal(204);
      conforms('DELETE', '/v1/shares/received/{recordId}', left);
      const [leftEvent] = await events('record.share_left', recipient.id);
      expect(leftEvent?.data).to.deep.equal({ record_id: recordId, owner_id: sharer.id });
      expect(await listed(recipient)).to.not.include(recordId);
      expect(await events('record.accessed', recipient.id), 'later listings are not shown to the owner').to.have.length(1);
      expect((await call(servers, 'DELETE', `/v1/shares/received/${recordId}`, recipient.token)).status).to.equal(404);
      expect((await ownerView(sharer, recordId)).shared_with).to.deep.equal([]);
      expect((await offer(sharer, recordId, recipient.id)).status).to.equal(201);
      expect(await incoming(recipient), 'held off like after a decline').to.deep.equal([]);
    });

    it("R13 accept and decline answer 404 alike for another owner's record not offered to the caller, one offered to someone else and an unknown id", async function () {
      const sharer = await signedInUser(servers, rp);
      const recipient = await signedInUser(servers, rp);
      const prober = await signedInUser(servers, rp);
      const offeredRecord = await create(sharer, 'Offered to recipient');
      const privateRecord = await create(sharer, 'Private');
      expect((await offer(sharer, offeredRecord, recipient.id)).status).to.equal(201);
      for (const decision of ['accept', 'decline'] as const) {
        const answers: ApiResponse[] = [];
        for (const id of [offeredRecord, privateRecord, randomUUID()]) answers.push(await decide(prober, id, decision));
        for (const answer of answers) {
          expect(answer.status, `${decision}: ${answer.text}`).to.equal(404);
          expect(answer.body).to.deep.equal(answers[0]?.body);
          conforms('POST', `/v1/shares/incoming/{recordId}/${decision}`, answer);
        }
        expect((await decide(recipient, privateRecord, decision)).status).to.equal(404);
      }
      expect(await listed(prober)).to.not.include(offeredRecord);
      expect(await incoming(recipient)).to.have.length(1);
    });

    it("R13 a declined offer never reaches the recipient, still looks pending to the sharer, and holds off that sharer's next offers for the cooldown", async function () {
      const sharer = await signedInUser(servers, rp);
      const recipient = await signedInUser(servers, rp);
      const first = await create(sharer, 'First try');
      const second = await create(sharer, 'Second try');
      expect((await offer(sharer, first, recipient.id)).status).to.equal(201);
      const declined = await decide(recipient, first, 'decline');
      expect(declined.status, declined.text).to.equal(204);
      conforms('POST', '/v1/shares/incoming/{recordId}/decline', declined);
      const [declineEvent] = await events('record.share_declined', recipient.id);
      expect(declineEvent?.data).to.deep.equal({ record_id: first, owner_id: sharer.id });

      expect(await incoming(recipient)).to.deep.equal([]);
      expect(await listed(recipient)).to.not.include(first);
      expect((await decide(recipient, first, 'accept')).status, 'accept after decline').to.equal(404);
      // The sharer cannot tell a decline from an offer not yet answered.
      expect((await ownerView(sharer, first)).offered_to).to.deep.equal([recipient.id]);
      const reoffer = await offer(sharer, first, recipient.id);
      expect(reoffer.status).to.equal(200);
      expect(reoffer.body).to.deep.equal({ record_id: first, user_id: recipient.id, state: 'offered' });
      // Revoke and offer again, or offer another record: answered as usual, delivered never.
      expect((await call(servers, 'DELETE', `/v1/records/${first}/shares/${recipient.id}`, sharer.token)).status).to.equal(204);
      for (const id of [first, second]) {
        const res = await offer(sharer, id, recipient.id);
        expect(res.status).to.equal(201);
        expect(res.body).to.deep.equal({ record_id: id, user_id: recipient.id, state: 'offered' });
      }
      expect(await incoming(recipient), 'offers during the cooldown').to.deep.equal([]);
      // Another sharer is not held off.
      const friend = await signedInUser(servers, rp);
      const friendly = await create(friend, 'Friendly');
      expect((await offer(friend, friendly, recipient.id)).status).to.equal(201);
      expect((await incoming(recipient)).map((o) => o.record_id)).to.deep.equal([friendly]);

      // After the cooldown the sharer's new offers arrive again.
      await servers.deps
        .knex('share_declines')
        .where({ recipient_id: recipient.id })
        .update({ declined_at: new Date(Date.now() - 31 * 86_400_000) });
      const third = await create(sharer, 'After the cooldown');
      expect((await offer(sharer, third, recipient.id)).status).to.equal(201);
      expect((await incoming(recipient)).map((o) => o.record_id)).to.have.members([friendly, third]);
    });

    it('R13 an offer to an account id that does not exist is answered like one to an existing account, does the same database work and is never delivered', async function () {
      const sharer = await signedInUser(servers, rp);
      const existing = await signedInUser(servers, rp);
      const bystander = await signedInUser(servers, rp);
      const ghost = randomUUID();
      const recordA = await create(sharer, 'Probe A');
      const recordB = await create(sharer, 'Probe B');

      /** The request's answer and the SQL it ran (less the background sweeps of expired state). */
      const measured = async (method: string, path: string, body?: unknown) => {
        // A read first, so role lookups are cached for both measured requests alike.
        await call(servers, 'GET', '/v1/me', sharer.token);
        const statements: string[] = [];
        const onQuery = (query: { sql: string }) => {
          // The auth server's revocation sweep (every 2 s, R13) reads users.sessions_revoked_through
          // and the queue of erased accounts' sessions and grants (oidc_state_revocations, S3).
          if (!/oidc_payloads|lockouts|sessions_revoked_through|oidc_state_revocations/.test(query.sql)) statements.push(query.sql);
        };
        servers.deps.knex.on('query', onQuery);
        try {
          return { res: await call(servers, method, path, sharer.token, body), statements };
        } finally {
          servers.deps.knex.off('query', onQuery);
        }
      };
      const headersOf = (res: ApiResponse) => [...res.headers.entries()].filter(([name]) => name !== 'date' && name !== 'x-request-id');
      const same = (a: { res: ApiResponse; statements: string[] }, b: { res: ApiResponse; statements: string[] }, what: string) => {
        expect(b.res.status, `${what}: status`).to.equal(a.res.status);
        expect(headersOf(b.res), `${what}: headers`).to.deep.equal(headersOf(a.res));
        expect(b.res.text.replaceAll(ghost, existing.id).replaceAll(recordB, recordA), `${what}: body`).to.equal(a.res.text);
        expect(b.statements, `${what}: SQL statements`).to.deep.equal(a.statements);
      };

      const toExisting = await measured('POST', `/v1/records/${recordA}/shares`, { userId: existing.id });
      const toGhost = await measured('POST', `/v1/records/${recordB}/shares`, { userId: ghost });
      expect(toExisting.res.status, toExisting.res.text).to.equal(201);
      same(toExisting, toGhost, 'first offer');
      same(
        await measured('POST', `/v1/records/${recordA}/shares`, { userId: existing.id }),
        await measured('POST', `/v1/records/${recordB}/shares`, { userId: ghost }),
        'the same offer again',
      );
      expect((await ownerView(sharer, recordB)).offered_to).to.deep.equal([ghost]);
      same(
        await measured('DELETE', `/v1/records/${recordA}/shares/${existing.id}`),
        await measured('DELETE', `/v1/records/${recordB}/shares/${ghost}`),
        'revoking',
      );

      // Nothing was delivered to the id that is no account, nor to anyone else.
      expect((await offer(sharer, recordB, ghost)).status).to.equal(201);
      expect(await servers.deps.knex('record_shares').where({ record_id: recordB })).to.deep.equal([]);
      expect(await incoming(bystander)).to.deep.equal([]);
      expect(await listed(bystander)).to.not.include(recordB);
      expect(await servers.deps.knex('users').where({ id: ghost }).first()).to.equal(undefined);
    });

    it('R13 pending offers are limited per sharer and per recipient (an id that is no account counts alike); a decline or a revoke frees room', async function () {
      const sharer = await signedInUser(servers, rp);
      const other = await signedInUser(servers, rp);
      const crowded = await signedInUser(servers, rp);
      const ghost = randomUUID();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await create(sharer, `Spam ${i}`, 'note'));
      const othersRecord = await create(other, 'Welcome');
      const othersGhostRecord = await create(other, 'To nobody');

      // The recipient's inbox holds 3 pending offers (SHARE_OFFERS_PENDING_PER_RECIPIENT).
      for (const id of ids.slice(0, 3)) expect((await offer(sharer, id, crowded.id)).status).to.equal(201);
      const full = await offer(other, othersRecord, crowded.id);
      expect(full.status, full.text).to.equal(409);
      expect(full.body).to.have.property('type', 'urn:portcullis:problem:share-recipient-full');
      conforms('POST', '/v1/records/{id}/shares', full);
      // The sharer has 4 pending offers at most (SHARE_OFFERS_PENDING_PER_SHARER).
      expect((await offer(sharer, ids[3]!, ghost)).status).to.equal(201);
      const tooMany = await offer(sharer, ids[4]!, other.id);
      expect(tooMany.status, tooMany.text).to.equal(409);
      expect(tooMany.body).to.have.property('type', 'urn:portcullis:problem:share-offers-limit');
      conforms('POST', '/v1/records/{id}/shares', tooMany);

      // An id that is no account fills up exactly like an account (it holds one offer already).
      const ghostOwner = await signedInUser(servers, rp);
      const ghostIds: string[] = [];
      for (let i = 0; i < 3; i++) ghostIds.push(await create(ghostOwner, `Ghost ${i}`, 'note'));
      for (const id of ghostIds.slice(0, 2)) expect((await offer(ghostOwner, id, ghost)).status).to.equal(201);
      const ghostFull = await offer(other, othersGhostRecord, ghost);
      expect(ghostFull.status).to.equal(409);
      expect(ghostFull.body).to.deep.equal(full.body);

      // A decline frees the recipient's room; a revoke frees the sharer's.
      expect((await decide(crowded, ids[0]!, 'decline')).status).to.equal(204);
      expect((await offer(other, othersRecord, crowded.id)).status).to.equal(201);
      expect((await offer(sharer, ids[4]!, other.id)).status, 'still 4 unaccepted offers').to.equal(409);
      expect((await call(servers, 'DELETE', `/v1/records/${ids[0]}/shares/${crowded.id}`, sharer.token)).status).to.equal(204);
      expect((await offer(sharer, ids[4]!, other.id)).status).to.equal(201);
    });

    it('R13 concurrent offers cannot pass the pending-offer limit', async function () {
      const sharer = await signedInUser(servers, rp);
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await create(sharer, `Burst ${i}`, 'note'));
      const answers = await Promise.all(ids.map((id) => offer(sharer, id, randomUUID())));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).to.deep.equal([201, 201, 201, 201, 409, 409, 409, 409]);
      expect(await servers.deps.knex('record_share_offers').where({ sharer_id: sharer.id })).to.have.length(4);
    });

    it('R13 the account page lists offers and accepted shares; accepting, declining and leaving there works', async function () {
      const sharer = await signedInUser(servers, rp);
      const recipient = await signedInUser(servers, rp);
      const kept = await create(sharer, 'Shared calendar', 'document');
      const refused = await create(sharer, 'Unwanted', 'note');
      for (const id of [kept, refused]) expect((await offer(sharer, id, recipient.id)).status).to.equal(201);

      const { browser, html } = await accountPage(recipient);
      const offers = section(html, 'h-offers');
      expect(offers, 'offers section').to.include('Records offered to you');
      expect(offers).to.include(sharer.email).and.include('document').and.include('note');
      expect(offers).to.not.include('Shared calendar');
      const acceptForm = formOf(offers, `/account/offers/${kept}/accept`);
      const afterAccept = await browser.submit(acceptForm.action, { csrf: acceptForm.csrf });
      expect(afterAccept.url.pathname + afterAccept.url.search).to.equal('/account?notice=offer-accepted');
      const next = await afterAccept.response.text();
      expect(next).to.include('The record was added to your records.');
      const declineForm = formOf(section(next, 'h-offers'), `/account/offers/${refused}/decline`);
      const afterDecline = await browser.submit(declineForm.action, { csrf: declineForm.csrf });
      expect(afterDecline.url.search).to.equal('?notice=offer-declined');
      expect(section(await afterDecline.response.text(), 'h-offers')).to.include('No records are offered to you.');

      expect(await listed(recipient))
        .to.include(kept)
        .and.not.include(refused);
      // The accepted record is listed as shared with the user, and can be removed there.
      const page = await browser.follow('/account');
      const received = section(await page.response.text(), 'h-received');
      expect(received).to.include('Records shared with you').and.include(sharer.email).and.include(kept);
      const leaveForm = formOf(received, `/account/shared-with-me/${kept}/leave`);
      const afterLeave = await browser.submit(leaveForm.action, { csrf: leaveForm.csrf });
      expect(afterLeave.url.search).to.equal('?notice=share-left');
      expect(section(await afterLeave.response.text(), 'h-received')).to.equal('');
      expect(await listed(recipient)).to.not.include(kept);
      const [accepted] = await events('record.share_accepted', recipient.id);
      expect(accepted?.client_id).to.equal('portcullis-account');
      // A forged form (no CSRF token) changes nothing. (Another sharer: this one is held off now.)
      const another = await signedInUser(servers, rp);
      const third = await create(another, 'Third', 'note');
      expect((await offer(another, third, recipient.id)).status).to.equal(201);
      const forged = await browser.submit(`/account/offers/${third}/accept`, { csrf: 'forged' });
      expect(forged.response.status).to.equal(403);
      expect((await incoming(recipient)).map((o) => o.record_id)).to.deep.equal([third]);
    });

    it("R13 erasing an account removes the offers made to it; the sharer's record stays", async function () {
      const sharer = await signedInUser(servers, rp);
      const leaving = await signedInUser(servers, rp);
      const recordId = await create(sharer, 'Offered then erased');
      expect((await offer(sharer, recordId, leaving.id)).status).to.equal(201);
      expect(await servers.deps.api.gdpr.erase({ userId: leaving.id })).to.equal(true);
      expect(await servers.deps.knex('record_share_offers').where({ recipient_id: leaving.id })).to.deep.equal([]);
      expect((await ownerView(sharer, recordId)).offered_to).to.deep.equal([]);
    });
  });
}
