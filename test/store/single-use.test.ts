import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { keyedDigest } from '../../src/shared/derive-key.ts';
import { createMfaStore } from '../../src/store/mfa.ts';
import { createUserStore } from '../../src/store/users.ts';
import { createWebAuthnCredentialStore } from '../../src/store/webauthn-credentials.ts';
import { testEnv } from '../setup.ts';

/**
 * Issue #6 "atomic single use under concurrency" for the WebAuthn state we keep ourselves: the
 * signature counter (a cloned authenticator racing the original) and the one-time challenge.
 * Real parallel statements on a pool of ten connections, so the races are real.
 */
describe('single use under concurrency (WebAuthn counter and challenge)', function () {
  let knex: Knex;
  let userId: string;

  before(async function () {
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 10 } });
    const user = await createUserStore(knex).insert({ email: `race.${randomBytes(4).toString('hex')}@example.test`, passwordHash: null });
    userId = user.id;
  });

  after(async function () {
    await knex.destroy();
  });

  it('moves a WebAuthn signature counter forward exactly once when ten uses race from the same value', async function () {
    const credentials = createWebAuthnCredentialStore(knex);
    const id = randomBytes(16).toString('base64url');
    await credentials.insert({
      id,
      user_id: userId,
      public_key: randomBytes(65),
      counter: 5,
      transports: ['internal'],
      device_type: 'singleDevice',
      backed_up: false,
      aaguid: null,
      name: 'race test',
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => credentials.recordUse(id, 5, 6 + i)));
    expect(results.filter(Boolean)).to.have.length(1);
    const winner = results.indexOf(true);
    expect(Number((await credentials.find(id))?.counter)).to.equal(6 + winner);
    // The losers' view (5) is stale now: a later use from it is refused too.
    expect(await credentials.recordUse(id, 5, 100)).to.equal(false);
  });

  it('hands a WebAuthn challenge to exactly one of ten concurrent takers', async function () {
    const mfa = createMfaStore(knex, { bindingKey: keyedDigest(randomBytes(32), 'test binding') });
    const binding = randomBytes(8).toString('hex');
    await mfa.putChallenge({ binding, purpose: 'second-factor', challenge: 'c-1', userId, ttlSeconds: 60 });
    const taken = await Promise.all(Array.from({ length: 10 }, () => mfa.takeChallenge(binding, 'second-factor')));
    expect(taken.filter((t) => t !== undefined)).to.deep.equal([{ challenge: 'c-1', userId }]);
    expect(await mfa.takeChallenge(binding, 'second-factor')).to.equal(undefined);
  });
});
