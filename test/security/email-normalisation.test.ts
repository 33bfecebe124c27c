import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { DuplicateEmailError } from '../../src/store/users.ts';
import { rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { createTestDatabase } from '../setup.ts';

/** ASCII written with full-width forms (U+FF01…U+FF5E), '@' and '.' included. */
const fullWidth = (text: string): string => text.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));

/**
 * R7 (issue 19): one email normalisation (NFKC, trim, lower case; src/shared/email.ts) for
 * storage, lookup and the lockout key. Before, the lockout key was lower-cased in JavaScript and
 * the lookup used Postgres lower(), so `alİce@x` reached alice's account under another budget.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R7: one email normalisation for storage, lookup and lockout (${storage})`, function () {
    let servers: TestServers;
    const password = 'correct horse battery 7';

    before(async function () {
      servers = await startTestServers({ storage, env: { LOCKOUT_PASSWORD_MAX_FAILURES: '4', LOCKOUT_BASE_SECONDS: '60' } });
    });

    after(async function () {
      await servers.stop();
    });

    const create = (email: string) => servers.deps.accounts.createUser({ email, password });
    const signIn = async (email: string, secret = password) => (await servers.deps.accounts.authenticate(email, secret))?.id;
    const tag = () => randomBytes(4).toString('hex');

    it('R7 ALICE@…, full-width and Kelvin-sign spellings reach the same account and spend one lockout budget', async function () {
      const email = `kate.${tag()}@example.test`;
      const user = await create(email);
      const spellings = [email.toUpperCase(), `\u212A${email.slice(1)}`, fullWidth(email), ` ${fullWidth(email.toUpperCase())} `];
      for (const spelling of spellings) expect(await signIn(spelling), spelling).to.equal(user.id);
      // One wrong password under each spelling: four failures on one budget lock the account.
      for (const spelling of spellings) expect(await signIn(spelling, 'wrong password')).to.equal(undefined);
      expect(await servers.deps.lockouts.password.check(email)).to.include({ locked: true, failures: 4 });
      for (const spelling of [email, ...spellings]) expect(await signIn(spelling), spelling).to.equal(undefined);
    });

    it('R7 alİce is not alice: the dotted capital I neither reaches a locked alice nor escapes her budget', async function () {
      const id = tag();
      const alice = await create(`alice.${id}@example.test`);
      const dotted = `al\u0130ce.${id}@example.test`;
      expect(await signIn(dotted)).to.equal(undefined);
      for (let i = 0; i < 4; i++) await signIn(alice.email, 'wrong password');
      // Locked: no other spelling of her address has a budget of its own.
      expect(await signIn(dotted)).to.equal(undefined);
      expect(await signIn(`AL\u0130CE.${id}@EXAMPLE.TEST`)).to.equal(undefined);
      expect(await signIn(alice.email)).to.equal(undefined);
    });

    it('R7 an address with İ is its own account, reached by its upper-case and full-width spellings', async function () {
      const id = tag();
      const user = await create(`al\u0130ce.${id}@example.test`);
      expect(await signIn(`AL\u0130CE.${id}@EXAMPLE.TEST`)).to.equal(user.id);
      expect(await signIn(fullWidth(`al`) + `\u0130ce.${id}@example.test`)).to.equal(user.id);
      expect(await signIn(`alice.${id}@example.test`)).to.equal(undefined);
    });

    it('R7 uniqueness is enforced on the normalised form', async function () {
      const email = `bob.${tag()}@example.test`;
      await create(email);
      for (const spelling of [email.toUpperCase(), fullWidth(email), `  ${email}\u3000`]) {
        expect(await rejectionOf(() => create(spelling)), spelling).to.be.instanceOf(DuplicateEmailError);
      }
      const row = await servers.deps.knex('users').whereRaw('email_normalized = ?', [email]).first<{ email: string }>('email');
      expect(row.email).to.equal(email);
    });
  });
}

describe('R7: the migration to normalised emails', function () {
  const directory = new URL('../../migrations/', import.meta.url).pathname;
  const options = { directory, loadExtensions: ['.ts'], tableName: 'knex_migrations' };
  const target = '20261202001700_normalised_email.ts';
  let knex: Knex;

  before(async function () {
    const { url } = await createTestDatabase('r7_migration', { empty: true });
    knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    // Every migration before this one.
    for (;;) {
      const [, pending] = (await knex.migrate.list(options)) as [unknown, { file: string }[]];
      if (pending[0]?.file === target) break;
      if (pending.length === 0) throw new Error(`no pending migration ${target}`);
      await knex.migrate.up(options);
    }
  });

  after(async function () {
    await knex.destroy();
  });

  it('R7 the migration refuses to merge accounts that collide after normalisation, naming them, and changes nothing', async function () {
    const [first] = await knex('users').insert({ email: 'Carol@Example.test' }).returning<{ id: string }[]>('id');
    const [second] = await knex('users')
      .insert({ email: fullWidth('carol@example.test') })
      .returning<{ id: string }[]>('id');
    const failure = await rejectionOf(() => knex.migrate.up(options));
    expect(failure).to.be.instanceOf(Error);
    const message = (failure as Error).message;
    expect(message).to.contain('carol@example.test');
    expect(message).to.contain(first?.id).and.to.contain(second?.id);
    const [, pending] = (await knex.migrate.list(options)) as [unknown, { file: string }[]];
    expect(pending[0]?.file).to.equal(target);
    const columns = await knex('information_schema.columns').where({ table_name: 'users', column_name: 'email_normalized' });
    expect(columns).to.have.length(0);
    await knex('users').where({ id: second?.id }).delete();
  });

  it('R7 the migration fills email_normalized for existing rows and makes it unique', async function () {
    await knex('users').insert({ email: fullWidth('Dave') + '@Example.test' });
    await knex.migrate.up(options);
    const rows = await knex('users')
      .orderBy('email_normalized')
      .select<{ email: string; email_normalized: string }[]>('email', 'email_normalized');
    expect(rows.map((r) => r.email_normalized)).to.deep.equal(['carol@example.test', 'dave@example.test']);
    expect(rows[0]?.email).to.equal('Carol@Example.test');
    expect(await rejectionOf(() => knex('users').insert({ email: 'x', email_normalized: 'dave@example.test' }))).to.have.property(
      'code',
      '23505',
    );
  });
});
