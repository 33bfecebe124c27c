import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { type AuditEventRow, createAuditEventStore, GENESIS_HASH } from '../../src/store/audit-events.ts';
import { keyedHash, personalDigest } from '../../src/store/audit-mac.ts';
import { testEnv } from '../setup.ts';

/**
 * The audit log is HMAC-chained under AUDIT_KEY: hash = HMAC(key, prev_hash, event with keyed
 * digests of ip and user agent). Other suites may append to the same table, so the checks work on
 * the table as stored, not on counts.
 */
/** This file's AUDIT_KEY (testEnv is read once the file's hooks run). */
let key: Buffer;
const hashEvent = (row: AuditEventRow): string => keyedHash(key, { ...row, key_id: row.key_id ?? '' }, row);

describe('audit event hash chain', function () {
  let knex: Knex;
  let store: ReturnType<typeof createAuditEventStore>;
  const marker = `audit-test-${randomBytes(4).toString('hex')}`;

  before(function () {
    key = Buffer.from(testEnv.auditKey, 'base64');
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 10 } });
    store = createAuditEventStore(knex, key);
  });

  after(async function () {
    await knex.destroy();
  });

  const allRows = (db: Knex | Knex.Transaction = knex) => db<AuditEventRow>('audit_events').orderBy('id', 'asc');

  /** Runs `work` in a transaction that is then rolled back, so the shared table stays intact. */
  async function rolledBack(work: (trx: Knex.Transaction) => Promise<void>): Promise<string> {
    const rollback = new Error('rollback');
    return knex
      .transaction(async (trx) => {
        await work(trx);
        throw rollback;
      })
      .then(
        () => 'committed',
        (error: unknown) => {
          if (error !== rollback) throw error;
          return 'rolled back';
        },
      );
  }

  /** Every stored row re-hashes to its stored hash, and links to the row before it. */
  function expectConsistentChain(rows: AuditEventRow[]) {
    expect(rows.length).to.be.greaterThan(0);
    expect(rows[0]!.prev_hash).to.equal(GENESIS_HASH);
    rows.forEach((row, i) => {
      if (i > 0) expect(row.prev_hash, `prev_hash of row ${row.id}`).to.equal(rows[i - 1]!.hash);
      expect(hashEvent(row), `hash of row ${row.id}`).to.equal(row.hash);
    });
    expect(new Set(rows.map((r) => r.prev_hash)).size, 'no two rows share a predecessor').to.equal(rows.length);
  }

  it('chains appended events: each re-hashes to its stored hash and links to the previous row', async function () {
    const appended: AuditEventRow[] = [];
    appended.push(
      await store.append({
        type: `${marker}.login`,
        outcome: 'failure',
        actorId: 'user-1',
        clientId: 'client-1',
        ip: '203.0.113.7',
        userAgent: 'Mozilla/5.0 ' + 'x'.repeat(600),
        // Keys out of order, nested, unicode: jsonb reorders keys, the hash must not care.
        data: { zeta: 1, alpha: { nested: [3, { b: 2, a: 1 }], ünï: 'çødé' }, empty: null },
      }),
    );
    appended.push(await store.append({ type: `${marker}.logout` }));
    appended.push(await store.append({ type: `${marker}.token`, data: { scope: 'openid', n: 1.5 } }));

    for (const row of appended) expect(hashEvent(row)).to.equal(row.hash);
    expect(appended[0]!.user_agent).to.have.length(512);
    expect(appended[1]!.outcome).to.equal('success');

    const stored = await knex<AuditEventRow>('audit_events').where('type', 'like', `${marker}.%`).orderBy('id', 'asc');
    expect(stored.map((r) => r.hash)).to.deep.equal(appended.map((r) => r.hash));
    for (const row of stored) {
      // Read back from Postgres (jsonb, timestamptz) the hash still verifies.
      expect(hashEvent(row)).to.equal(row.hash);
      const previous = await knex<AuditEventRow>('audit_events').where('id', '<', row.id).orderBy('id', 'desc').first();
      expect(row.prev_hash).to.equal(previous?.hash ?? GENESIS_HASH);
    }
    expectConsistentChain(await allRows());
  });

  it('keeps one consistent chain under 20 concurrent appends', async function () {
    const rows = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.append({ type: `${marker}.concurrent`, actorId: `user-${i}`, data: { i } })),
    );
    expect(new Set(rows.map((r) => r.prev_hash)).size).to.equal(20);
    expect(new Set(rows.map((r) => r.hash)).size).to.equal(20);
    expectConsistentChain(await allRows());
  });

  it('makes edits and deletions in SQL evident', async function () {
    const target = await store.append({ type: `${marker}.role.granted`, actorId: 'admin-1', data: { role: 'viewer', userId: 'user-9' } });
    const next = await store.append({ type: `${marker}.after` });
    // Tamper inside a transaction that is rolled back, so the shared table stays intact.
    const outcome = await rolledBack(async (trx) => {
      await trx('audit_events')
        .where('id', target.id)
        .update({ data: JSON.stringify({ role: 'admin', userId: 'user-9' }) });
      const edited = await trx<AuditEventRow>('audit_events').where('id', target.id).first();
      expect(edited!.data).to.deep.equal({ role: 'admin', userId: 'user-9' });
      expect(hashEvent(edited!)).not.to.equal(edited!.hash);

      await trx('audit_events')
        .where('id', target.id)
        .update({ data: JSON.stringify(target.data), actor_id: 'someone-else' });
      const reattributed = await trx<AuditEventRow>('audit_events').where('id', target.id).first();
      expect(hashEvent(reattributed!)).not.to.equal(reattributed!.hash);

      await trx('audit_events').where('id', target.id).delete();
      const rows = await allRows(trx);
      const after = rows.findIndex((r) => r.id === next.id);
      expect(rows[after]!.prev_hash).not.to.equal(rows[after - 1]!.hash);
    });
    expect(outcome).to.equal('rolled back');
    expectConsistentChain(await allRows());
  });

  // The hash must cover what is stored: a Date in `data` is stored as an ISO string, and a long user
  // agent must not be cut inside a surrogate pair (Postgres would store U+FFFD).
  it('an event holding a Date, or a user agent cut inside a surrogate pair, verifies as stored', async function () {
    const outcome = await rolledBack(async (trx) => {
      const isolated = createAuditEventStore(trx, key);
      const withDate = await isolated.append({ type: `${marker}.dated`, data: { at: new Date('2026-01-02T03:04:05.000Z') } });
      expect(hashEvent(withDate)).to.equal(withDate.hash);
      const withEmoji = await isolated.append({ type: `${marker}.ua`, userAgent: `${'a'.repeat(511)}\u{1F600}` });
      expect(hashEvent(withEmoji)).to.equal(withEmoji.hash);
      // The digest in the chain is the digest of the user agent as Postgres stored it.
      expect(personalDigest(key, withEmoji.personal_nonce, 'user_agent', withEmoji.user_agent)).to.equal(withEmoji.user_agent_digest);
    });
    expect(outcome).to.equal('rolled back');
  });
});
