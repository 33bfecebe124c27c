import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { eventId } from '../../src/store/audit-chain.ts';
import { type AuditEventRow, createAuditEventStore } from '../../src/store/audit-events.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { createTestDatabase, testEnv, type TestDatabase } from '../setup.ts';

/** What anyone who can read the source can compute: the chain's public, unkeyed formula. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
type ClearRow = Pick<AuditEventRow, 'occurred_at' | 'type' | 'outcome' | 'actor_id' | 'client_id' | 'ip' | 'user_agent' | 'data'>;
const unkeyedHash = (prev: string, row: ClearRow): string =>
  createHash('sha256')
    .update(prev)
    .update(
      canonical([row.occurred_at.toISOString(), row.type, row.outcome, row.actor_id, row.client_id, row.ip, row.user_agent, row.data]),
    )
    .digest('hex');

/**
 * An attacker with write access to the table (a stolen database password, a compromised
 * replica) but without AUDIT_KEY: edits an event, then rebuilds every hash from there on.
 * `relabel` also marks the rebuilt rows as written before keyed chaining.
 */
async function rebuildWithoutKey(knex: Knex, fromId: number, options: { relabel?: boolean; toId?: number } = {}): Promise<string> {
  const rows = await knex<AuditEventRow>('audit_events').orderBy('id', 'asc');
  let prev = '0'.repeat(64);
  for (const row of rows) {
    if (options.toId !== undefined && eventId(row.id) > options.toId) break;
    if (eventId(row.id) >= fromId) {
      const hash = unkeyedHash(prev, row);
      await knex('audit_events')
        .where('id', row.id)
        .update({ prev_hash: prev, hash, ...(options.relabel ? { chain: 1 } : {}) });
      prev = hash;
    } else prev = row.hash;
  }
  return prev;
}

