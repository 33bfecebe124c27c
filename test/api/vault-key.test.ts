import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { vaultKeyId } from '../../src/shared/vault-key.ts';
import { call, createRp, signedInUser } from '../helpers/api.ts';
import { startInstance, stopInstance } from '../helpers/cluster.ts';
import { createTestUser } from '../helpers/factories.ts';
import { runNode, spawnNode, waitForReady } from '../helpers/process.ts';
import { freePort, startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/**
 * VAULT_KEY (S3): a rotation with instances running (VAULT_KEY_PREVIOUS, then `keys
 * rewrap-vault`) leaves no record unreadable, and a process holding MASTER_KEY and VAULT_KEY
 * re-wraps data keys from before VAULT_KEY at start.
 */
describe('S3 VAULT_KEY rotation and the upgrade re-wrap', function () {
  this.timeout(180_000);
  /** The file's own VAULT_KEY (testEnv is read once the file's hooks run). */
  let k1 = '';
  const k2 = randomBytes(32).toString('base64');
  const rewrap = (env: Record<string, string>) =>
    runNode(['src/cli.ts', 'keys', 'rewrap-vault'], { ...testConfigEnv({ storage: 'postgres' }), ...env });
  let servers: TestServers | undefined;

  afterEach(async function () {
    await servers?.stop();
    servers = undefined;
  });
  before(function () {
    k1 = testEnv.vaultKey;
  });

  const wrappedUnder = async (s: TestServers, userId: string) =>
    (await s.deps.knex('user_data_keys').where({ user_id: userId }).first<{ key_wrapped: string }>()).key_wrapped.split('.')[1];

  it('S3 rotating VAULT_KEY with VAULT_KEY_PREVIOUS keeps every record readable at each step; keys rewrap-vault moves them all, and refuses what it cannot open', async function () {
    type Made = { token: string; id: string; label: string; userId: string };
    const made: Made[] = [];
    // One issuer and API address for every step, so tokens from one step are good at the next.
    const [authPort, apiPort] = [await freePort(), await freePort()];
    const addresses = {
      ISSUER: `http://127.0.0.1:${authPort}`,
      AUTH_PORT: String(authPort),
      API_URL: `http://127.0.0.1:${apiPort}`,
      API_PORT: String(apiPort),
    };
    /** Every instance of a step, however keyed, reads every record made so far, and makes one. */
    const step = async (env: Record<string, string>, label: string) => {
      servers = await startTestServers({ storage: 'postgres', env: { ...addresses, ...env } });
      const rp = await createRp(servers);
      for (const record of made) {
        const read = await call(servers, 'GET', `/v1/records/${record.id}`, record.token);
        expect(read.status, `${label}: ${record.label}`).to.equal(200);
        expect(read.body).to.deep.include({ label: record.label });
      }
      const user = await signedInUser(servers, rp);
      const created = await call(servers, 'POST', '/v1/records', user.token, { type: 'note', label: `made at ${label}`, data: {} });
      expect(created.status).to.equal(201);
      made.push({ token: user.token, id: (created.body as { id: string }).id, label: `made at ${label}`, userId: user.id });
      const keyId = await wrappedUnder(servers, user.id);
      await servers.stop();
      servers = undefined;
      return keyId;
    };
    expect(await step({ VAULT_KEY: k1 }, 'before')).to.equal(vaultKeyId(Buffer.from(k1, 'base64')));
    // 1: the new key is known (as the other key) everywhere, nothing wrapped under it yet.
    expect(await step({ VAULT_KEY: k1, VAULT_KEY_PREVIOUS: k2 }, 'step 1')).to.equal(vaultKeyId(Buffer.from(k1, 'base64')));
    // 2: new keys are wrapped under the new one, the old one still opens.
    expect(await step({ VAULT_KEY: k2, VAULT_KEY_PREVIOUS: k1 }, 'step 2')).to.equal(vaultKeyId(Buffer.from(k2, 'base64')));

    // 3: everything under the new key; a second run finds nothing.
    const first = await rewrap({ VAULT_KEY: k2, VAULT_KEY_PREVIOUS: k1 });
    expect(first.code, first.stderr).to.equal(0);
    const report = JSON.parse(first.stdout) as { current: string; resealed: Record<string, number>; status: { not_current: number } };
    expect(report.current).to.equal(vaultKeyId(Buffer.from(k2, 'base64')));
    expect(report.resealed['user_data_keys.key_wrapped']).to.be.at.least(2);
    expect(report.status.not_current).to.equal(0);
    expect(JSON.parse((await rewrap({ VAULT_KEY: k2, VAULT_KEY_PREVIOUS: k1 })).stdout)).to.deep.include({
      resealed: { 'user_data_keys.key_wrapped': 0 },
    });

    // 4: the old key is gone; every record still reads.
    expect(await step({ VAULT_KEY: k2 }, 'step 4')).to.equal(vaultKeyId(Buffer.from(k2, 'base64')));

    // A run given neither key that wrapped the data keys changes nothing and says what is missing.
    const stranger = await rewrap({ VAULT_KEY: randomBytes(32).toString('base64') });
    expect(stranger.code).to.equal(1);
    expect(JSON.parse(stranger.stdout)).to.deep.include({ resealed: { 'user_data_keys.key_wrapped': 0 } });
    expect(stranger.stderr).to.match(
      /^error: \d+ data key\(s\) could not be opened with VAULT_KEY, VAULT_KEY_PREVIOUS or MASTER_KEY \(v-[0-9a-f]{12}\) and were left as they are$/m,
    );
  });

  it('S3 a process serving both roles with MASTER_KEY and VAULT_KEY re-wraps data keys from before VAULT_KEY at start', async function () {
    servers = await startTestServers({ storage: 'postgres' });
    const user = await createTestUser(servers.deps);
    const master = createMasterBox(Buffer.from(testEnv.masterKey, 'base64'));
    await servers.deps
      .knex('user_data_keys')
      .insert({ user_id: user.id, key_wrapped: master.seal(randomBytes(32), `data-key:${user.id}`) });
    // An API-only process does not use MASTER_KEY even when given it (outside production): it
    // leaves the key as it is and says what to run.
    const apiOnly = await startInstance('api', { ...testConfigEnv({ storage: 'postgres' }), LOG_LEVEL: 'info' });
    expect(apiOnly.output()).to.include('MASTER_KEY is set but not used').and.include('portcullis keys rewrap-vault');
    expect(await stopInstance(apiOnly)).to.equal(0);
    expect(await wrappedUnder(servers, user.id)).to.match(/^m-/);

    // One process for both roles holds both keys: it moves the key at start.
    const [authPort, apiPort] = [await freePort(), await freePort()];
    const whole = spawnNode(['src/main.ts'], {
      ...testConfigEnv({ storage: 'postgres' }),
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      AUTH_PORT: String(authPort),
      API_PORT: String(apiPort),
      ISSUER: `http://127.0.0.1:${authPort}`,
      API_URL: `http://127.0.0.1:${apiPort}`,
    });
    try {
      await waitForReady(`http://127.0.0.1:${apiPort}/readyz`);
      expect(whole.output()).to.include('data keys re-wrapped under VAULT_KEY');
      expect(await wrappedUnder(servers, user.id)).to.equal(vaultKeyId(Buffer.from(testEnv.vaultKey, 'base64')));
    } finally {
      whole.child.kill('SIGTERM');
      await whole.exited;
    }
  });
});
