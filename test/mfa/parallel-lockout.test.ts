import { randomInt } from 'node:crypto';
import { expect } from 'chai';
import { generate } from 'otplib';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser, uniqueEmail } from '../helpers/factories.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { softAuthenticator } from '../helpers/soft-authenticator.ts';

const MFA_MAX_FAILURES = 5;
const PASSWORD_MAX_FAILURES = 5;
const ADDRESS_MAX_FAILURES = 5;
const CONCURRENT = 40;

/** The audit reasons of one kind of failure since `since` (optionally for one account). */
async function failureReasons(servers: TestServers, type: string, since: Date, actorId?: string): Promise<string[]> {
  const rows = await servers.deps
    .knex('audit_events')
    .where({ type, outcome: 'failure', ...(actorId ? { actor_id: actorId } : {}) })
    .andWhere('occurred_at', '>=', since)
    .select<{ data: { reason?: string } | null }[]>('data');
  return rows.map((row) => row.data?.reason ?? '');
}

/** Attempts that were checked (a wrong code, password or answer), not refused before the check as locked. */
const checked = (reasons: string[]): string[] =>
  reasons.filter((r) => r !== 'locked' && r !== 'address_locked' && r !== 'lockout_unavailable');

/** Six digits that are none of the codes valid around now (the window before, now and after). */
async function wrongCodes(secret: string, count: number): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const valid = new Set(await Promise.all([-60, -30, 0, 30, 60].map((d) => generate({ secret, epoch: now + d }))));
  const codes: string[] = [];
  while (codes.length < count) {
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    if (!valid.has(code)) codes.push(code);
  }
  return codes;
}

