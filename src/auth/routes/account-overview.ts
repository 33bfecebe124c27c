import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { RecordAccess } from '../../services/access-history.ts';
import type { AccountSessions } from '../../services/account-sessions.ts';
import type { UserRow } from '../../services/accounts.ts';
import type { MfaService } from '../../services/mfa.ts';
import type { Actor, IncomingOffer, ReceivedShare } from '../../services/records.ts';
import { describeScopes } from '../../shared/scopes.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import { clientName } from '../client-display.ts';
import type { CsrfTokens } from '../koa-csrf.ts';
import type { ReuseNotice } from '../refresh-reuse.ts';
import { render } from '../views.ts';
import { csrfSubject, NOTICES, offerActor, type AccountSession, type NoticeCode } from './account-page.ts';

/** What the page lists beside the user's own sign-in methods (read through services). */
export type AccountOverviewSources = {
  /** Recent refresh token reuse (apps we signed out to be safe), shown as a security notice. */
  reuseNotices: (userId: string) => Promise<ReuseNotice[]>;
  /** Reads of the user's records by others (S11). */
  accessHistory: (userId: string) => Promise<RecordAccess[]>;
  /** Records other users offered to share with the user (R13), and the shares the user accepted. */
  offers: { incoming: (actor: Actor) => Promise<IncomingOffer[]>; received: (actor: Actor) => Promise<ReceivedShare[]> };
};

/**
 * The account page itself: the user's sign-in methods, the apps connected to the account (the
 * provider's grants), security notices, who read the user's shared records, and offers.
 */
export function accountOverview({
  provider,
  mfa,
  sessions,
  csrf,
  sources,
  emailChange,
}: {
  provider: Provider;
  mfa: MfaService;
  sessions: AccountSessions;
  csrf: CsrfTokens;
  sources: AccountOverviewSources;
  /** Whether the address can be changed here (routes/account-email.ts; a mail transport exists). */
  emailChange: boolean;
}) {
  async function grantsOf(accountId: string) {
    const rows = await sessions.grants(accountId);
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
        clientName: clientName(client, grant.clientId),
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
      if (!name) names.set(clientId, (name = provider.Client.find(clientId).then((c) => clientName(c, clientId))));
      return name;
    };
    return Promise.all((await sources.accessHistory(accountId)).map(async (a) => ({ ...a, app: await appName(a.clientId) })));
  }

  return async function showAccount(
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
      sources.reuseNotices(user.id),
      accessesOf(user.id),
      sources.offers.incoming(offerActor(ctx, user)),
      sources.offers.received(offerActor(ctx, user)),
    ]);
    const code = ctx.query.notice;
    const notice = extra.notice ?? (typeof code === 'string' ? NOTICES.get(code as NoticeCode) : undefined);
    render(ctx, 'account', {
      user: { email: user.email, emailVerified: user.email_verified, name: user.name, hasPassword: user.password_hash !== null },
      emailChange,
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
      csrf: csrf.issue(csrfSubject(session)),
      notice,
      error: extra.error,
    });
  };
}
