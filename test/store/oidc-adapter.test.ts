import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { withReuseDetection } from '../../src/auth/refresh-reuse.ts';
import { createPostgresStateStore, sweepExpiredOidcPayloads } from '../../src/store/oidc-adapter-postgres.ts';
import { createRedisStateStore } from '../../src/store/oidc-adapter-redis.ts';
import { createOidcStateKeys, sealedAdapter } from '../../src/store/oidc-adapter-sealed.ts';
import { testEnv } from '../setup.ts';
import { adapterContract } from './oidc-adapter.contract.ts';

describe('oidc-provider adapters', function () {
  let knex: Knex;
  let redis: Redis;

  before(function () {
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 10 } });
    redis = new Redis(testEnv.redisUrl, { keyPrefix: `${testEnv.redisKeyPrefix}contract:` });
  });

  after(async function () {
    await knex.destroy();
    redis.disconnect();
  });

  // The storage backends, with consume() by the reuse rule over their atomic mark (as the servers use them).
  const createPostgresAdapter = (db: Knex, model: string) => withReuseDetection((name) => createPostgresStateStore(db, name))(model);
  const createRedisAdapter = (client: Redis, model: string) => withReuseDetection((name) => createRedisStateStore(client, name))(model);

  adapterContract('postgres', (model) => createPostgresAdapter(knex, model));

  adapterContract('redis', (model) => createRedisAdapter(redis, model));

  // What the servers use: either store under keyed hashes with sealed payloads (S10).
  const keys = createOidcStateKeys(randomBytes(32));
  adapterContract('postgres, sealed', (model) => sealedAdapter(createPostgresAdapter(knex, model), model, keys));
  adapterContract('redis, sealed', (model) => sealedAdapter(createRedisAdapter(redis, model), model, keys));

  describe('sweepExpiredOidcPayloads (postgres)', function () {
    const put = async (model: string, id: string, expiresAt: Date | null) => {
      await knex('oidc_payloads').insert({ id, type: model, payload: JSON.stringify({ jti: id }), expires_at: expiresAt });
    };
    const exists = async (model: string, id: string) => (await knex('oidc_payloads').where({ type: model, id }).first()) !== undefined;
    const newId = () => randomBytes(12).toString('base64url');

    it('deletes expired rows only, in batches', async function () {
      await sweepExpiredOidcPayloads(knex); // clear what earlier cases left behind
      const past = new Date(Date.now() - 60_000);
      const expired = [newId(), newId(), newId()];
      for (const id of expired) await put('AccessToken', id, past);
      const live = newId();
      const forever = newId();
      await put('AccessToken', live, new Date(Date.now() + 60_000));
      await put('Session', forever, null);

      expect(await sweepExpiredOidcPayloads(knex, 2)).to.equal(2);
      expect(await sweepExpiredOidcPayloads(knex)).to.equal(1);
      expect(await sweepExpiredOidcPayloads(knex)).to.equal(0);
      for (const id of expired) expect(await exists('AccessToken', id)).to.equal(false);
      expect(await exists('AccessToken', live)).to.equal(true);
      expect(await exists('Session', forever)).to.equal(true);
    });

    it('removes rows the adapter already treats as expired', async function () {
      const adapter = createPostgresAdapter(knex, 'AccessToken');
      const id = newId();
      await adapter.upsert(id, { jti: id }, 1);
      await knex('oidc_payloads')
        .where({ type: 'AccessToken', id })
        .update({ expires_at: new Date(Date.now() - 1000) });
      expect(await adapter.find(id)).to.equal(undefined);
      expect(await exists('AccessToken', id)).to.equal(true);
      expect(await sweepExpiredOidcPayloads(knex)).to.be.at.least(1);
      expect(await exists('AccessToken', id)).to.equal(false);
    });
  });

  describe('S10 sealed adapter: keyed storage ids, sealed payloads', function () {
    const keys = createOidcStateKeys(randomBytes(32));
    const newId = () => randomBytes(16).toString('base64url');
    const backends = {
      postgres: (model: string) => createPostgresAdapter(knex, model),
      redis: (model: string) => createRedisAdapter(redis, model),
    };

    it('S10 every seal has a key of its own (HMAC of a random salt named in the envelope), so GCM nonces never pile up under one key', function () {
      const envelopes = Array.from({ length: 50 }, () => keys.seal('{"same":"payload"}', 'oidc:Session'));
      const salts = envelopes.map((envelope) => envelope.split('.')[1]);
      expect(new Set(salts).size).to.equal(50);
      for (const salt of salts) expect(salt).to.match(/^[0-9a-f]{32}$/);
      for (const envelope of envelopes) expect(keys.open(envelope, 'oidc:Session').toString()).to.equal('{"same":"payload"}');
      // The salt is authenticated: an envelope re-labelled with another salt does not open.
      const [version, , iv, body] = envelopes[0]!.split('.');
      expect(() => keys.open([version, salts[1], iv, body].join('.'), 'oidc:Session')).to.throw();
      expect(() => keys.open(envelopes[0]!, 'oidc:AccessToken')).to.throw();
    });

    for (const [name, backend] of Object.entries(backends)) {
      it(`S10 stores nothing of the id, uid, user code or payload in the clear (${name})`, async function () {
        const [id, uid, grantId] = [newId(), newId(), newId()];
        const userCode = 'BCDFGHJK';
        const payload = {
          jti: id,
          uid,
          grantId,
          userCode,
          accountId: '5f0c6c4e-7a53-4a43-9d5f-3b1c7f0f9a11',
          deviceInfo: { ip: '203.0.113.7', ua: 'TV/1.0' },
        };
        await sealedAdapter(backend('DeviceCode'), 'DeviceCode', keys).upsert(id, payload, 60);
        const stored = await backend('DeviceCode').find(keys.storageKey(id));
        const text = JSON.stringify(stored);
        for (const secret of [id, uid, grantId, userCode, '203.0.113.7', 'TV/1.0']) expect(text).not.to.include(secret);
        // Ids only: the account id stays readable (an erasure deletes by it), the rest is sealed.
        expect(stored).to.have.keys('sealed', 'accountId', 'grantId', 'uid', 'userCode');
        expect(await backend('DeviceCode').find(id)).to.equal(undefined);
        // The storage key as a presented value finds nothing either.
        const sealed = sealedAdapter(backend('DeviceCode'), 'DeviceCode', keys);
        expect(await sealed.find(keys.storageKey(id))).to.equal(undefined);
        expect(await sealed.findByUserCode(keys.storageKey(userCode))).to.equal(undefined);
        expect(await sealed.findByUserCode(userCode)).to.deep.equal(payload);
      });

      it(`S10 a sealed payload copied under another id, or another model, is refused (${name})`, async function () {
        const [victim, attacker] = [newId(), newId()];
        const sessions = sealedAdapter(backend('Session'), 'Session', keys);
        await sessions.upsert(victim, { jti: victim, uid: newId(), accountId: 'victim' }, 60);
        await sessions.upsert(attacker, { jti: attacker, uid: newId(), accountId: 'attacker' }, 60);
        // Someone with write access to the store moves the victim's sealed session under their own id.
        const victimStored = await backend('Session').find(keys.storageKey(victim));
        await backend('Session').upsert(keys.storageKey(attacker), victimStored!, 60);
        expect(await sessions.find(attacker)).to.equal(undefined);
        await backend('AccessToken').upsert(keys.storageKey(victim), victimStored!, 60);
        expect(await sealedAdapter(backend('AccessToken'), 'AccessToken', keys).find(victim)).to.equal(undefined);
        expect(await sessions.find(victim)).to.have.property('accountId', 'victim');
      });

      it(`S10 under another MASTER_KEY nothing is found (${name})`, async function () {
        const id = newId();
        await sealedAdapter(backend('RefreshToken'), 'RefreshToken', keys).upsert(id, { jti: id, grantId: newId() }, 60);
        const other = createOidcStateKeys(randomBytes(32));
        expect(await sealedAdapter(backend('RefreshToken'), 'RefreshToken', other).find(id)).to.equal(undefined);
        // Even a lookup that lands on the row (same storage key) cannot open it.
        const misKeyed = sealedAdapter(backend('RefreshToken'), 'RefreshToken', { ...other, storageKey: keys.storageKey });
        expect(await misKeyed.find(id)).to.equal(undefined);
      });
    }
  });
});