/**
 * R14 (the second adversarial review): "is it locked?" and "count a failure" were two steps, so
 * concurrent wrong guesses for one account were all checked before the first failure was counted:
 * 40 parallel wrong app codes were 40 guesses against a budget of 5. Every lockout budget is now
 * spent by an atomic reservation before the secret is checked (one Lua script in Redis, one
 * statement on the lockouts table in Postgres); a success clears the account's failures.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R14: concurrent guesses stay within the lockout budgets (${storage})`, function () {
    this.timeout(120_000);
    let servers: TestServers;
    let rp: Awaited<ReturnType<typeof relyingParty>>;

    before(async function () {
      servers = await startTestServers({
        storage,
        env: {
          LOCKOUT_SECOND_FACTOR_MAX_FAILURES: String(MFA_MAX_FAILURES),
          LOCKOUT_PASSWORD_MAX_FAILURES: String(PASSWORD_MAX_FAILURES),
          LOCKOUT_PASSWORD_IP_MAX_FAILURES: '0',
        },
      });
      const registered = await createTestClient(servers.deps);
      rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    });

    after(async function () {
      await servers.stop();
    });

    /** A user with an authenticator app (and recovery codes), signed in with the password up to the second-factor page. */
    async function atSecondFactor(method: 'totp' | 'recovery') {
      const user = await createTestUser(servers.deps);
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
      if (!enrollment) throw new Error('no enrollment');
      expect(await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test')).to.equal(true);
      const recoveryCodes = await servers.deps.mfa.regenerateRecoveryCodes(user.id, {});
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow((await rp.authorizationUrl()).url);
      const login = formOf(await first.response.text(), '/login');
      const { url } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      const uid = url.pathname.split('/')[2] ?? '';
      const page = await (await browser.request(`/interaction/${uid}?method=${method}`)).text();
      const form = formOf(page, `/mfa/${method}`);
      return { user, secret: enrollment.secret, recoveryCodes, browser, form };
    }

    it('R14 40 concurrent wrong app codes in one sign-in: exactly the second-factor budget is checked, the rest are refused unchecked, and then the right code too', async function () {
      const { user, secret, browser, form } = await atSecondFactor('totp');
      const since = new Date();
      const replies = await Promise.all(
        (await wrongCodes(secret, CONCURRENT)).map(async (code) => {
          const { response } = await browser.submit(form.action, { csrf: form.csrf, code });
          return { status: response.status, html: await response.text() };
        }),
      );
      expect(replies.every((r) => r.status === 200 && /did not work|Too many attempts/.test(r.html))).to.equal(true);
      const reasons = await failureReasons(servers, 'mfa.totp.used', since, user.id);
      expect(reasons).to.have.length(CONCURRENT);
      expect(checked(reasons), 'codes actually checked').to.have.length(MFA_MAX_FAILURES);
      const right = await browser.submit(form.action, { csrf: form.csrf, code: await generate({ secret }) });
      expect(await right.response.text()).to.include('Too many attempts');
    });

    it('R14 40 concurrent wrong recovery codes in one sign-in: exactly the second-factor budget is checked', async function () {
      const { user, recoveryCodes, browser, form } = await atSecondFactor('recovery');
      const since = new Date();
      const letters = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
      const wrong = Array.from({ length: CONCURRENT }, () =>
        Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => letters[randomInt(letters.length)]).join('')).join('-'),
      ).filter((code) => !recoveryCodes.includes(code));
      await Promise.all(wrong.map((code) => browser.submit(form.action, { csrf: form.csrf, code })));
      const reasons = await failureReasons(servers, 'mfa.recovery_code.used', since, user.id);
      expect(reasons).to.have.length(wrong.length);
      expect(checked(reasons), 'recovery codes actually checked').to.have.length(MFA_MAX_FAILURES);
      const right = await browser.submit(form.action, { csrf: form.csrf, code: recoveryCodes[0] ?? '' });
      expect(await right.response.text()).to.include('Too many attempts');
    });

    it('R14 40 concurrent wrong codes confirming a new authenticator app (sign-in enrolment and account page): exactly the budget is checked', async function () {
      const user = await createTestUser(servers.deps);
      const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'flow-1');
      if (!enrollment) throw new Error('no enrollment');
      const since = new Date();
      const outcomes = await Promise.all(
        (await wrongCodes(enrollment.secret, CONCURRENT)).map((code) =>
          servers.deps.mfa.confirmTotp(user.id, code, 'flow-1', { ip: '127.0.0.1' }),
        ),
      );
      expect(outcomes.every((o) => !o.ok)).to.equal(true);
      expect(checked(await failureReasons(servers, 'mfa.totp.used', since, user.id)), 'codes actually checked').to.have.length(
        MFA_MAX_FAILURES,
      );
      const right = await servers.deps.mfa.confirmTotp(user.id, await generate({ secret: enrollment.secret }), 'flow-1', {
        ip: '127.0.0.1',
      });
      expect(right).to.deep.equal({ ok: false, locked: true });
    });

    it("R14 40 concurrent wrong passwords for one account: exactly the account's budget reaches argon2", async function () {
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = await browser.follow((await rp.authorizationUrl()).url);
      const login = formOf(await first.response.text(), '/login');
      const since = new Date();
      await Promise.all(
        Array.from({ length: CONCURRENT }, (_, i) =>
          browser.submit(login.action, { csrf: login.csrf, email: user.email, password: `wrong-${String(i)}` }),
        ),
      );
      const reasons = await failureReasons(servers, 'login.password', since, user.id);
      expect(reasons).to.have.length(CONCURRENT);
      expect(checked(reasons), 'passwords actually checked').to.have.length(PASSWORD_MAX_FAILURES);
      expect(await servers.deps.accounts.authenticate(user.email, user.password)).to.equal(undefined);
    });

    it("R14 40 concurrent failed sign-ins from one address (wrong passwords for many emails, made-up passkey answers): exactly the address's budget is checked", async function () {
      const limited = await startTestServers({
        storage,
        env: { TRUST_PROXY: 'true', LOCKOUT_PASSWORD_IP_MAX_FAILURES: String(ADDRESS_MAX_FAILURES), LOCKOUT_PASSWORD_MAX_FAILURES: '100' },
      });
      try {
        const registered = await createTestClient(limited.deps);
        const limitedRp = await relyingParty(limited.issuer, registered.client_id, registered.client_secret);
        const open = async () => {
          const browser = new Browserless(limited.issuer);
          const { response, url } = await browser.follow((await limitedRp.authorizationUrl()).url);
          const html = await response.text();
          return { browser, uid: url.pathname.split('/')[2] ?? '', login: formOf(html, '/login'), passkey: formOf(html, '/passkey') };
        };
        const post = (page: Awaited<ReturnType<typeof open>>, action: string, from: string, fields: Record<string, string>) =>
          rawRequest(limited.issuer, {
            method: 'POST',
            target: action,
            headers: {
              'Content-Type': 'application/x-www-form-urlencoded',
              Origin: limited.issuer,
              'X-Forwarded-For': from,
              Cookie: page.browser.jar.header(new URL(action, limited.issuer)),
            },
            body: new URLSearchParams(fields).toString(),
          });

        const passwords = await open();
        let since = new Date();
        await Promise.all(
          Array.from({ length: CONCURRENT }, () =>
            post(passwords, passwords.login.action, '198.51.100.7', {
              csrf: passwords.login.csrf,
              email: uniqueEmail('spray'),
              password: 'wrong-password',
            }),
          ),
        );
        expect(checked(await failureReasons(limited, 'login.password', since)), 'passwords actually checked').to.have.length(
          ADDRESS_MAX_FAILURES,
        );

        const passkeys = await open();
        const options = (await (
          await passkeys.browser.request(`/interaction/${passkeys.uid}/passkey/options`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: limited.issuer },
            body: new URLSearchParams({ csrf: passkeys.passkey.csrf }).toString(),
          })
        ).json()) as PublicKeyCredentialRequestOptionsJSON;
        // Answers from a key nobody registered: each fails its check (unknown credential).
        const made: AuthenticationResponseJSON[] = Array.from({ length: CONCURRENT }, () =>
          softAuthenticator({ origin: limited.issuer }).assert(options),
        );
        since = new Date();
        await Promise.all(
          made.map((answer) =>
            post(passkeys, passkeys.passkey.action, '198.51.100.8', { csrf: passkeys.passkey.csrf, response: JSON.stringify(answer) }),
          ),
        );
        expect(checked(await failureReasons(limited, 'login.passkey', since)), 'passkey answers actually checked').to.have.length(
          ADDRESS_MAX_FAILURES,
        );
      } finally {
        await limited.stop();
      }
    });
  });
}
