import type { Context } from 'koa';
import type { AccountSessions } from '../../services/account-sessions.ts';
import type { AccountService, UserRow } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import { ACR, acrRank } from '../../services/mfa-policy.ts';
import { parseRegistrationJson } from '../../services/webauthn-ceremony.ts';
import { render } from '../views.ts';
import {
  accountProblem,
  ceremonyBinding,
  csrfSubject,
  done,
  field,
  NOTICES,
  requestContext,
  type AccountPage,
  type NoticeCode,
} from './account-page.ts';

/**
 * The account page's sign-in methods: the password, an authenticator app (TOTP), passkeys and
 * recovery codes. Changing one needs a sign-in that passed the user's second factor if they have
 * one (R1); all but the password (whose current value is asked) and a passkey's name need a
 * recent sign-in too.
 */
export function accountSignInMethodRoutes(
  page: AccountPage,
  { accounts, mfa, sessions }: { accounts: AccountService; mfa: MfaService; sessions: AccountSessions },
): void {
  const { router, csrf, post } = page;

  /** The first second factor brings recovery codes, shown once. */
  async function showCodesIfFirst(ctx: Context, user: UserRow, notice: NoticeCode): Promise<void> {
    if ((await mfa.recovery.remaining(user.id)) > 0) {
      done(ctx, notice);
      return;
    }
    const codes = await mfa.regenerateRecoveryCodes(user.id, requestContext(ctx));
    render(ctx, 'mfa-recovery-codes', {
      codes,
      notice: NOTICES.get(notice),
      continueHref: '/account',
      continueLabel: 'Back to your account',
    });
  }

  // Registration options for "Add a passkey", fetched by the page's script when it is used: a
  // POST with the page's token and the cross-site check (R14). A GET from a link on another site
  // (SameSite=Lax sends the cookie) replaced the challenge of a registration the owner had begun.
  router.post('/passkeys/options', ...page.guard, async function passkeyOptions(ctx) {
    const current = await page.currentSession(ctx);
    if (!current) throw accountProblem(401, 'Your session has ended. Sign in again.');
    const { session, user } = current;
    csrf.verify(csrfSubject(session), field(ctx, 'csrf', 128));
    // No ceremony for a session that could not finish it (R1); the POST checks again.
    if (acrRank(session.acr) < acrRank(ACR.mfa) && (await mfa.enrolled(user.id)).length > 0) {
      throw accountProblem(403, 'Sign in again with your second step to add a passkey.');
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await mfa.webauthn.registrationOptions({
      binding: ceremonyBinding(session),
      userId: user.id,
      email: user.email,
      displayName: user.name ?? user.email,
    });
  });

  // The current password is the re-authentication here, so no recent sign-in is needed; but a
  // session that never passed the user's second factor does not change their password (R1).
  post(
    '/password',
    async (ctx, session, user) => {
      const next = field(ctx, 'new_password', 4096);
      if (next !== field(ctx, 'confirm_password', 4096)) return page.show(ctx, session, user, { error: 'The new passwords do not match.' });
      const result = await accounts.changePassword(user.id, field(ctx, 'current_password', 4096), next, requestContext(ctx));
      if (!result.ok) return page.show(ctx, session, user, { error: result.reason });
      if (field(ctx, 'sign_out_others', 8) !== 'yes') {
        done(ctx, 'password-changed');
        return;
      }
      // ASVS 7.4.3 / T29: a new password ends the other sessions and the apps' tokens.
      const ended = await sessions.signOutEverywhere(user.id, { id: session.id, uid: session.uid });
      await mfa.audit('sessions.revoked_all', user.id, requestContext(ctx), { ...ended, reason: 'password_changed', keptCurrent: true });
      done(ctx, 'password-changed-signed-out');
    },
    { needs: 'factor' },
  );

  /**
   * The setup in progress, if this session began one; otherwise a button that begins it. A GET
   * never creates or replaces a secret: a top-level cross-site link (SameSite=Lax sends the
   * session cookie with it) would otherwise replace the secret the owner is scanning, and their
   * confirmation would then fail (R13). Beginning is a POST with the page's CSRF token.
   */
  router.get('/totp', async function totpSetup(ctx) {
    const auth = await page.signedIn(ctx);
    if (!auth || !(await page.strongAndRecent(ctx, auth.session, auth.user))) return;
    if (await mfa.totp.enabled(auth.user.id)) {
      done(ctx, 'totp-already-on');
      return;
    }
    // The secret belongs to this session's setup: a sign-in elsewhere neither sees nor confirms it (R13).
    const enrollment = await mfa.totp.pending(auth.user.id, auth.user.email, ceremonyBinding(auth.session));
    render(ctx, 'account-totp', {
      totp: enrollment,
      csrf: csrf.issue(csrfSubject(auth.session)),
      action: '/account/totp',
      beginAction: '/account/totp/begin',
    });
  });

  // Begins (or starts over) this session's setup with a new secret, then shows it (POST → 303 → GET).
  post(
    '/totp/begin',
    async (ctx, session, user) => {
      const enrollment = await mfa.totp.begin(user.id, user.email, ceremonyBinding(session));
      if (!enrollment) {
        done(ctx, 'totp-already-on');
        return;
      }
      ctx.status = 303;
      ctx.redirect('/account/totp');
    },
    { needs: 'recent-factor' },
  );

  post(
    '/totp',
    async (ctx, session, user) => {
      const outcome = await mfa.confirmTotp(user.id, field(ctx, 'code', 32), ceremonyBinding(session), requestContext(ctx));
      if (!outcome.ok) {
        const enrollment = await mfa.totp.pending(user.id, user.email, ceremonyBinding(session));
        if (!enrollment) {
          done(ctx, 'totp-start-again');
          return;
        }
        render(ctx, 'account-totp', {
          totp: enrollment,
          csrf: csrf.issue(csrfSubject(session)),
          action: '/account/totp',
          beginAction: '/account/totp/begin',
          error: outcome.locked
            ? 'Too many attempts. Wait a while before trying again.'
            : 'That code did not work. Check the app and try again.',
        });
        return;
      }
      await showCodesIfFirst(ctx, user, 'totp-on');
    },
    { needs: 'recent-factor' },
  );

  post(
    '/totp/remove',
    async (ctx, _session, user) => {
      await mfa.removeTotp(user.id, requestContext(ctx));
      done(ctx, 'totp-removed');
    },
    { needs: 'recent-factor' },
  );

  post(
    '/passkeys',
    async (ctx, session, user) => {
      const response = parseRegistrationJson(field(ctx, 'response', 16_384));
      const name = field(ctx, 'name', 64).trim() || 'Passkey';
      const result = response
        ? await mfa.finishRegistration({ binding: ceremonyBinding(session), userId: user.id, response, name }, requestContext(ctx))
        : undefined;
      if (!result?.ok)
        return page.show(ctx, session, user, {
          error:
            result?.reason === 'duplicate_credential'
              ? 'This passkey is already registered.'
              : 'The passkey could not be added. Try again.',
        });
      await showCodesIfFirst(ctx, user, 'passkey-added');
    },
    { needs: 'recent-factor' },
  );

  post(
    '/passkeys/:id/rename',
    async (ctx, _session, user) => {
      const name = field(ctx, 'name', 64).trim();
      if (!name) throw accountProblem(400, 'A passkey needs a name.');
      await mfa.renameWebAuthn(user.id, (ctx.params as { id: string }).id, name, requestContext(ctx));
      done(ctx, 'passkey-renamed');
    },
    { needs: 'session' },
  );

  post(
    '/passkeys/:id/remove',
    async (ctx, _session, user) => {
      await mfa.removeWebAuthn(user.id, (ctx.params as { id: string }).id, requestContext(ctx));
      done(ctx, 'passkey-removed');
    },
    { needs: 'recent-factor' },
  );

  post(
    '/recovery-codes',
    async (ctx, _session, user) => {
      if ((await mfa.enrolled(user.id)).length === 0) throw accountProblem(400, 'Set up an authenticator app or a passkey first.');
      const codes = await mfa.regenerateRecoveryCodes(user.id, requestContext(ctx));
      render(ctx, 'mfa-recovery-codes', { codes, continueHref: '/account', continueLabel: 'Back to your account' });
    },
    { needs: 'recent-factor' },
  );
}
