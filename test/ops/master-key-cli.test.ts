import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps } from '../../src/deps.ts';
import { createCryptoBox } from '../../src/shared/crypto-box.ts';
import { createMasterBox, masterKeyId } from '../../src/shared/master-key.ts';
import { createSealedColumnStore, SEALED_COLUMNS } from '../../src/store/sealed-columns.ts';
import { createTestUser } from '../helpers/factories.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { createTestDatabase } from '../setup.ts';

/**
 * `portcullis keys reseal`, `keys status` and the retired `keys rotate-master` through the real
 * CLI, on a database of their own (the S2 rotation with running instances is
 * test/ops/master-key-rotation.test.ts).
 */
describe('master key commands (keys reseal, keys status)', function () {
  this.timeout(120_000);
  let databaseUrl: string;
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const b64 = (key: Buffer) => key.toString('base64');
  let db: Knex;

  const cli = (env: Record<string, string>, args: string[], input?: string) =>
    runNode(['src/cli.ts', ...args], { ...testConfigEnv({ storage: 'postgres', env: { DATABASE_URL: databaseUrl } }), ...env }, input);
  const rotating = { MASTER_KEY: b64(newKey), MASTER_KEY_PREVIOUS: b64(oldKey) };

  type Status = {
    clean: boolean;
    current: string;
    not_current: number;
    unreadable: number;
    tables: Record<string, Record<string, number>>;
    recovery_codes: { keyed: number; unkeyed: number };
    next: string;
  };

  before(async function () {
    databaseUrl = (await createTestDatabase('s2_cli')).url;
    db = knexFactory({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 2 } });
    // Values under the old key: the server secrets, a data key, a TOTP seed and recovery codes per user,
    // and cookie keys, one of them under the legacy fixed id `m1`.
    const deps = await createDeps(
      loadConfig(testConfigEnv({ storage: 'postgres', env: { DATABASE_URL: databaseUrl, MASTER_KEY: b64(oldKey) } })),
    );
    try {
      for (let i = 0; i < 4; i++) {
        const user = await createTestUser(deps);
        await deps.api.vault.ensureKey(user.id);
        await deps.mfa.totp.begin(user.id, user.email, 'cli-test');
        await deps.mfa.recovery.regenerate(user.id);
      }
      await deps.keys.cookieKeys();
      await db('cookie_keys').insert({
        key_sealed: createCryptoBox(oldKey, 'm1').seal(randomBytes(32).toString('base64url'), 'cookie-key'),
      });
    } finally {
      await deps.close();
    }
  });

  after(async function () {
    await db.destroy();
  });

  it('keys rotate-master says what replaced it, and changes nothing', async function () {
    const result = await cli(rotating, ['keys', 'rotate-master'], `${b64(randomBytes(32))}\n`);
    expect(result.code).to.equal(1);
    expect(result.stderr.trim()).to.match(
      /^error: keys rotate-master is replaced by a rotation that keeps every instance running: set MASTER_KEY to the new key and MASTER_KEY_PREVIOUS to the old one .*keys reseal.*keys status/,
    );
    const status = JSON.parse((await cli(rotating, ['keys', 'status'])).stdout) as Status;
    expect(status.tables['mfa_totp.secret_sealed']).to.deep.equal({ [masterKeyId(oldKey)]: 4 });
  });

  it('a process with the new key alone names MASTER_KEY_PREVIOUS when the server secrets are under the old one', async function () {
    const result = await cli({ MASTER_KEY: b64(newKey) }, ['keys', 'status']);
    expect(result.code).to.equal(1);
    expect(result.stderr.trim()).to.match(
      /^error: the server secret oidc-state cannot be opened \(cannot decrypt: sealed under key m-[0-9a-f]{12}, not the configured MASTER_KEY .*\); during a MASTER_KEY rotation set MASTER_KEY_PREVIOUS to the old key/,
    );
  });

  it('refuses MASTER_KEY_PREVIOUS equal to MASTER_KEY', async function () {
    const result = await cli({ MASTER_KEY: b64(oldKey), MASTER_KEY_PREVIOUS: b64(oldKey) }, ['keys', 'status']);
    expect(result.code).to.equal(1);
    expect(result.stderr.trim()).to.equal(
      'error: MASTER_KEY_PREVIOUS is the same key as MASTER_KEY; set it to the key used before MASTER_KEY, or unset it',
    );
  });

  it('keys status exits 2 while values are under the previous key; keys reseal moves them in batches, once; then status exits 0', async function () {
    const dirty = await cli(rotating, ['keys', 'status']);
    expect(dirty.code, dirty.stderr).to.equal(2);
    expect(dirty.stderr).to.match(
      /^not clean: \d+ sealed value\(s\) not under MASTER_KEY, 0 unkeyed recovery-code hash\(es\), 0 data key\(s\) under a master key; run: portcullis keys reseal/,
    );
    const before = JSON.parse(dirty.stdout) as Status;
    expect(before).to.include({ clean: false, current: masterKeyId(newKey), unreadable: 0 });
    expect(before.tables['cookie_keys.key_sealed']).to.deep.equal({ [masterKeyId(oldKey)]: 1, m1: 1 });
    expect(before.tables['mfa_totp.secret_sealed']).to.deep.equal({ [masterKeyId(oldKey)]: 4 });
    expect(before.tables['server_secrets.secret_sealed']).to.deep.equal({ [masterKeyId(oldKey)]: 2 });
    expect(before.recovery_codes).to.deep.equal({ keyed: 40, unkeyed: 0 });
    const sealedBefore = await db('mfa_totp').orderBy('user_id').pluck<string[]>('secret_sealed');

    const resealed = await cli(rotating, ['keys', 'reseal', '--batch-size', '3']);
    expect(resealed.code, resealed.stderr).to.equal(0);
    const report = JSON.parse(resealed.stdout) as { resealed: Record<string, number>; unreadable: unknown[]; status: Status };
    // The records' data keys are VAULT_KEY's (S3): keys reseal leaves them to keys rewrap-vault.
    expect(report.resealed).to.not.have.property('user_data_keys.key_wrapped');
    expect(report.resealed).to.include({
      'mfa_totp.secret_sealed': 4,
      'cookie_keys.key_sealed': 2,
      'server_secrets.secret_sealed': 2,
    });
    expect(report.unreadable).to.deep.equal([]);
    expect(report.status.clean).to.equal(true);
    // The same secrets, sealed anew under the new key.
    const newBox = createMasterBox(newKey);
    const oldBox = createMasterBox(oldKey);
    const sealedAfter = await db('mfa_totp')
      .orderBy('user_id')
      .select<{ user_id: string; secret_sealed: string }[]>('user_id', 'secret_sealed');
    sealedAfter.forEach((row, i) => {
      expect(newBox.open(row.secret_sealed, `totp:${row.user_id}`).toString()).to.equal(
        oldBox.open(sealedBefore[i]!, `totp:${row.user_id}`).toString(),
      );
    });

    const clean = await cli(rotating, ['keys', 'status']);
    expect(clean.code, clean.stderr).to.equal(0);
    const after = JSON.parse(clean.stdout) as Status;
    expect(after).to.include({ clean: true, not_current: 0 });
    expect(after.next).to.match(/^nothing is sealed under MASTER_KEY_PREVIOUS any more: remove it/);
    for (const [column, ids] of Object.entries(after.tables))
      for (const id of Object.keys(ids)) expect(id, column).to.equal(masterKeyId(newKey));

    // Again: nothing to do. And with the new key alone, everything opens and the status is clean.
    const again = JSON.parse((await cli(rotating, ['keys', 'reseal'])).stdout) as { resealed: Record<string, number> };
    expect(Object.values(again.resealed).every((n) => n === 0)).to.equal(true);
    const alone = await cli({ MASTER_KEY: b64(newKey) }, ['keys', 'status']);
    expect(alone.code, alone.stderr).to.equal(0);
    expect((JSON.parse(alone.stdout) as Status).next).to.equal('everything is sealed under MASTER_KEY');
  });

  it('keys reseal leaves a value no configured key opens, names it and exits 1; keys status counts it as unreadable', async function () {
    const lost = randomBytes(32);
    await db('cookie_keys').insert({ key_sealed: createMasterBox(lost).seal('x'.repeat(43), 'cookie-key') });
    const result = await cli(rotating, ['keys', 'reseal']);
    expect(result.code).to.equal(1);
    expect(result.stderr.trim()).to.equal(
      'error: 1 value(s) could not be opened with MASTER_KEY or MASTER_KEY_PREVIOUS and were left as they are',
    );
    const report = JSON.parse(result.stdout) as { unreadable: { column: string; key_id: string }[] };
    expect(report.unreadable).to.have.length(1);
    expect(report.unreadable[0]).to.include({ column: 'cookie_keys.key_sealed', key_id: masterKeyId(lost) });
    const status = await cli(rotating, ['keys', 'status']);
    expect(status.code).to.equal(2);
    expect(JSON.parse(status.stdout)).to.include({ unreadable: 1, not_current: 1 });
    expect((JSON.parse(status.stdout) as Status).next).to.match(/neither MASTER_KEY nor MASTER_KEY_PREVIOUS/);
    await db('cookie_keys')
      .where('key_sealed', 'like', `v1.${masterKeyId(lost)}.%`)
      .delete();
  });

  it('S3 keys status is not clean while data keys from before VAULT_KEY are still under a master key; keys rewrap-vault moves them, then it is', async function () {
    const user = await db('users').first<{ id: string }>('id');
    const wrapped = createMasterBox(newKey).seal(randomBytes(32), `data-key:${user.id}`);
    const was = (await db('user_data_keys').where({ user_id: user.id }).first<{ key_wrapped: string }>('key_wrapped')).key_wrapped;
    await db('user_data_keys').where({ user_id: user.id }).update({ key_wrapped: wrapped });
    const dirty = await cli(rotating, ['keys', 'status']);
    expect(dirty.code, dirty.stderr).to.equal(2);
    const status = JSON.parse(dirty.stdout) as Status & { data_keys_under_master_key: number };
    expect(status).to.include({ clean: false, data_keys_under_master_key: 1 });
    expect(status.next).to.match(/still wrapped under a master key: run portcullis keys rewrap-vault/);
    const moved = await cli(rotating, ['keys', 'rewrap-vault']);
    expect(moved.code, moved.stderr).to.equal(0);
    expect(JSON.parse(moved.stdout)).to.deep.include({ resealed: { 'user_data_keys.key_wrapped': 1 } });
    expect((await cli(rotating, ['keys', 'status'])).code).to.equal(0);
    await db('user_data_keys').where({ user_id: user.id }).update({ key_wrapped: was });
  });

  it('a re-seal never overwrites a value rewritten since it was read (compare and set)', async function () {
    const spec = SEALED_COLUMNS.find((s) => s.table === 'mfa_totp')!;
    const row = await db('mfa_totp').first<{ user_id: string; secret_sealed: string }>('user_id', 'secret_sealed');
    const store = createSealedColumnStore(db);
    expect(await store.replace(spec, row.user_id, 'v1.stale.read', 'v1.other.value')).to.equal(false);
    expect((await db('mfa_totp').where({ user_id: row.user_id }).first<{ secret_sealed: string }>('secret_sealed')).secret_sealed).to.equal(
      row.secret_sealed,
    );
  });
});
