import { randomBytes, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { RecordAccess } from '../../services/access-history.ts';
import type { AccountSessions } from '../../services/account-sessions.ts';
import type { AccountService, RequestContext } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import type { Actor, IncomingOffer, ReceivedShare } from '../../services/records.ts';
import { ACR, acrRank } from '../../services/mfa-policy.ts';
import { parseRegistrationJson } from '../../services/webauthn.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import { canonicalUuid } from '../../shared/uuid.ts';
import type { AccountIndexStore } from '../../store/account-index.ts';
import type { Adapter } from '../../store/oidc-adapter.ts';
import type { UserRow } from '../../store/users.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import { formBody } from '../koa-form-body.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { REUSE_NOTICE_DISMISSED_EVENT, type ReuseNotice } from '../refresh-reuse.ts';
import { signInCounts } from '../../services/session-validity.ts';
import { describeScopes } from '../../shared/scopes.ts';
import { render } from '../views.ts';

const STATE_COOKIE = 'portcullis.account-state';

/**
 * The confirmations the account page shows after a change (303 to /account?notice=<code>). Only
 * these codes are shown, each as its own text: a link with ?notice=<any text> shows nothing, so
 * nobody can make our page say their words (R8).
 */
const NOTICES = new Map([
  ['password-changed', 'Your password was changed.'],
  ['password-changed-signed-out', 'Your password was changed. Other devices and apps were signed out.'],
  ['totp-already-on', 'An authenticator app is already set up.'],
  ['totp-start-again', 'Start the setup again.'],
  ['totp-on', 'Authenticator app turned on.'],
  ['totp-removed', 'Authenticator app removed.'],
  ['passkey-added', 'Passkey added.'],
  ['passkey-renamed', 'Passkey renamed.'],
  ['passkey-removed', 'Passkey removed.'],
  ['grant-revoked', 'Access removed.'],
  ['notice-dismissed', 'Notice dismissed.'],
  ['offer-accepted', 'The record was added to your records.'],
  ['offer-declined', 'Offer declined. The person who offered it is not told.'],
  ['share-left', 'The record was removed from your records.'],
] as const);

type NoticeCode = typeof NOTICES extends Map<infer K, string> ? K : never;

type AccountSession = { id: string; uid: string; accountId: string; loginTs: number; amr: string[]; acr: string };

const accountProblem = (status: number, detail: string): Problem =>
  new Problem({ status, type: problemType('account'), title: 'This change cannot be made', detail });

function field(ctx: Context, name: string, max: number): string {
  // eslint-disable-next-line security/detect-object-injection -- name is one of our literal form field names; only the body is input
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string' || value.length > max) throw accountProblem(400, `The field "${name}" is not valid.`);
  return value;
}

/**
 * The account page (ISSUER/account). It signs in through the provider as the first-party
 * `portcullis-account` client and then reads the provider's own session cookie, so there is
 * one session, one logout and one set of login rules. Sensitive changes need a sign-in within
 * recentAuthSeconds (RECENT_AUTH_SECONDS); otherwise the page sends the user through prompt=login again.
 */
export function accountRoutes(deps: {
  provider: Provider;
  accounts: AccountService;
  mfa: MfaService;
  index: AccountIndexStore;
  sessions: AccountSessions;
  oidcAdapter: (model: string) => Adapter;
  csrf: CsrfTokens;
  issuer: string;
  /** How recent a sign-in must be for password and sign-in method changes (RECENT_AUTH_SECONDS). */
  recentAuthSeconds: number;
  /** The login bucket's rate limit, spent by every POST of the page (R14): passwords and factors are checked here too. */
  loginLimit: Middleware;
  /** The provider's ttl.Session (sessionTtl): idle time, capped by the absolute limit. */
  sessionLifetime: (session: { loginTs?: number | undefined }) => number;
  /** Recent refresh token reuse (apps we signed out to be safe), shown as a security notice. */
  reuseNotices: (userId: string) => Promise<ReuseNotice[]>;
  /** Reads of the user's records by others (S11). */
  accessHistory: (userId: string) => Promise<RecordAccess[]>;
  /** Records other users offered to share with the user (R13): listed, accepted, declined. */
  offers: {
    incoming: (actor: Actor) => Promise<IncomingOffer[]>;
    accept: (actor: Actor, recordId: string) => Promise<void>;
    decline: (actor: Actor, recordId: string) => Promise<void>;
    /** Shares the user accepted, and leaving one. */
    received: (actor: Actor) => Promise<ReceivedShare[]>;
    leave: (actor: Actor, recordId: string) => Promise<void>;
  };
}): Router {
  const {
    provider,
    accounts,
    mfa,
    index,
    sessions,
    oidcAdapter,
    csrf,
    issuer,
    reuseNotices,
    accessHistory,
    offers,
    recentAuthSeconds,
    sessionLifetime,
    loginLimit,
  } = deps;
  const issuerOrigin = new URL(issuer).origin;
  const router = new Router({ prefix: '/account' });
  const body = formBody();
  const secureCookies = issuer.startsWith('https://');

  /**
   * The browser's provider session and its active account, when its sign-in still counts: a
   * session from before the account's last "sign out everywhere" (or password change, MFA
   * reset, disabling) is no session here either, even if a request in flight wrote it back (R8,
   * R13); it is neither used nor saved again.
   */
  async function currentSession(ctx: Context): Promise<{ session: AccountSession; user: UserRow } | undefined> {
    const session = await provider.Session.get(ctx);
    if (!session.accountId || !session.loginTs) return undefined;
    const user = await accounts.findActive(session.accountId);
    if (!user || !signInCounts(user, { loginTs: session.loginTs, sessionUid: session.uid })) return undefined;
    // Using the account page is activity too (ASVS 7.3.1): save the session with a fresh
    // lifetime and move the cookie's Expires with it, as the provider's own routes do.
    await session.save(sessionLifetime(session));
    if (session.exp) {
      ctx.cookies.set(provider.cookieName('session'), session.jti, {
        httpOnly: true,
        sameSite: 'lax',
        secure: secureCookies,
        signed: true,
        expires: new Date(session.exp * 1000),
      });
    }
    return {
      session: {
        id: session.jti,
        uid: session.uid,
        accountId: session.accountId,
        loginTs: session.loginTs,
        amr: session.amr ?? [],
        acr: session.acr ?? '',
      },
      user,
    };
  }

  const startLogin = (ctx: Context, reauth: boolean): void => {
    const state = randomBytes(24).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, state, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookies,
      signed: true,
      path: '/account',
      maxAge: 600_000,
    });
    const url = new URL('/auth', issuer);
    url.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'none',
      scope: 'openid',
      redirect_uri: new URL('/account/callback', issuer).href,
      state,
      ...(reauth ? { prompt: 'login' } : {}),
    }).toString();
    ctx.redirect(url.href);
  };

  /** Signed in, with the account loaded; otherwise off to sign in. */
  async function signedIn(ctx: Context): Promise<{ session: AccountSession; user: UserRow } | undefined> {
    const current = await currentSession(ctx);
    if (!current) {
      if (ctx.method === 'GET') startLogin(ctx, false);
      else throw accountProblem(401, 'Your session has ended. Sign in again.');
      return undefined;
    }
    if (ctx.method === 'POST') csrf.verify(`account:${current.session.id}`, field(ctx, 'csrf', 128));
    return current;
  }

  /** Sensitive changes: a recent sign-in, else a fresh one (ASVS 7.5.1). */
  function recent(ctx: Context, session: AccountSession): boolean {
    if (Math.floor(Date.now() / 1000) - session.loginTs <= recentAuthSeconds) return true;
    ctx.status = 303;
    startLogin(ctx, true);
    return false;
  }

  /**
   * Whether the session's sign-in passed one of the user's second factors, or the user has none
   * (R1). Otherwise off to sign in again (prompt=login), and that sign-in asks for a factor: a
   * session from a password-only sign-in — made before the first factor was set up, or a stolen
   * cookie — changes no credential of an account that has a second factor.
   */
  async function factorPassed(ctx: Context, session: AccountSession, user: UserRow): Promise<boolean> {
    if (acrRank(session.acr) >= acrRank(ACR.mfa)) return true;
    if ((await mfa.enrolled(user.id)).length === 0) return true;
    ctx.status = 303;
    startLogin(ctx, true);
    return false;
  }

  /** Sign-in method changes (factors, recovery codes): recent, and with a factor if the user has one. */
  async function strongAndRecent(ctx: Context, session: AccountSession, user: UserRow): Promise<boolean> {
    return recent(ctx, session) && (await factorPassed(ctx, session, user));
  }

  /**
   * The flow a passkey ceremony or TOTP setup on this page belongs to: the session. Its id is the
   * session cookie's value, so the MFA store keeps only a keyed digest of this (S12).
   */
  const ceremonyBinding = (session: AccountSession): string => `account:${session.id}`;

  const requestContext = (ctx: Context): RequestContext => ({ ip: ctx.ip, userAgent: ctx.get('User-Agent'), clientId: ACCOUNT_CLIENT_ID });
  const offerActor = (ctx: Context, user: UserRow): Actor => ({ userId: user.id, clientId: ACCOUNT_CLIENT_ID, ip: ctx.ip });
  /** A record id from the path; anything else is an offer or share that does not exist. */
  const offeredRecordId = (ctx: Context): string => {
    // Lowercased as in the API (src/shared/uuid.ts, R15).
    const id = canonicalUuid((ctx.params as { recordId: string }).recordId);
    if (id === undefined) throw accountProblem(404, 'No offer or share of this record is waiting for you.');
    return id;
  };
  const done = (ctx: Context, notice: NoticeCode): void => {
    ctx.status = 303;
    ctx.redirect(`/account?notice=${notice}`);
  };

  async function grantsOf(accountId: string) {
    const rows = await index.list(accountId, 'Grant');
    const grants = [];
    for (const row of rows) {
      if (row.client_id === ACCOUNT_CLIENT_ID) continue;
      const grant = await provider.Grant.find(row.id);
      if (!grant || grant.accountId !== accountId) continue;
      const client = grant.clientId ? await provider.Client.find(grant.clientId) : undefined;
      const scopes = [grant.getOIDCScope(), ...Object.keys(grant.resources ?? {}).map((r) => grant.getResourceScope(r))]
        .join(' ')
        .split(' ')
        .filter(Boolean);
      grants.push({
        id: row.id,
        clientName: client?.clientName ?? grant.clientId,
        scopes: describeScopes(scopes),
        lastUsed: row.last_used_at,
        created: row.created_at,
      });
    }
    return grants;
  }

  /** The access history with each app's name (the client id when the app is gone). */
  async function accessesOf(accountId: string) {
    const names = new Map<string, Promise<string>>();
    const appName = (clientId: string | null): Promise<string> => {
      if (!clientId) return Promise.resolve('an unnamed app');
      let name = names.get(clientId);
      if (!name) names.set(clientId, (name = provider.Client.find(clientId).then((c) => c?.clientName ?? clientId)));
      return name;
    };
    return Promise.all((await accessHistory(accountId)).map(async (a) => ({ ...a, app: await appName(a.clientId) })));
  }

  async function showAccount(
    ctx: Context,
    session: AccountSession,
    user: UserRow,
    extra: { error?: string; notice?: string } = {},
  ): Promise<void> {
    const [totp, passkeys, codesLeft, grants, reuse, accesses, incoming, received] = await Promise.all([
      mfa.totp.status(user.id),
      mfa.webauthn.list(user.id),
      mfa.recovery.remaining(user.id),
      grantsOf(user.id),
      reuseNotices(user.id),
      accessesOf(user.id),
      offers.incoming(offerActor(ctx, user)),
      offers.received(offerActor(ctx, user)),
    ]);
    const code = ctx.query.notice;
    const notice = extra.notice ?? (typeof code === 'string' ? NOTICES.get(code as NoticeCode) : undefined);
    render(ctx, 'account', {
      user: { email: user.email, name: user.name, hasPassword: user.password_hash !== null },
      signedInAt: new Date(session.loginTs * 1000),
      totp,
      passkeys: passkeys.map((p) => ({
        id: p.id,
        name: p.name,
        created: p.created_at,
        lastUsed: p.last_used_at,
        synced: p.device_type === 'multiDevice',
        flagged: p.flagged_at !== null,
      })),
      codesLeft,
      hasFactor: totp.enabled || passkeys.length > 0,
      grants,
      reuse,
      accesses,
      offers: incoming,
      received,
      csrf: csrf.issue(`account:${session.id}`),
      notice,
      error: extra.error,
    });
  }

  router.get('/', async function showAccountPage(ctx) {
    const auth = await signedIn(ctx);
    if (auth) await showAccount(ctx, auth.session, auth.user);
  });

  // Registration options for "Add a passkey", fetched by the page's script when it is used: a
  // POST with the page's token and the cross-site check (R14). A GET from a link on another site
  // (SameSite=Lax sends the cookie) replaced the challenge of a registration the owner had begun.
  router.post('/passkeys/options', loginLimit, rejectCrossSite(issuerOrigin), body, async function passkeyOptions(ctx) {
    const current = await currentSession(ctx);
    if (!current) throw accountProblem(401, 'Your session has ended. Sign in again.');
    const { session, user } = current;
    csrf.verify(`account:${session.id}`, field(ctx, 'csrf', 128));
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

  router.get('/login', function accountLogin(ctx) {
    // A re-authentication (prompt=login) starts only from our own pages (R14): a link or form on
    // another site would send a signed-in user through the login page again and replace the state
    // of an account sign-in in progress. Anything else (cross-site, a typed URL, a browser without
    // Fetch Metadata) shows the account page as it is, which asks for a sign-in only without one.
    if (ctx.query.reauth === '1' && ctx.get('Sec-Fetch-Site') !== 'same-origin') {
      ctx.redirect('/account');
      return;
    }
    startLogin(ctx, ctx.query.reauth === '1');
  });

  router.get('/callback', function accountCallback(ctx) {
    const expected = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: '/account' });
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const matches =
      expected !== undefined && expected.length === state.length && timingSafeEqual(Buffer.from(expected), Buffer.from(state));
    if (!matches) throw accountProblem(400, 'This sign-in response does not belong to this browser.');
    if (typeof ctx.query.error === 'string') {
      render(ctx, 'error', { heading: 'Not signed in', message: 'Signing in to your account was cancelled.' }, 400);
      return;
    }
    ctx.redirect('/account');
  });

  /**
   * What a change needs beyond the session: nothing, a recent sign-in, a sign-in that passed a
   * second factor if the user has one, or (sign-in methods) both.
   */
  type Needs = 'session' | 'recent' | 'factor' | 'recent-factor';
  const post = (
    path: string,
    handler: (ctx: Context, session: AccountSession, user: UserRow) => Promise<void>,
    options: { needs: Needs },
  ) => {
    router.post(path, loginLimit, rejectCrossSite(issuerOrigin), body, async (ctx) => {
      const auth = await signedIn(ctx);
      if (!auth) return;
      if (options.needs === 'recent' && !recent(ctx, auth.session)) return;
      if (options.needs === 'factor' && !(await factorPassed(ctx, auth.session, auth.user))) return;
      if (options.needs === 'recent-factor' && !(await strongAndRecent(ctx, auth.session, auth.user))) return;
      await handler(ctx, auth.session, auth.user);
    });
  };

  // The current password is the re-authentication here, so no recent sign-in is needed; but a
  // session that never passed the user's second factor does not change their password (R1).
  post(
    '/password',
    async (ctx, session, user) => {
      const next = field(ctx, 'new_password', 4096);
      if (next !== field(ctx, 'confirm_password', 4096))
        return showAccount(ctx, session, user, { error: 'The new passwords do not match.' });
      const result = await accounts.changePassword(user.id, field(ctx, 'current_password', 4096), next, requestContext(ctx));
      if (!result.ok) return showAccount(ctx, session, user, { error: result.reason });
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
    const auth = await signedIn(ctx);
    if (!auth || !(await strongAndRecent(ctx, auth.session, auth.user))) return;
    if (await mfa.totp.enabled(auth.user.id)) {
      done(ctx, 'totp-already-on');
      return;
    }
    // The secret belongs to this session's setup: a sign-in elsewhere neither sees nor confirms it (R13).
    const enrollment = await mfa.totp.pending(auth.user.id, auth.user.email, ceremonyBinding(auth.session));
    render(ctx, 'account-totp', {
      totp: enrollment,
      csrf: csrf.issue(`account:${auth.session.id}`),
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
          csrf: csrf.issue(`account:${session.id}`),
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
        return showAccount(ctx, session, user, {
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

  post(
    '/grants/:id/revoke',
    async (ctx, _session, user) => {
      const grantId = (ctx.params as { id: string }).id;
      const grant = await provider.Grant.find(grantId);
      if (grant?.accountId !== user.id) throw accountProblem(404, 'This connection does not exist.');
      await sessions.revokeGrant(grantId);
      await mfa.audit('grant.revoked', user.id, requestContext(ctx), { grantId, clientId: grant.clientId });
      done(ctx, 'grant-revoked');
    },
    { needs: 'session' },
  );

  // Offers of records (R13): accepting adds the record to the user's records, read only.
  post(
    '/offers/:recordId/accept',
    async (ctx, _session, user) => {
      await offers.accept(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'offer-accepted');
    },
    { needs: 'session' },
  );

  post(
    '/offers/:recordId/decline',
    async (ctx, _session, user) => {
      await offers.decline(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'offer-declined');
    },
    { needs: 'session' },
  );

  // Leaving a share the user accepted: its owner no longer sees the user's listings.
  post(
    '/shared-with-me/:recordId/leave',
    async (ctx, _session, user) => {
      await offers.leave(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'share-left');
    },
    { needs: 'session' },
  );

  // "I've seen it": the reuse notice stays away until the next reuse.
  post(
    '/notices/reuse/dismiss',
    async (ctx, _session, user) => {
      await mfa.audit(REUSE_NOTICE_DISMISSED_EVENT, user.id, requestContext(ctx));
      done(ctx, 'notice-dismissed');
    },
    { needs: 'session' },
  );

  post(
    '/sign-out-everywhere',
    async (ctx, session, user) => {
      const ended = await sessions.signOutEverywhere(user.id);
      await oidcAdapter('Session').destroy(session.id);
      await mfa.audit('sessions.revoked_all', user.id, requestContext(ctx), ended);
      render(ctx, 'error', {
        heading: 'Signed out everywhere',
        message: 'All your sessions and app connections were ended, including this one.',
      });
    },
    { needs: 'recent' },
  );

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

  return router;
}
