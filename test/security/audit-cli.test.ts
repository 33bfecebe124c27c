import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { type AuditEventRow, createAuditEventStore } from '../../src/store/audit-events.ts';
import { eventId, verifyAuditChain } from '../../src/store/audit-chain.ts';
import { migrateLatest } from '../../src/store/migrate.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

const rollback = new Error('rollback');
/** This file's AUDIT_KEY (testEnv is read once the file's hooks run). */
let auditKey: Buffer;
/** Runs fn in a transaction that is always rolled back: tampering stays invisible to other suites. */
async function inRolledBackTransaction(knex: Knex, fn: (trx: Knex.Transaction) => Promise<void>): Promise<void> {
  await knex
    .transaction(async (trx) => {
      await fn(trx);
      throw rollback;
    })
    .catch((error: unknown) => {
      if (error !== rollback) throw error;
    });
}

/**
 * ASVS 16.3/16.4 tamper evidence: `portcullis audit verify` walks the hash chain and names the
 * first broken link; `portcullis audit export --since` emits JSON lines for a SIEM.
 */
describe('tamper-evident audit log: verify and export', function () {
  this.timeout(60_000);
  before(function () {
    auditKey = Buffer.from(testEnv.auditKey, 'base64');
  });

  describe('verifyAuditChain on the shared test database (tampering in rolled-back transactions)', function () {
    let knex: Knex;
    const marker = `audit-verify-${randomBytes(4).toString('hex')}`;

    before(function () {
      knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 10 } });
    });
    after(async function () {
      await knex.destroy();
    });

    it('reports an intact chain, while 20 other events are appended concurrently', async function () {
      const store = createAuditEventStore(knex, auditKey);
      await store.append({ type: `${marker}.seed` });
      const [report] = await Promise.all([
        verifyAuditChain(knex, auditKey, { batchSize: 7 }),
        ...Array.from({ length: 20 }, (_, i) => store.append({ type: `${marker}.concurrent`, data: { i } })),
      ]);
      expect(report.ok, JSON.stringify(report)).to.equal(true);
      const again = await verifyAuditChain(knex, auditKey, { batchSize: 7 });
      expect(again.ok).to.equal(true);
      expect(again.events).to.be.at.least(21);
    });

    it('names an edited event as the first broken link', async function () {
      const store = createAuditEventStore(knex, auditKey);
      const target = await store.append({ type: `${marker}.role.granted`, actorId: 'admin-1', data: { role: 'viewer' } });
      await store.append({ type: `${marker}.after` });
      await inRolledBackTransaction(knex, async (trx) => {
        await trx('audit_events')
          .where('id', target.id)
          .update({ data: JSON.stringify({ role: 'admin' }) });
        const report = await verifyAuditChain(trx, auditKey, { batchSize: 5 });
        expect(report).to.include({ ok: false, broken_at: eventId(target.id) });
        expect(report.ok ? '' : report.reason).to.include('modified');
      });
      expect((await verifyAuditChain(knex, auditKey)).ok, 'restored after the rollback').to.equal(true);
    });

    it('names the event after a deleted one, and a rewritten hash breaks the next link', async function () {
      const store = createAuditEventStore(knex, auditKey);
      const victim = await store.append({ type: `${marker}.victim` });
      const next = await store.append({ type: `${marker}.next` });
      await inRolledBackTransaction(knex, async (trx) => {
        await trx('audit_events').where('id', victim.id).delete();
        const report = await verifyAuditChain(trx, auditKey);
        expect(report).to.include({ ok: false, broken_at: eventId(next.id) });
        expect(report.ok ? '' : report.reason).to.include('deleted or inserted');
      });
      // An attacker who edits an event and recomputes its hash still breaks the link after it.
      await inRolledBackTransaction(knex, async (trx) => {
        const { keyedHash } = await import('../../src/store/audit-mac.ts');
        const row = (await trx<AuditEventRow>('audit_events').where('id', victim.id).first())!;
        const forged = { ...row, actor_id: 'someone-else' };
        await trx('audit_events')
          .where('id', victim.id)
          .update({ actor_id: 'someone-else', hash: keyedHash(auditKey, { ...forged, key_id: forged.key_id ?? '' }, forged) });
        const report = await verifyAuditChain(trx, auditKey);
        expect(report).to.include({ ok: false, broken_at: eventId(next.id) });
      });
    });
  });

  describe('the CLI, on a dedicated database', function () {
    const name = `portcullis_audit_${randomBytes(4).toString('hex')}`;
    const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const databaseUrl = url.toString();
    let admin: Knex;
    let knex: Knex;
    const rows: AuditEventRow[] = [];
    let between: Date;

    const env = () => {
      const base = testConfigEnv({ storage: 'postgres' });
      return { ...base, DATABASE_URL: databaseUrl };
    };
    const cli = (...args: string[]) => runNode(['src/cli.ts', ...args], env());

    before(async function () {
      admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
      await admin.raw(`CREATE DATABASE "${name}"`);
      knex = knexFactory({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 2 } });
      await migrateLatest(knex);
      const store = createAuditEventStore(knex, auditKey);
      rows.push(await store.append({ type: 'login.password', actorId: 'user-1', ip: '203.0.113.9', userAgent: 'test-agent' }));
      rows.push(await store.append({ type: 'role.granted', actorId: 'admin-1', data: { role: 'viewer', userId: 'user-1' } }));
      await new Promise((r) => setTimeout(r, 20));
      between = new Date();
      await new Promise((r) => setTimeout(r, 20));
      // A careless event carrying a secret: the export must not pass it on.
      rows.push(
        await store.append({
          type: 'client.registered',
          clientId: 'c1',
          data: { client_secret: 'do-not-export', nested: { password: 'nope', keep: 1 } },
        }),
      );
      rows.push(await store.append({ type: 'password.changed', actorId: 'user-1' }));
    });

    after(async function () {
      await knex.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.destroy();
    });

    it('audit verify: an intact chain → exit 0 and a report', async function () {
      const result = await cli('audit', 'verify');
      expect(result.code, result.stderr).to.equal(0);
      expect(JSON.parse(result.stdout)).to.deep.include({
        ok: true,
        events: 4,
        first_id: eventId(rows[0]!.id),
        last_id: eventId(rows[3]!.id),
        last_hash: rows[3]!.hash,
      });
    });

    it('audit verify: a tampered row → exit 1 naming its id; restored → exit 0', async function () {
      const target = rows[1]!;
      await knex('audit_events')
        .where('id', target.id)
        .update({ data: JSON.stringify({ role: 'admin', userId: 'user-1' }) });
      try {
        const result = await cli('audit', 'verify');
        expect(result.code).to.equal(1);
        expect(result.stderr).to.include(`error: audit chain broken at event ${target.id}: the event was modified`);
        expect(JSON.parse(result.stdout)).to.deep.include({ ok: false, broken_at: eventId(target.id), events: 1 });
      } finally {
        await knex('audit_events')
          .where('id', target.id)
          .update({ data: JSON.stringify(target.data) });
      }
      expect((await cli('audit', 'verify')).code).to.equal(0);
    });

    it('audit verify: a deleted first row is reported (the chain no longer starts at genesis)', async function () {
      const first = rows[0]!;
      await knex('audit_events').where('id', first.id).delete();
      try {
        const result = await cli('audit', 'verify');
        expect(result.code).to.equal(1);
        expect(result.stderr).to.include(`audit chain broken at event ${rows[1]!.id}`);
      } finally {
        await knex('audit_events').insert({ ...first, data: JSON.stringify(first.data) });
      }
      expect((await cli('audit', 'verify')).code).to.equal(0);
    });

    it('audit export --since: JSON lines, oldest first, only newer events, nothing secret', async function () {
      const result = await cli('audit', 'export', '--since', between.toISOString());
      expect(result.code, result.stderr).to.equal(0);
      const lines = result.stdout.trim().split('\n');
      const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(events.map((e) => e.id)).to.deep.equal([eventId(rows[2]!.id), eventId(rows[3]!.id)]);
      expect(events[0]).to.include({ type: 'client.registered', client_id: 'c1', hash: rows[2]!.hash, prev_hash: rows[2]!.prev_hash });
      expect(events[0]!.time).to.equal(rows[2]!.occurred_at.toISOString());
      expect(events[0]!.data).to.deep.equal({ client_secret: '[redacted]', nested: { password: '[redacted]', keep: 1 } });
      expect(result.stdout).not.to.include('do-not-export');
      expect(result.stdout).not.to.include('nope');

      const all = await cli('audit', 'export');
      expect(all.stdout.trim().split('\n')).to.have.length(4);
    });

    it('audit export --since with a non-ISO value → exit 1 with a clear message', async function () {
      const result = await cli('audit', 'export', '--since', 'yesterday');
      expect(result.code).to.equal(1);
      expect(result.stderr).to.include('--since must be an ISO 8601 time');
    });
  });
});
