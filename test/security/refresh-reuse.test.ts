import { expect } from 'chai';
import * as client from 'openid-client';
import { REFRESH_REUSE_EVENT } from '../../src/auth/refresh-reuse.ts';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { userTokens, type TestUser } from '../helpers/api.ts';
import { goto, launchChromium, openSession, passwordStep, screenPath } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { basicAuth } from '../helpers/basic-auth.ts';
import { consistently, eventually, waitUntil } from '../helpers/wait.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

type TokenAnswer = { status: number; body: { access_token?: string; refresh_token?: string; error?: string } };
type App = { user: TestUser; clientId: string; secret: string; refreshToken: string };

/**
 * Refresh token rotation reuse (docs/security.md T25, T26; issue #6): presenting a rotated refresh
 * token again revokes the whole grant and is audited with client, IP and user agent; the user
 * sees a notice on the account page. The optional grace window is bounded in time and count.
 */
for (const storage of ['redis', 'postgres'] as const satisfies readonly StorageMode[]) {
  describe(`refresh token reuse (${storage})`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let grace: TestServers;
    /** T25's user, whose account page shows the notice. */
    let replayed: App | undefined;

    before(async function () {
      servers = await startTestServers({ storage });
      grace = await startTestServers({ storage, env: { REFRESH_REUSE_GRACE_SECONDS: '1', REFRESH_REUSE_GRACE_COUNT: '1' } });
    });

    after(async function () {
      await servers.stop();
      await grace.stop();
    });

    /** A user connected to a confidential app with offline access: the app's first refresh token. */
    async function connect(target: TestServers): Promise<App> {
      const user = await createTestUser(target.deps);
      const registered = await createTestClient(target.deps, { client_name: 'Acme Notes' });
      const secret = registered.client_secret ?? '';
      const rp = await client.discovery(new URL(target.issuer), registered.client_id, secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const tokens = await userTokens(target, rp, user, '');
      if (!tokens.refresh_token) throw new Error('no refresh token');
      return { user, clientId: registered.client_id, secret, refreshToken: tokens.refresh_token };
    }

    async function refresh(target: TestServers, app: App, refreshToken: string, userAgent = 'acme-notes/1.0'): Promise<TokenAnswer> {
      const response = await fetch(`${target.issuer}/token`, {
        method: 'POST',
        headers: {
          Authorization: basicAuth(app.clientId, app.secret),
          'Content-Type': 'application/x-www-form-urlencoded',
          'User-Agent': userAgent,
        },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
      });
      return { status: response.status, body: (await response.json()) as TokenAnswer['body'] };
    }

    async function active(target: TestServers, app: App, token: string): Promise<boolean> {
      const response = await fetch(`${target.issuer}/token/introspection`, {
        method: 'POST',
        headers: { Authorization: basicAuth(app.clientId, app.secret), 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }),
      });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { active: boolean }).active;
    }

    const reuseEventsNow = (target: TestServers, userId: string): Promise<AuditEventRow[]> =>
      target.deps.knex<AuditEventRow>('audit_events').where({ type: REFRESH_REUSE_EVENT, actor_id: userId }).orderBy('id');

    /** The reuse events of one user; the audit write follows the answer, so wait for `count`. */
    async function reuseEvents(target: TestServers, userId: string, count = 1): Promise<AuditEventRow[]> {
      return eventually(async () => {
        const rows = await reuseEventsNow(target, userId);
        expect(rows.length, 'reuse events audited').to.be.at.least(count);
        return rows;
      });
    }

    /** No further reuse event is written: the audit writes that follow the answers have had time to land. */
    const noMoreReuseEvents = (target: TestServers, userId: string, count: number) =>
      consistently(async () => expect(await reuseEventsNow(target, userId)).to.have.length(count), { forMs: 200 });

    const refused = (answer: TokenAnswer) => {
      expect(answer.status, JSON.stringify(answer.body)).to.equal(400);
      expect(answer.body.error).to.equal('invalid_grant');
    };

    it('T25 a replayed refresh token revokes the grant (RT2 and AT2 die), is audited and shown on the account page', async function () {
      const app = await connect(servers);
      replayed = app;
      const rt1 = app.refreshToken;
      const rotated = await refresh(servers, app, rt1);
      expect(rotated.status).to.equal(200);
      const { access_token: at2, refresh_token: rt2 } = rotated.body;
      if (!at2 || !rt2) throw new Error('no rotated tokens');
      expect(rt2).to.not.equal(rt1);
      expect(await active(servers, app, at2)).to.equal(true);

      refused(await refresh(servers, app, rt1, 'replayer/6.6'));
      refused(await refresh(servers, app, rt2));
      expect(await active(servers, app, at2)).to.equal(false);

      const [event, ...more] = await reuseEvents(servers, app.user.id);
      expect(more).to.have.length(0);
      expect(event).to.deep.include({ outcome: 'failure', client_id: app.clientId, user_agent: 'replayer/6.6' });
      expect(event?.ip).to.match(/127\.0\.0\.1$/);
      expect(event?.data).to.include({ client_name: 'Acme Notes', action: 'grant_revoked' });
      expect(event?.data.grant_id).to.be.a('string');
      // Never the token itself.
      for (const token of [rt1, rt2, at2]) expect(JSON.stringify(event)).to.not.contain(token);

      const browser = new Browserless(servers.issuer);
      const html = await signInToAccount(browser, app.user);
      expect(html).to.contain('A sign-in token for <strong>Acme Notes</strong> was used twice on');
      expect(html).to.contain('we signed that app out to be safe');
      expect(html).to.contain('change your password');
    });

    if (storage === 'redis') {
      it('the account page notice reads well in Chromium (screenshot in test-artifacts/screens/)', async function () {
        if (!replayed) this.skip();
        const { user } = replayed;
        const browser = await launchChromium();
        try {
          const { page } = await openSession(browser);
          await goto(page, `${servers.issuer}/account`);
          await passwordStep(page, user.email, user.password);
          const notice = page.getByRole('region', { name: 'An app was signed out to keep your account safe' });
          await notice.waitFor();
          expect(await notice.innerText()).to.contain('A sign-in token for Acme Notes was used twice on');
          await page.screenshot({ path: await screenPath('account-refresh-reuse'), fullPage: true });
          await page.getByRole('button', { name: 'Got it, hide this notice' }).click();
          await page.getByText('Notice dismissed.').waitFor();
          expect(await notice.count()).to.equal(0);
        } finally {
          await browser.close();
        }
      });
    }

    it('T25 the notice can be dismissed, and comes back for the next reuse only', async function () {
      const notes = await connect(servers);
      const { user } = notes;
      expect((await refresh(servers, notes, notes.refreshToken)).status).to.equal(200);
      refused(await refresh(servers, notes, notes.refreshToken));
      await reuseEvents(servers, user.id);
      const browser = new Browserless(servers.issuer);
      const dismiss = formOf(await signInToAccount(browser, user), '/account/notices/reuse/dismiss');
      const dismissed = await browser.submit(dismiss.action, { csrf: dismiss.csrf });
      expect(dismissed.url.pathname).to.equal('/account');
      const after = await dismissed.response.text();
      expect(after).to.contain('Notice dismissed.');
      expect(after).to.not.contain('was used twice');
      // The dismissal is audited like any account action; a forged one (no CSRF token) is refused.
      expect(
        await servers.deps
          .knex('audit_events')
          .where({ type: 'account.reuse_notice_dismissed', actor_id: user.id })
          .count<{ count: number }[]>('* as count'),
      ).to.deep.equal([{ count: 1 }]);
      const forged = await browser.submit('/account/notices/reuse/dismiss', {});
      expect(forged.response.status).to.equal(403);

      // Another app of the same user has its refresh token replayed: the notice is back, for it alone.
      const registered = await createTestClient(servers.deps, { client_name: 'Acme Calendar' });
      const secret = registered.client_secret ?? '';
      const rp = await client.discovery(new URL(servers.issuer), registered.client_id, secret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const tokens = await userTokens(servers, rp, user, '');
      const calendar: App = { user, clientId: registered.client_id, secret, refreshToken: tokens.refresh_token ?? '' };
      expect((await refresh(servers, calendar, calendar.refreshToken)).status).to.equal(200);
      refused(await refresh(servers, calendar, calendar.refreshToken));
      await reuseEvents(servers, user.id, 2);
      const again = await (await browser.follow('/account')).response.text();
      expect(again).to.contain('A sign-in token for <strong>Acme Calendar</strong> was used twice on');
      expect(again).to.not.contain('<strong>Acme Notes</strong>');
    });

    it('T26 ten concurrent uses of one refresh token: one 200, nine invalid_grant, the whole family revoked', async function () {
      const app = await connect(servers);
      const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(servers, app, app.refreshToken)));
      const winners = answers.filter((a) => a.status === 200);
      expect(winners, answers.map((a) => a.status).join(',')).to.have.length(1);
      for (const loser of answers.filter((a) => a.status !== 200)) refused(loser);

      const { access_token: at, refresh_token: rt } = winners[0]?.body ?? {};
      if (!at || !rt) throw new Error('no winning tokens');
      refused(await refresh(servers, app, rt));
      expect(await active(servers, app, at)).to.equal(false);
      // One security event per revoked grant, however many racing requests saw the reuse.
      expect(await reuseEvents(servers, app.user.id)).to.have.length(1);
      await noMoreReuseEvents(servers, app.user.id, 1);
    });

    describe('grace window (REFRESH_REUSE_GRACE_SECONDS=1, REFRESH_REUSE_GRACE_COUNT=1)', function () {
      it('accepts the old token once more within the window: a fresh pair on the same, unrevoked grant', async function () {
        const app = await connect(grace);
        const first = await refresh(grace, app, app.refreshToken);
        const again = await refresh(grace, app, app.refreshToken);
        expect([first.status, again.status]).to.deep.equal([200, 200]);
        const [rt2, rt3] = [first.body.refresh_token, again.body.refresh_token];
        if (!rt2 || !rt3 || !again.body.access_token) throw new Error('no tokens');
        expect(rt3).to.not.equal(rt2);
        expect((await refresh(grace, app, rt3)).status).to.equal(200);
        expect((await refresh(grace, app, rt2)).status).to.equal(200);
        expect(await active(grace, app, again.body.access_token)).to.equal(true);
        await noMoreReuseEvents(grace, app.user.id, 0);
      });

      it('beyond the count, reuse within the window still revokes the grant and is audited', async function () {
        const app = await connect(grace);
        const first = await refresh(grace, app, app.refreshToken);
        const second = await refresh(grace, app, app.refreshToken);
        expect([first.status, second.status]).to.deep.equal([200, 200]);
        refused(await refresh(grace, app, app.refreshToken));
        for (const answer of [first, second]) refused(await refresh(grace, app, answer.body.refresh_token ?? ''));
        expect(await active(grace, app, second.body.access_token ?? '')).to.equal(false);
        expect(await reuseEvents(grace, app.user.id)).to.have.length(1);
      });

      it('after the window, reuse revokes the grant and is audited', async function () {
        const app = await connect(grace);
        const first = await refresh(grace, app, app.refreshToken);
        // Marked consumed before this answer came back: the window (1 s, the shortest there is)
        // runs on the server's clock from then, and is waited out, no longer.
        const windowEnds = Date.now() + 1000;
        expect(first.status).to.equal(200);
        await waitUntil(windowEnds + 20);
        refused(await refresh(grace, app, app.refreshToken));
        refused(await refresh(grace, app, first.body.refresh_token ?? ''));
        expect(await reuseEvents(grace, app.user.id)).to.have.length(1);
      });

      it('ten concurrent uses within the window: at most 1 + count succeed, then the family is revoked', async function () {
        const app = await connect(grace);
        const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(grace, app, app.refreshToken)));
        const winners = answers.filter((a) => a.status === 200);
        expect(winners.length, answers.map((a) => a.status).join(',')).to.be.within(1, 2);
        for (const loser of answers.filter((a) => a.status !== 200)) refused(loser);
        for (const winner of winners) {
          refused(await refresh(grace, app, winner.body.refresh_token ?? ''));
          expect(await active(grace, app, winner.body.access_token ?? '')).to.equal(false);
        }
        expect(await reuseEvents(grace, app.user.id)).to.have.length(1);
      });
    });
  });
}
