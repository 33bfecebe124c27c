import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { BackupFileError, openBackup, parseBackupKey, sealBackup } from '../../src/shared/backup-file.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { createVaultBox } from '../../src/shared/vault-key.ts';
import { verifyAuditChain } from '../../src/store/audit-chain.ts';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { keyedHash } from '../../src/store/audit-mac.ts';
import { exportTables, type BackupDocument } from '../../src/store/backup.ts';
import { createTestUser } from '../helpers/factories.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/** Every table's rows as sorted JSON text: equal snapshots mean nothing changed. */
async function snapshot(knex: Knex): Promise<Record<string, string[]>> {
  const { rows: tables } = await knex.raw<{ rows: { table_name: string }[] }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const result: Record<string, string[]> = {};
  for (const { table_name: table } of tables) {
    const { rows } = await knex.raw<{ rows: { row: string }[] }>('SELECT to_jsonb(t)::text AS row FROM ?? AS t', [table]);
    result[table] = rows.map((r) => r.row).sort();
  }
  return result;
}

type StoredEvent = Omit<AuditEventRow, 'occurred_at'> & { occurred_at: string };

/**
 * Issue 20 S8, backup hygiene: backups and restores are audited, a restore never loses audit
 * events, refuses partial documents and documents sealed under another MASTER_KEY before it
 * changes anything, and bounds what it decompresses; `backup create` works without MASTER_KEY.
 */
