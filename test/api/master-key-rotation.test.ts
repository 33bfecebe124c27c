import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { createMasterBox, masterKeyId } from '../../src/shared/master-key.ts';
import { SEALED_COLUMNS } from '../../src/store/sealed-columns.ts';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { runNode } from '../helpers/process.ts';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/**
 * `portcullis keys rotate-master` re-seals everything under a new master key in one transaction;
 * servers started with the new MASTER_KEY keep working and read the same records.
 */
describe('master key rotation (portcullis keys rotate-master)', function () {
  this.timeout(120_000);
  const originalKey = testEnv.masterKey;
  const newKey = randomBytes(32).toString('base64');
  let dir: string;
  let servers: TestServers | undefined;

  const cli = (masterKey: string, args: string[], input?: string) =>
    runNode(['src/cli.ts', 'keys', 'rotate-master', ...args], { ...testConfigEnv({ storage: 'postgres' }), MASTER_KEY: masterKey }, input);

  /** Key ids of every sealed value in the database. */
  async function keyIdsInUse(s: TestServers): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const spec of SEALED_COLUMNS) {
      if (!(await s.deps.knex.schema.hasTable(spec.table))) continue;
      const rows = await s.deps.knex(spec.table).whereNotNull(spec.column).pluck<string[]>(spec.column);
      for (const sealed of rows) ids.add(sealed.split('.')[1] ?? '');
    }
    return ids;
  }

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-keys-'));
  });
  after(async function () {
    await servers?.stop();
    // Leave the shared test database under the run's original key for the suites that follow.
    const back = await cli(newKey, [], `${originalKey}\n`);
    if (back.code !== 0 && !back.stderr.includes('is the current one')) throw new Error(back.stderr);
    await rm(dir, { recursive: true, force: true });
  });

  it('re-seals data keys, signing keys, cookie keys and client secrets; the new key reads everything', async function () {
    servers = await startTestServers();
    const rp = await createRp(servers);
    const user = await signedInUser(servers, rp);
    const created = await call(servers, 'POST', '/v1/records', user.token, {
      type: 'identity',
      label: 'Passport',
      data: { number: 'P-123' },
    });
    expect(created.status).to.equal(201);
    const recordId = (created.body as { id: string }).id;
    const payloadBefore = await servers.deps.knex('records').where({ id: recordId }).first<{ payload_sealed: string }>();
    await servers.stop();
    servers = undefined;

    const keyFile = join(dir, 'new.key');
    await writeFile(keyFile, `${newKey}\n`, { mode: 0o600 });
    const result = await cli(originalKey, ['--new-key-file', keyFile]);
    expect(result.code, result.stderr).to.equal(0);
    const report = JSON.parse(result.stdout) as { from: string; to: string; resealed: Record<string, number>; next: string };
    expect(report.from).to.equal(masterKeyId(Buffer.from(originalKey, 'base64')));
    expect(report.to).to.equal(masterKeyId(Buffer.from(newKey, 'base64')));
    expect(report.resealed['user_data_keys.key_wrapped']).to.be.at.least(1);
    expect(report.resealed['signing_keys.private_jwk_sealed']).to.be.at.least(3);
    expect(report.resealed['cookie_keys.key_sealed']).to.be.at.least(1);
    // Client secrets are kept as hashes (docs/clients.md): only older, sealed ones are re-sealed.
    expect(report.resealed['oauth_clients.secret_sealed']).to.be.a('number');
    expect(report.next).to.include('MASTER_KEY');

    servers = await startTestServers({ env: { MASTER_KEY: newKey } });
    expect([...(await keyIdsInUse(servers))]).to.deep.equal([report.to]);
    // Payloads are sealed under the data key, so rotation did not touch them.
    const payloadAfter = await servers.deps.knex('records').where({ id: recordId }).first<{ payload_sealed: string }>();
    expect(payloadAfter.payload_sealed).to.equal(payloadBefore.payload_sealed);
    // The old key no longer opens the wrapped data key.
    const wrapped = await servers.deps.knex('user_data_keys').where({ user_id: user.id }).first<{ key_wrapped: string }>();
    expect(() => createMasterBox(Buffer.from(originalKey, 'base64')).open(wrapped.key_wrapped, `data-key:${user.id}`)).to.throw(
      /sealed under key/,
    );

    // Sign-in (cookie keys, signing keys, client secret) and the API work under the new key.
    const rp2 = await createRp(servers);
    const again = await signedInUser(servers, rp2);
    expect((await call(servers, 'GET', '/v1/me', again.token)).status).to.equal(200);
    const { vault } = servers.deps.api;
    expect(vault.open(await vault.keyOf(user.id), recordId, user.id, payloadAfter.payload_sealed)).to.deep.equal({
      label: 'Passport',
      data: { number: 'P-123' },
    });
    await servers.stop();
    servers = undefined;
  });

  it('is idempotent, and refuses a wrong current key or a bad new key without changing anything', async function () {
    // Running the same rotation again (e.g. after a crash before MASTER_KEY was switched) verifies and changes nothing.
    const repeat = await cli(originalKey, [], `${newKey}\n`);
    expect(repeat.code, repeat.stderr).to.equal(0);
    const report = JSON.parse(repeat.stdout) as { resealed: Record<string, number>; alreadyRotated: number };
    expect(Object.values(report.resealed).every((n) => n === 0)).to.equal(true);
    expect(report.alreadyRotated).to.be.at.least(5);

    // A MASTER_KEY that opens nothing: one clear line, exit 1, nothing changed.
    const wrong = await cli(randomBytes(32).toString('base64'), [], `${randomBytes(32).toString('base64')}\n`);
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr.trim()).to.match(/^error: a stored value cannot be opened with the current MASTER_KEY .*nothing was changed$/);

    const same = await cli(newKey, [], `${newKey}\n`);
    expect(same.code).to.equal(1);
    expect(same.stderr.trim()).to.equal('error: the new master key is the current one');

    const bad = await cli(newKey, [], 'not-a-key\n');
    expect(bad.code).to.equal(1);
    expect(bad.stderr.trim()).to.equal('error: the new master key must be base64 of exactly 32 bytes (openssl rand -base64 32)');
  });
});
