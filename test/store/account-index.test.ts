import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { withAccountIndex } from '../../src/auth/account-index.ts';
import { createAccountIndexStore } from '../../src/store/account-index.ts';
import { createOidcStateKeys } from '../../src/store/oidc-adapter-sealed.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/** The account page's index of provider grants: "last used" without a write per token (issue 8). */
describe('account grant index', function () {
  let servers: TestServers;
  const { storageKey: sessionKey } = createOidcStateKeys(randomBytes(32));

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  it('touch writes last_used_at at most once a minute per grant and process', async function () {
    const index = createAccountIndexStore(servers.deps.knex, { sessionKey });
    const user = await createTestUser(servers.deps);
    const id = randomBytes(16).toString('base64url');
    const lastUsed = async () =>
      (await servers.deps.knex('account_oidc_index').where({ kind: 'Grant', id }).first<{ last_used_at: Date | null }>('last_used_at'))
        .last_used_at;
    await index.put({ kind: 'Grant', id, accountId: user.id, clientId: 'c1' });
    expect(await lastUsed()).to.equal(null);
    await index.touch('Grant', id);
    expect(await lastUsed()).to.be.an.instanceOf(Date);
    // Within the minute, another token for the same grant writes nothing.
    await servers.deps.knex('account_oidc_index').where({ kind: 'Grant', id }).update({ last_used_at: null });
    await index.touch('Grant', id);
    expect(await lastUsed()).to.equal(null);
    // Another process (a fresh store) writes at once.
    await createAccountIndexStore(servers.deps.knex, { sessionKey }).touch('Grant', id);
    expect(await lastUsed()).to.be.an.instanceOf(Date);
  });

  it('a grant is in the index when its save returns, so "sign out everywhere" right after finds it', async function () {
    const user = await createTestUser(servers.deps);
    const grants = withAccountIndex(servers.deps.oidcAdapter('Grant'), 'Grant', servers.deps.accountIndex);
    const id = randomBytes(16).toString('base64url');
    await grants.upsert(id, { accountId: user.id, clientId: 'c1', kind: 'Grant' }, 600);
    // No wait: the index write is part of the save.
    const rows = await servers.deps.accountIndex.list(user.id, 'Grant');
    expect(rows.map((row) => [row.id, row.client_id])).to.deep.equal([[id, 'c1']]);
    expect(rows[0]?.expires_at?.getTime()).to.be.closeTo(Date.now() + 600_000, 5000);
    expect(await servers.deps.accountSessions.signOutEverywhere(user.id)).to.deep.equal({ sessions: 0, grants: 1 });
    expect(await grants.find(id)).to.equal(undefined);
  });
});