describe('backup hygiene (S8)', function () {
  this.timeout(120_000);
  // The file's own database: what it holds is this suite's alone.
  let databaseUrl: string;
  const backupKey = randomBytes(32).toString('base64');
  let deps: Deps;
  let dir: string;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-s8-'));
    databaseUrl = testEnv.databaseUrl;
    const config = loadConfig(testConfigEnv({ storage: 'postgres', env: { DATABASE_URL: databaseUrl } }));
    deps = await createDeps(config, { logger: createLogger(config), migrate: true });
    // Something in every kind of table: a user with a sealed data key and a record, signing and cookie keys, audit events.
    const user = await createTestUser(deps);
    await deps.api.records.create({ userId: user.id }, { type: 'note', label: 's8', data: { text: 'kept' } });
    await deps.keys.ensureSigningKeys();
    await deps.keys.cookieKeys();
  });

  after(async function () {
    await deps.close();
    await rm(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}) =>
    testConfigEnv({ storage: 'postgres', env: { DATABASE_URL: databaseUrl, BACKUP_KEY: backupKey, ...extra } });
  const cli = (args: string[], extra: Record<string, string> = {}) => runNode(['src/cli.ts', ...args], env(extra));
  let files = 0;
  const newFile = () => join(dir, `s8-${++files}.backup`);

  async function createBackup(): Promise<string> {
    const file = newFile();
    const created = await cli(['backup', 'create', '--out', file]);
    expect(created.code, created.stderr).to.equal(0);
    return file;
  }

  /** A backup document as `backup create` makes it, changed by `edit`, sealed under BACKUP_KEY. */
  async function tamperedBackup(edit: (doc: BackupDocument) => void): Promise<string> {
    const doc = await exportTables(deps.knex);
    edit(doc);
    const file = newFile();
    await writeFile(file, sealBackup(doc, parseBackupKey(backupKey)), { mode: 0o600 });
    return file;
  }

  const events = () => deps.knex<AuditEventRow>('audit_events').orderBy('id').select('id', 'type', 'hash', 'data');

  it('S8 backup create and restore are audited: backup.created after the snapshot, backup.restored closing the restored chain, which verifies', async function () {
    const file = await createBackup();
    const digest = createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
    const created = (await events()).at(-1);
    expect(created).to.deep.include({ type: 'backup.created' });
    expect(created?.data).to.include({ sha256: digest });

    const restored = await cli(['backup', 'restore', file, '--force']);
    expect(restored.code, restored.stderr).to.equal(0);
    const [last, beforeLast] = (await events()).reverse();
    expect(last).to.deep.include({ type: 'backup.restored' });
    expect(last?.data).to.include({ sha256: digest });
    // The backup.created event was written after the snapshot, so the kept log still has it.
    expect(beforeLast).to.deep.include({ type: 'backup.created' });
    expect(await verifyAuditChain(deps.knex, deps.auditKey)).to.include({ ok: true });
  });

  it('S8 a restore says whether this database recorded making the file: a file made with BACKUP_KEY alone is flagged', async function () {
    const recorded = await createBackup();
    const made = await cli(['backup', 'restore', recorded, '--force']);
    expect(made.code, made.stderr).to.equal(0);
    expect(JSON.parse(made.stdout)).to.include({ recorded: true });
    expect((await events()).at(-1)?.data).to.include({ recorded: true });

    // The same content, sealed by someone holding BACKUP_KEY rather than by backup create.
    const unrecorded = await tamperedBackup(() => undefined);
    const foreign = await cli(['backup', 'restore', unrecorded, '--force']);
    expect(foreign.code, foreign.stderr).to.equal(0);
    const report = JSON.parse(foreign.stdout) as { recorded: boolean; next: string[] };
    expect(report.recorded).to.equal(false);
    expect(report.next[0]).to.match(/^WARNING: this database never recorded making this file/);
    expect((await events()).at(-1)?.data).to.include({ recorded: false });
  });

  it('S8 restore --force keeps the audit events recorded after the backup; the chain verifies', async function () {
    const file = await createBackup();
    for (let i = 0; i < 3; i++) await deps.audit.record({ type: 'test.after_backup', data: { i } });
    const recorded = await events();
    const after = recorded.filter((e) => e.type === 'test.after_backup');
    expect(after).to.have.length(3);

    const restored = await cli(['backup', 'restore', file, '--force']);
    expect(restored.code, restored.stderr).to.equal(0);
    const now = await events();
    // Every event that existed before the restore is still there, unchanged, then the restore's own.
    expect(now.slice(0, recorded.length)).to.deep.equal(recorded);
    expect(now.slice(recorded.length).map((e) => e.type)).to.deep.equal(['backup.restored']);
    expect(await verifyAuditChain(deps.knex, deps.auditKey)).to.include({ ok: true });
  });

  it('S8 a restore refuses a backup whose audit log this database does not continue, and changes nothing', async function () {
    // Another deployment's history (or a rewritten one): the same length, the first event differs, every hash recomputed.
    const file = await tamperedBackup((doc) => {
      const table = doc.tables.find((t) => t.name === 'audit_events');
      const rows = (table?.rows ?? []) as StoredEvent[];
      expect(rows.length).to.be.greaterThan(1);
      let prev = '0'.repeat(64);
      for (const [index, row] of rows.entries()) {
        if (index === 0) row.data = { ...row.data, rewritten: true };
        row.prev_hash = prev;
        // Even rebuilt with AUDIT_KEY itself: a history this database does not continue is refused.
        row.hash = keyedHash(deps.auditKey, { ...row, key_id: row.key_id ?? '' }, { ...row, occurred_at: new Date(row.occurred_at) });
        prev = row.hash;
      }
    });
    const before = await snapshot(deps.knex);
    const refused = await cli(['backup', 'restore', file, '--force']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr)
      .to.match(/audit log/)
      .and.include('nothing was changed');
    expect(await snapshot(deps.knex)).to.deep.equal(before);
  });

  it('S8 a backup document missing a table, naming an unknown one or one twice is refused before anything changes', async function () {
    expect(await deps.knex('records').pluck('type')).to.deep.equal(['note']);
    const before = await snapshot(deps.knex);
    const partial = await tamperedBackup((doc) => {
      doc.tables = doc.tables.filter((t) => t.name !== 'records');
    });
    const missing = await cli(['backup', 'restore', partial, '--force']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include('records').and.include('nothing was changed');
    expect(await snapshot(deps.knex)).to.deep.equal(before);

    // SQL in a table name is never run: the name is not one of this database's tables.
    const injected = await tamperedBackup((doc) => {
      doc.tables.push({ name: 'users" CASCADE; DROP TABLE records; --', rows: [] });
    });
    const unknown = await cli(['backup', 'restore', injected, '--force']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include('nothing was changed');
    const twice = await tamperedBackup((doc) => {
      doc.tables.push({ name: 'records', rows: [] });
    });
    const duplicate = await cli(['backup', 'restore', twice, '--force']);
    expect(duplicate.code).to.equal(1);
    expect(duplicate.stderr).to.include('records').and.include('nothing was changed');
    expect(await snapshot(deps.knex)).to.deep.equal(before);
  });

  it('S8 a row the database refuses rolls the whole restore back (one transaction), with a one-line error', async function () {
    const before = await snapshot(deps.knex);
    // Refused by Postgres only after every earlier table was emptied and refilled.
    const file = await tamperedBackup((doc) => {
      doc.tables.find((t) => t.name === 'record_shares')?.rows.push({ record_id: 'not-a-uuid', user_id: 'not-a-uuid' });
    });
    const refused = await cli(['backup', 'restore', file, '--force']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(
      /^error: the restore failed and its transaction was rolled back \(nothing was changed in Postgres\): .*uuid/,
    );
    expect(refused.stderr.trim().split('\n')).to.have.length(1);
    expect(await snapshot(deps.knex)).to.deep.equal(before);
  });

  it('S8 a backup holding any value sealed under another MASTER_KEY is refused before anything changes', async function () {
    const other = createMasterBox(randomBytes(32));
    // Not the first signing key (the only value checked before): a user's wrapped data key.
    const file = await tamperedBackup((doc) => {
      const keys = doc.tables.find((t) => t.name === 'user_data_keys')?.rows as { user_id: string; key_wrapped: string }[];
      const row = keys[0];
      if (!row) throw new Error('no data key in the backup');
      row.key_wrapped = other.seal(randomBytes(32), `data-key:${row.user_id}`);
    });
    const before = await snapshot(deps.knex);
    const refused = await cli(['backup', 'restore', file, '--force']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('MASTER_KEY').and.include('user_data_keys').and.include('nothing was changed');
    expect(await snapshot(deps.knex)).to.deep.equal(before);
  });

  it('S3 a backup whose data keys VAULT_KEY does not open is refused, and so is a restore without VAULT_KEY, naming it', async function () {
    const other = createVaultBox(randomBytes(32));
    const file = await tamperedBackup((doc) => {
      const row = (doc.tables.find((t) => t.name === 'user_data_keys')?.rows as { user_id: string; key_wrapped: string }[])[0];
      if (!row) throw new Error('no data key in the backup');
      row.key_wrapped = other.seal(randomBytes(32), `data-key:${row.user_id}`);
    });
    const before = await snapshot(deps.knex);
    const refused = await cli(['backup', 'restore', file, '--force']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('this VAULT_KEY cannot open').and.include('user_data_keys').and.include('nothing was changed');
    const keyless = await cli(['backup', 'restore', await createBackup(), '--force'], { VAULT_KEY: '' });
    expect(keyless.code).to.equal(1);
    expect(keyless.stderr).to.include('set VAULT_KEY (or VAULT_KEY_FILE)').and.include('nothing was changed');
    expect(await snapshot(deps.knex)).to.deep.include({ records: before.records, user_data_keys: before.user_data_keys });
  });

  it('S3 a backup from before VAULT_KEY (data keys under MASTER_KEY) is restored with its data keys re-wrapped under VAULT_KEY', async function () {
    const vault = createVaultBox(Buffer.from(testEnv.vaultKey, 'base64'));
    const master = createMasterBox(Buffer.from(testEnv.masterKey, 'base64'));
    const file = await tamperedBackup((doc) => {
      for (const row of doc.tables.find((t) => t.name === 'user_data_keys')?.rows as { user_id: string; key_wrapped: string }[]) {
        const aad = `data-key:${row.user_id}`;
        row.key_wrapped = master.seal(vault.open(row.key_wrapped, aad), aad);
      }
    });
    const restored = await cli(['backup', 'restore', file, '--force']);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(JSON.parse(restored.stdout)).to.deep.include({ data_keys_rewrapped: 1 });
    const [row] = await deps
      .knex('records')
      .select<{ id: string; owner_id: string; payload_sealed: string }[]>('id', 'owner_id', 'payload_sealed');
    if (!row) throw new Error('no record');
    expect(deps.api.vault.open(await deps.api.vault.keyOf(row.owner_id), row.id, row.owner_id, row.payload_sealed)).to.deep.equal({
      label: 's8',
      data: { text: 'kept' },
    });
  });

  it('S8 a backup that decompresses beyond the limit is refused with a clear error (zlib maxOutputLength)', function () {
    const key = parseBackupKey(backupKey);
    // 8 MiB of JSON that gzips to a few kilobytes: a decompression bomb in miniature.
    const sealed = sealBackup({ format: 'portcullis-backup', padding: ' '.repeat(8 * 1024 * 1024) }, key);
    expect(sealed.length).to.be.below(64 * 1024);
    const open = () => openBackup(sealed, key, { maxBytes: 1024 * 1024 });
    expect(open).to.throw(BackupFileError, /expands to more than 1048576 bytes/);
  });

  it('S8 backup create needs the database URL and BACKUP_KEY only, never MASTER_KEY', async function () {
    const file = newFile();
    const withoutMasterKey = env();
    delete withoutMasterKey.MASTER_KEY;
    const created = await runNode(['src/cli.ts', 'backup', 'create', '--out', file], withoutMasterKey);
    expect(created.code, created.stderr).to.equal(0);
    expect((await readFile(file)).subarray(0, 19).toString()).to.equal('PORTCULLIS-BACKUP-1');
  });
});