/** R8 (third part): the audit chain is an HMAC under AUDIT_KEY; `audit verify` checks it. */
describe('R8 keyed audit chain (portcullis audit verify on a dedicated database)', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let databaseUrl: string;
  let knex: Knex;
  let key: Buffer;
  const cli = (env: Record<string, string> = {}) =>
    runNode(['src/cli.ts', 'audit', 'verify'], { ...testConfigEnv({ storage: 'postgres' }), DATABASE_URL: databaseUrl, ...env });

  beforeEach(async function () {
    key = Buffer.from(testEnv.auditKey, 'base64');
    database = await createTestDatabase('keyed_audit');
    databaseUrl = database.url;
    knex = knexFactory({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 2 } });
  });
  afterEach(async function () {
    await knex.destroy();
    await database.drop();
  });

  async function seed(): Promise<AuditEventRow[]> {
    const store = createAuditEventStore(knex, key);
    return [
      await store.append({ type: 'login.password', actorId: 'user-1', ip: '203.0.113.9', userAgent: 'agent/1' }),
      await store.append({
        type: 'user.updated',
        actorId: 'admin-1',
        ip: '203.0.113.10',
        data: { user_id: 'user-1', roles: { from: ['user'], to: ['user', 'admin'] } },
      }),
      await store.append({ type: 'record.created', actorId: 'user-1', ip: '203.0.113.9', data: { record_id: 'r1' } }),
      await store.append({ type: 'password.changed', actorId: 'user-1' }),
    ];
  }

  it('R8 an event edited and the chain rebuilt without AUDIT_KEY fails audit verify, naming the edited event', async function () {
    const rows = await seed();
    expect((await cli()).code, 'intact before').to.equal(0);
    // Hide who granted the admin role, from where, and rebuild the chain after it.
    const target = rows[1]!;
    await knex('audit_events').where('id', target.id).update({ actor_id: 'user-1', ip: '198.51.100.66' });
    await rebuildWithoutKey(knex, eventId(target.id));

    const result = await cli();
    expect(result.code, result.stdout).to.equal(1);
    expect(result.stderr).to.include(`error: audit chain broken at event ${target.id}: the event was modified`);
    expect(JSON.parse(result.stdout)).to.deep.include({ ok: false, broken_at: eventId(target.id) });
  });

  it('R8 keyed events relabelled as unkeyed ones and rebuilt without the key are refused', async function () {
    const rows = await seed();
    // Relabel from the second event on: unkeyed events are never accepted after a keyed one.
    await knex('audit_events')
      .where('id', rows[2]!.id)
      .update({ data: JSON.stringify({ record_id: 'r-forged' }) });
    await rebuildWithoutKey(knex, eventId(rows[1]!.id), { relabel: true });
    const tail = await cli();
    expect(tail.code, tail.stdout).to.equal(1);
    expect(tail.stderr).to.include(`error: audit chain broken at event ${rows[1]!.id}: an unkeyed event after keyed ones`);

    // Relabel everything: a chain of unkeyed events that no keyed event vouches for.
    await rebuildWithoutKey(knex, eventId(rows[0]!.id), { relabel: true });
    const { verifyAuditChain } = await import('../../src/store/audit-chain.ts');
    const report = await verifyAuditChain(knex, key);
    expect(report).to.deep.include({ ok: false, broken_at: eventId(rows[0]!.id) });
    expect(report.ok ? '' : report.reason).to.include('nothing vouches for them');
  });

  it('R8 audit verify run with the wrong AUDIT_KEY says the key is wrong (exit 1), not that events were changed', async function () {
    await seed();
    const wrong = await cli({ AUDIT_KEY: randomBytes(32).toString('base64') });
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr.trim()).to.match(
      /^error: AUDIT_KEY is not the key the audit log was written with \(its newest events name key a-[0-9a-f]{12}, the configured AUDIT_KEY is a-[0-9a-f]{12}\); start with the key the log was written with$/,
    );
    expect((await cli()).code, 'the right key still verifies').to.equal(0);
  });

  it('R8 an event claiming another key id in the middle of the chain is named, with the key ids', async function () {
    const rows = await seed();
    await knex('audit_events').where('id', rows[2]!.id).update({ key_id: 'a-000000000000' });
    const { verifyAuditChain } = await import('../../src/store/audit-chain.ts');
    const report = await verifyAuditChain(knex, key);
    expect(report).to.deep.include({ ok: false, broken_at: eventId(rows[2]!.id), found: 'a-000000000000' });
    expect(report.ok ? '' : report.reason).to.include('not under the configured AUDIT_KEY');
  });

  it('R8 events written before keyed chaining verify as a prefix once a keyed event anchors them; editing one is still caught', async function () {
    // What the previous release wrote: unkeyed rows (chain defaults to 1).
    let prev = '0'.repeat(64);
    const legacy: AuditEventRow[] = [];
    for (const [i, type] of ['user.created', 'login.password', 'record.created'].entries()) {
      const row = {
        occurred_at: new Date(Date.now() - 60_000 + i),
        type,
        outcome: 'success',
        actor_id: 'user-7',
        client_id: null,
        ip: '192.0.2.7',
        user_agent: 'old/1',
        data: { n: i },
      };
      const hash = unkeyedHash(prev, row);
      const [inserted] = await knex<AuditEventRow>('audit_events')
        .insert({ ...row, data: JSON.stringify(row.data) as unknown as Record<string, unknown>, prev_hash: prev, hash })
        .returning('*');
      legacy.push(inserted!);
      prev = hash;
    }
    expect(legacy.every((r) => r.chain === 1)).to.equal(true);

    // The first process of this release (here the CLI) anchors them with a keyed event.
    const config = loadConfig(testConfigEnv({ storage: 'postgres', env: { DATABASE_URL: databaseUrl } }));
    const deps = await createDeps(config, { logger: createLogger(config) });
    try {
      await deps.audit.record({ type: 'login.password', actorId: 'user-7', ip: '192.0.2.8' });
    } finally {
      await deps.close();
    }
    const rows = await knex<AuditEventRow>('audit_events').orderBy('id', 'asc');
    expect(rows.map((r) => [r.type, r.chain])).to.deep.equal([
      ['user.created', 1],
      ['login.password', 1],
      ['record.created', 1],
      ['audit.chain_keyed', 2],
      ['login.password', 2],
    ]);
    expect(rows[3]!.data).to.deep.include({ legacy_events: 3, legacy_head: legacy[2]!.hash });
    const ok = await cli();
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout)).to.deep.include({ ok: true, events: 5, legacy_events: 3 });

    // The unkeyed prefix is vouched for by the keyed link after it: rebuilding it does not help.
    await knex('audit_events').where('id', legacy[1]!.id).update({ ip: '198.51.100.1' });
    const forgedHead = await rebuildWithoutKey(knex, eventId(legacy[1]!.id), { toId: eventId(legacy[2]!.id) });
    await knex('audit_events').where('id', rows[3]!.id).update({ prev_hash: forgedHead });
    const broken = await cli();
    expect(broken.code).to.equal(1);
    expect(broken.stderr).to.include(`audit chain broken at event ${rows[3]!.id}`);
  });
  it('S5 pseudonymisation keeps the chain verifying; a clear address removed without AUDIT_KEY (not by an erasure) is named', async function () {
    const rows = await seed();
    const store = createAuditEventStore(knex, key);
    const { verifyAuditChain } = await import('../../src/store/audit-chain.ts');
    expect(await store.pseudonymise('user-1')).to.equal(2);
    const after = await knex<AuditEventRow>('audit_events').where('actor_id', 'user-1').orderBy('id');
    expect(after.map((r) => [r.ip, r.user_agent, r.personal_nonce])).to.deep.equal([
      [null, null, null],
      [null, null, null],
      [null, null, null],
    ]);
    expect((await verifyAuditChain(knex, key)).ok).to.equal(true);
    // Someone without the key hides the admin's address the same way: no tag, so verify names it.
    await knex('audit_events').where('id', rows[1]!.id).update({ ip: null });
    const report = await verifyAuditChain(knex, key);
    expect(report).to.deep.include({ ok: false, broken_at: eventId(rows[1]!.id) });
    expect(report.ok ? '' : report.reason).to.include('removed without AUDIT_KEY');
    // Nor can a tag be moved from a pseudonymised row to another one.
    await knex('audit_events').where('id', rows[1]!.id).update({ pseudonymised_tag: after[0]!.pseudonymised_tag });
    expect(await verifyAuditChain(knex, key)).to.deep.include({ ok: false, broken_at: eventId(rows[1]!.id) });
  });

  it('S5 events written before keyed chaining can be pseudonymised too, and the rest of such an event stays protected', async function () {
    let prev = '0'.repeat(64);
    const legacy: AuditEventRow[] = [];
    for (const [i, actor] of ['user-8', 'user-9'].entries()) {
      const row = {
        occurred_at: new Date(Date.now() - 60_000 + i),
        type: 'login.password',
        outcome: 'success',
        actor_id: actor,
        client_id: null,
        ip: `192.0.2.${i + 1}`,
        user_agent: 'old/1',
        data: {},
      };
      const hash = unkeyedHash(prev, row);
      const [inserted] = await knex<AuditEventRow>('audit_events')
        .insert({ ...row, data: '{}' as unknown as Record<string, unknown>, prev_hash: prev, hash })
        .returning('*');
      legacy.push(inserted!);
      prev = hash;
    }
    const store = createAuditEventStore(knex, key);
    await store.anchorLegacyChain();
    expect(await store.pseudonymise('user-8')).to.equal(1);
    const { verifyAuditChain } = await import('../../src/store/audit-chain.ts');
    expect(await verifyAuditChain(knex, key)).to.deep.include({ ok: true, legacy_events: 2 });
    await knex('audit_events').where('id', legacy[0]!.id).update({ type: 'login.totp' });
    expect(await verifyAuditChain(knex, key)).to.deep.include({ ok: false, broken_at: eventId(legacy[0]!.id) });
  });
});
