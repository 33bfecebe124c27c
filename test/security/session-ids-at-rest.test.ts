import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { openBackup } from '../../src/shared/backup-file.ts';
import { createBackup } from '../../src/services/backup.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';
import { startMfaSetups } from '../helpers/passkeys.ts';

const SESSION_COOKIE = 'portcullis.session';

/** Koa's signed cookies (keygrip), as in the S10 test: the attacker is granted the cookie keys, so only the stored value decides. */
const cookieSignature = (key: string, name: string, value: string): string =>
  createHmac('sha1', key).update(`${name}=${value}`).digest('base64').replaceAll('/', '_').replaceAll('+', '-').replaceAll('=', '');

/**
 * Review of issue 20 (S12, finding 1): S10 keys every session by a keyed hash, but the account
 * page binds its MFA ceremonies to the session cookie's value itself: `account:<session jti>` is
 * written in the clear to webauthn_challenges.binding (POST /account/passkeys/options) and to
 * mfa_totp.pending_binding (POST /account/totp/begin), which stays there until the setup is
 * confirmed and is in every backup (mfa_totp is durable data). A dump of Postgres, or a stolen
 * backup, then holds a live session id that /account accepts — what S10 set out to rule out.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S12 session ids at rest outside the oidc state store (${storage})`, function () {
    this.timeout(120_000);
    let servers: TestServers;

    before(async function () {
      servers = await startTestServers({ storage });
    });

    after(async function () {
      await servers.stop();
    });

    it('S12 a dump of webauthn_challenges and mfa_totp, or a backup, holds no session id that /account accepts', async function () {
      const { issuer, deps } = servers;
      const user = await createTestUser(deps);
      const browser = new Browserless(issuer);
      const accountHtml = await signInToAccount(browser, user);
      const sessionId = [...browser.jar.cookies.values()].find((c) => c.name === SESSION_COOKIE)?.value ?? '';
      expect(sessionId).to.have.length.greaterThan(10);

      // The owner opens "Add a passkey" and "Set up an authenticator app", and leaves both unfinished.
      await startMfaSetups(browser, accountHtml);

      // The attacker's copy: the two MFA tables of a database dump, and a backup document.
      const dump: string[] = [];
      for (const table of ['webauthn_challenges', 'mfa_totp']) {
        const { rows } = await deps.knex.raw<{ rows: { row: unknown }[] }>('SELECT to_jsonb(t) AS row FROM ?? AS t', [table]);
        dump.push(...rows.map((r) => JSON.stringify(r.row)));
      }
      const backupKey = Buffer.alloc(32, 7);
      const backup = JSON.stringify(openBackup((await createBackup(deps.knex, backupKey)).sealed, backupKey));

      const candidates = new Set<string>();
      for (const text of [...dump, backup])
        // Every id-like string of the copy, with or without the `account:` prefix, is tried as a cookie.
        for (const match of text.matchAll(/"(?:account:)?([A-Za-z0-9_-]{16,})"/g)) candidates.add(match[1] ?? '');

      const cookieKey = (servers.config.cookieKeys ?? (await deps.keys.cookieKeys()))[0] ?? '';
      const accepted: string[] = [];
      for (const value of candidates) {
        const response = await fetch(`${issuer}/account`, {
          headers: { Cookie: `${SESSION_COOKIE}=${value}; ${SESSION_COOKIE}.sig=${cookieSignature(cookieKey, SESSION_COOKIE, value)}` },
          redirect: 'manual',
        });
        const html = await response.text();
        if (response.status === 200 && html.includes(user.email))
          accepted.push(`session cookie on /account: ${value}${backup.includes(value) ? ' (also in the backup)' : ''}`);
      }
      expect({
        sessionIdInDump: dump.some((t) => t.includes(sessionId)),
        sessionIdInBackup: backup.includes(sessionId),
        accepted,
      }).to.deep.equal({
        sessionIdInDump: false,
        sessionIdInBackup: false,
        accepted: [],
      });
    });
  });
}
