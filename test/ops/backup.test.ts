import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { generate } from 'otplib';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { createTestDatabase, testEnv } from '../setup.ts';

/** Every row of a table as JSON text, sorted: equality means identical contents. */
async function contents(knex: Knex, table: string): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { row: string }[] }>('SELECT to_jsonb(t)::text AS row FROM ?? AS t', [table]);
  return rows.map((r) => r.row).sort();
}

/**
 * `portcullis backup create` / `restore` round trip through real CLI processes: a populated
 * database (users, TOTP and recovery codes, clients, signing keys, encrypted records, audit
 * chain) restored into a fresh database is identical table by table, except cookie keys (rotated,
 * so every session ends), initial access tokens (revoked), oidc flow state (never backed up) and
 * the audit log (continued with the restore's own event).
 */
describe('encrypted backup and restore', function () {
  this.timeout(120_000);
  // The source is the file's own database; the restore goes into a second, migrated one.
  let sourceUrl: string;
  let targetUrl: string;
  const backupKey = randomBytes(32).toString('base64');
  let dir: string;
  let deps: Deps;
  let source: Knex;
  let target: Knex;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-backup-'));
    sourceUrl = testEnv.databaseUrl;
    targetUrl = (await createTestDatabase('restore')).url;
    target = knexFactory({ client: 'pg', connection: targetUrl, pool: { min: 0, max: 2 } });
    source = knexFactory({ client: 'pg', connection: sourceUrl, pool: { min: 0, max: 2 } });
    const config = loadConfig(testConfigEnv({ env: { DATABASE_URL: sourceUrl } }));
    deps = await createDeps(config, { logger: createLogger(config) });
  });

  after(async function () {
    await deps.close();
    await source.destroy();
    await target.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    runNode(['src/cli.ts', ...args], { ...testConfigEnv({ env: { DATABASE_URL: sourceUrl } }), BACKUP_KEY: backupKey, ...env });

  it('round-trips users, MFA credentials, clients, keys, records and the audit chain', async function () {
    const user = await createTestUser(deps);
    const enrollment = await deps.mfa.totp.begin(user.id, user.email, 'test');
    if (!enrollment) throw new Error('TOTP enrollment did not start');
    await deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test');
    const recoveryCodes = await deps.mfa.regenerateRecoveryCodes(user.id, {});
    const registered = await createTestClient(deps);
    await deps.stores.initialAccessTokens.create({ note: 'made before the backup' });
    await deps.keys.ensureSigningKeys();
    await deps.keys.cookieKeys();
    const record = await deps.api.records.create({ userId: user.id }, { type: 'note', label: 'backup me', data: { text: 'survives' } });
    // A brute-force counter (the Postgres lockout sentinel): live state, never in a backup.
    await source('lockouts').insert({
      key: 'lockout:password:backup-test',
      failures: 3,
      level: 1,
      expires_at: new Date(Date.now() + 3_600_000),
    });

    const file = join(dir, 'portcullis.backup');
    const created = await cli(['backup', 'create', '--out', file]);
    expect(created.code, created.stderr).to.equal(0);
    const report = JSON.parse(created.stdout) as { bytes: number; tables: Record<string, number> };
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
    expect(report.tables.users).to.be.greaterThanOrEqual(1);
    process.stdout.write(
      `      backup: ${report.bytes} bytes, ${Object.values(report.tables).reduce((a, b) => a + b, 0)} rows in ${Object.keys(report.tables).length} tables\n`,
    );
    // Encrypted: no personal data or key material in clear.
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(file);
    expect(bytes.includes(Buffer.from(user.email))).to.equal(false);
    expect(bytes.includes(Buffer.from(registered.client_id))).to.equal(false);

    // Refuses to overwrite a file, and a wrong key cannot read it.
    expect((await cli(['backup', 'create', '--out', file])).code).to.equal(1);
    const wrongKey = await cli(['backup', 'restore', file], { DATABASE_URL: targetUrl, BACKUP_KEY: randomBytes(32).toString('base64') });
    expect(wrongKey.code).to.equal(1);
    expect(wrongKey.stderr).to.include('cannot be decrypted');

    const restored = await cli(['backup', 'restore', file], { DATABASE_URL: targetUrl });
    expect(restored.code, restored.stderr).to.equal(0);
    expect(JSON.parse(restored.stdout)).to.include({ cookie_keys_rotated: true });

    // Table by table identical, except cookie keys, flow state and live counters (empty: not in the backup).
    for (const table of ['lockouts', 'dpop_proof_jtis', 'webauthn_challenges', 'account_oidc_index', 'oidc_payloads'])
      expect(await contents(target, table), table).to.deep.equal([]);
    expect(await source('lockouts').where({ key: 'lockout:password:backup-test' })).to.have.length(1);
    const { rows: tables } = await source.raw<{ rows: { table_name: string }[] }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT IN ('knex_migrations', 'knex_migrations_lock', 'cookie_keys', 'oidc_payloads', 'lockouts', 'dpop_proof_jtis', 'webauthn_challenges', 'account_oidc_index', 'initial_access_tokens', 'audit_events')`,
    );
    expect(tables.map((t) => t.table_name)).to.include.members(['users', 'oauth_clients', 'signing_keys', 'records']);
    for (const { table_name: table } of tables) {
      const rows = await contents(source, table);
      if (['users', 'oauth_clients', 'signing_keys', 'records'].includes(table)) expect(rows, table).to.not.be.empty;
      expect(await contents(target, table), table).to.deep.equal(rows);
    }
    // The audit chain: the source's events up to the backup, then the restore's own event.
    const chain = async (knex: Knex) =>
      (await knex('audit_events').orderBy('id').select<{ type: string; hash: string }[]>('type', 'hash')).map((e) => `${e.type} ${e.hash}`);
    const sourceChain = await chain(source);
    const backedUp = sourceChain.slice(
      0,
      sourceChain.findLastIndex((e) => e.startsWith('backup.created ')),
    );
    expect(backedUp).to.not.be.empty;
    const targetChain = await chain(target);
    expect(targetChain.slice(0, -1)).to.deep.equal(backedUp);
    expect(targetChain.at(-1)).to.match(/^backup\.restored /);
    // Initial access tokens come back revoked (the backup predates revocations made since).
    const unrevoked = (rows: string[]) =>
      rows
        .map((row) => ({ ...(JSON.parse(row) as Record<string, unknown>), revoked_at: null }))
        .map((row) => JSON.stringify(row))
        .sort();
    expect(unrevoked(await contents(target, 'initial_access_tokens'))).to.deep.equal(
      unrevoked(await contents(source, 'initial_access_tokens')),
    );
    expect(await target('initial_access_tokens').whereNull('revoked_at').pluck('id')).to.deep.equal([]);

    // Cookie keys: the restored ones are retired, one new key signs (every session ended).
    const cookieKeys = await target('cookie_keys').orderBy('id').select<{ id: number; retired_at: Date | null }[]>('id', 'retired_at');
    const live = cookieKeys.filter((k) => !k.retired_at);
    expect(live).to.have.length(1);
    expect(live[0]!.id).to.be.greaterThan(Math.max(...(await source('cookie_keys').pluck<number[]>('id'))));

    // Usable, not just equal: the restored database signs in the user, opens the record, and
    // knows the TOTP factor and recovery codes (same MASTER_KEY).
    const restoredConfig = loadConfig(testConfigEnv({ env: { DATABASE_URL: targetUrl } }));
    const restoredDeps = await createDeps(restoredConfig, { logger: createLogger(restoredConfig) });
    try {
      expect((await restoredDeps.accounts.authenticate(user.email, user.password))?.id).to.equal(user.id);
      expect((await restoredDeps.api.records.get({ userId: user.id }, record.id)).data).to.deep.equal({ text: 'survives' });
      expect(await restoredDeps.mfa.enrolled(user.id)).to.include('totp');
      expect(await restoredDeps.mfa.recovery.use(user.id, recoveryCodes[0]!)).to.equal(true);
      expect(await restoredDeps.stores.clients.find(registered.client_id, 0)).to.not.equal(undefined);
    } finally {
      await restoredDeps.close();
    }

    // A second restore into the now non-empty database is refused without --force.
    const again = await cli(['backup', 'restore', file], { DATABASE_URL: targetUrl });
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include('not empty');
    const forced = await cli(['backup', 'restore', file, '--force'], { DATABASE_URL: targetUrl });
    expect(forced.code, forced.stderr).to.equal(0);
    expect(await contents(target, 'users')).to.deep.equal(await contents(source, 'users'));
  });
});
