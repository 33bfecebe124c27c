import { expect } from 'chai';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { consistently, eventually } from '../helpers/wait.ts';

/**
 * R8 (issue 19), sessions index: "sign out everywhere" ends the sessions it finds in
 * account_oidc_index. A session indexed by an event listener after its save (fire and forget)
 * could answer the browser before its index row existed, and survive a "sign out everywhere"
 * made right after the sign-in. Sessions are now indexed inside their save, as grants are.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R8: sessions are indexed inside their save (${storage})`, function () {
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({ storage });
    });

    after(async function () {
      await servers.stop();
    });

    /** The account page's login, password posted: its answer (303 to the resume request that saves the session). */
    async function postPassword(email: string, password: string): Promise<{ browser: Browserless; posted: Response }> {
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow('/account');
      const login = formOf(await first.response.text(), '/login');
      const posted = await browser.request(login.action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
        body: new URLSearchParams({ csrf: login.csrf, email, password }).toString(),
      });
      return { browser, posted };
    }

    /** The account page's login up to (not including) the resume request that saves the session. */
    async function upToResume(email: string, password: string): Promise<{ browser: Browserless; resume: URL }> {
      const { browser, posted } = await postPassword(email, password);
      expect(posted.status).to.equal(303);
      return { browser, resume: new URL(posted.headers.get('Location') ?? '', servers.issuer) };
    }

    it('R8 a session is indexed before its sign-in answers: "sign out everywhere" right after ends it, even while the index write waits', async function () {
      const user = await createTestUser(servers.deps);
      const { browser, resume } = await upToResume(user.email, user.password);
      // Hold the user's row: the index insert (its foreign key) waits; nothing else in the resume does.
      const lock = await servers.deps.knex.transaction();
      let answered = false;
      let resumed: Promise<Response> | undefined;
      try {
        await lock.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [user.id]);
        resumed = browser.request(resume).then((response) => {
          answered = true;
          return response;
        });
        // Asked outside the transaction: activity statistics are a snapshot within one.
        const waiting = () =>
          servers.deps.knex
            .raw<{ rows: { n: number }[] }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
            )
            .then((r) => (r.rows[0]?.n ?? 0) > 0);
        await eventually(async () => expect(await waiting(), 'the index write reached the lock').to.equal(true), { timeoutMs: 10_000 });
        // Indexed inside its save, the sign-in does not answer while the index write waits (a
        // session indexed afterwards, by a listener, would answer now, unindexed).
        await consistently(() => expect(answered, 'the sign-in answered before its session was indexed').to.equal(false), {
          forMs: 500,
        });
      } finally {
        await lock.commit();
      }
      // It answers once the index write is through, and "sign out everywhere" then ends it.
      await resumed;
      await servers.deps.accountSessions.signOutEverywhere(user.id);
      expect(browser.sessionId).to.not.equal('');
      expect(await servers.deps.oidcAdapter('Session').find(browser.sessionId)).to.equal(undefined);
    });

    it('R8 ten concurrent sign-ins, each followed at once by "sign out everywhere": no session survives', async function () {
      const user = await createTestUser(servers.deps);
      const browsers = await Promise.all(
        Array.from({ length: 10 }, async () => {
          // A sign-in whose password was checked before another one's "sign out everywhere" is
          // refused when it finishes (R13): which ones are is up to the interleaving.
          const { browser, posted } = await postPassword(user.email, user.password);
          if (posted.status === 303) await browser.request(new URL(posted.headers.get('Location') ?? '', servers.issuer));
          await servers.deps.accountSessions.signOutEverywhere(user.id);
          return browser;
        }),
      );
      for (const browser of browsers) {
        if (browser.sessionId) expect(await servers.deps.oidcAdapter('Session').find(browser.sessionId)).to.equal(undefined);
        // Whatever the store holds, no browser is signed in: the account page asks to sign in.
        const page = await browser.request('/account');
        expect(new URL(page.headers.get('Location') ?? '/', servers.issuer).pathname).to.equal('/auth');
      }
    });
  });
}
