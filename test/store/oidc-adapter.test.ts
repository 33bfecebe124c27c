import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { createPostgresAdapter, sweepExpiredOidcPayloads } from '../../src/store/oidc-adapter-postgres.ts';
import { createRedisAdapter } from '../../src/store/oidc-adapter-redis.ts';
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

  adapterContract('postgres', (model) => createPostgresAdapter(knex, model));

  adapterContract('redis', (model) => createRedisAdapter(redis, model));

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
});
