import { expect } from 'chai';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

const GENERIC = 'The current password is not right, or there were too many attempts.';

/**
 * R5 (issue 19): the current password on the account page is checked under the same lockout
 * budget as the login (the sentinel's password budget, per account): guesses there count, and a
 * locked account refuses even the right current password, with one generic message.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R5: current-password guessing on the account page (${storage})`, function () {
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({ storage, env: { LOCKOUT_PASSWORD_MAX_FAILURES: '3', LOCKOUT_BASE_SECONDS: '60' } });
    });

    after(async function () {
      await servers.stop();
    });

    async function accountPage(email: string, password: string): Promise<{ browser: Browserless; form: { action: string; csrf: string } }> {
      const browser = new Browserless(servers.issuer);
      return { browser, form: formOf(await signInToAccount(browser, { email, password }), '/password') };
    }

    const change = async (page: Awaited<ReturnType<typeof accountPage>>, current: string) => {
      const { response, url } = await page.browser.submit(page.form.action, {
        csrf: page.form.csrf,
        current_password: current,
        new_password: 'a new long passphrase',
        confirm_password: 'a new long passphrase',
      });
      return { url, html: await response.text() };
    };

    const failureReasons = async (userId: string): Promise<string[]> =>
      (
        await servers.deps
          .knex('audit_events')
          .where({ actor_id: userId, type: 'password.changed', outcome: 'failure' })
          .orderBy('id')
          .select<{ data: { reason: string } }[]>('data')
      ).map((row) => row.data.reason);

    it('R5 wrong current passwords count toward the account lockout; then even the right one is refused with the generic message, and the login is locked too', async function () {
      const user = await createTestUser(servers.deps);
      const changedAt = async () =>
        (
          await servers.deps.knex('users').where({ id: user.id }).first<{ password_changed_at: Date }>('password_changed_at')
        ).password_changed_at.getTime();
      const before = await changedAt();
      const page = await accountPage(user.email, user.password);
      for (let i = 0; i < 3; i++) expect((await change(page, `wrong-${String(i)}`)).html).to.contain(GENERIC);
      const right = await change(page, user.password);
      expect(right.html).to.contain(GENERIC);
      expect(right.url.pathname).to.equal('/account/password');
      expect(await failureReasons(user.id)).to.deep.equal(['wrong_password', 'wrong_password', 'invalid_now_locked', 'locked']);
      // The same budget as the login page: the right password is refused there as well.
      expect(await servers.deps.lockouts.password.check(user.email)).to.include({ locked: true, failures: 3 });
      expect(await servers.deps.accounts.authenticate(user.email, user.password)).to.equal(undefined);
      expect(await changedAt()).to.equal(before);
    });

    it('R5 a right current password clears earlier failures, as a sign-in does', async function () {
      const user = await createTestUser(servers.deps);
      const page = await accountPage(user.email, user.password);
      for (let i = 0; i < 2; i++) expect((await change(page, `wrong-${String(i)}`)).html).to.contain(GENERIC);
      expect((await servers.deps.lockouts.password.check(user.email)).failures).to.equal(2);
      const ok = await change(page, user.password);
      expect(ok.url.pathname).to.equal('/account');
      expect((await servers.deps.lockouts.password.check(user.email)).failures).to.equal(0);
      expect(await servers.deps.accounts.authenticate(user.email, 'a new long passphrase')).to.not.equal(undefined);
    });
  });
}
