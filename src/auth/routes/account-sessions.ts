import type Provider from 'oidc-provider';
import type { AccountSessions } from '../../services/account-sessions.ts';
import type { MfaService } from '../../services/mfa.ts';
import { REUSE_NOTICE_DISMISSED_EVENT } from '../refresh-reuse.ts';
import { render } from '../views.ts';
import { accountProblem, done, requestContext, type AccountPage } from './account-page.ts';

/**
 * The account page's sessions and connected apps: removing one app's access (its grant and
 * tokens), signing out everywhere, and dismissing the notice about apps signed out after a
 * refresh token was reused. Each change is audited.
 */
export function accountSessionRoutes(
  { post }: AccountPage,
  { provider, mfa, sessions }: { provider: Provider; mfa: MfaService; sessions: AccountSessions },
): void {
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
      await sessions.endSession(session.id);
      await mfa.audit('sessions.revoked_all', user.id, requestContext(ctx), ended);
      render(ctx, 'error', {
        heading: 'Signed out everywhere',
        message: 'All your sessions and app connections were ended, including this one.',
      });
    },
    { needs: 'recent' },
  );
}
