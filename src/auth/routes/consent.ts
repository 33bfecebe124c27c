import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import { describeScopes } from '../../shared/scopes.ts';
import { ACCOUNT_CLIENT_ID } from '../account-client.ts';
import { grantConsented, splitOpenIdScopes } from '../api-scope-grants.ts';
import { CONFIRM_EVERY_TIME_DETAIL } from '../interaction-policy.ts';
import { render } from '../views.ts';
import { interactionProblem, type InteractionDetails, type InteractionKit } from './interaction-details.ts';

/**
 * The consent prompt: the page that shows what an application asks for (GET /interaction/:uid
 * at the consent prompt, through show()) and its Allow (POST /interaction/:uid/confirm), which
 * records the grant. Both need the browser's session to still count (R13).
 */
export function consentRoutes(
  { router, csrf, guard, load, liveSession, steps }: InteractionKit,
  { provider, accounts }: { provider: Provider; accounts: AccountService },
) {
  async function grantAndFinish(ctx: Context, details: InteractionDetails, accountId: string): Promise<void> {
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const grant =
      (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
      new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    // API scopes are granted for the API resource only, never as OpenID scopes (R13).
    grantConsented(grant, {
      openIdScopes: missing.missingOIDCScope ?? [],
      resourceScopes: Object.entries(missing.missingResourceScopes ?? {}),
    });
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  router.post('/:uid/confirm', ...guard, async function submitConsent(ctx) {
    const details = await load(ctx, 'consent');
    const accountId = (await liveSession(details))?.accountId;
    if (!accountId) throw interactionProblem('Your session has ended. Start again.');
    await grantAndFinish(ctx, details, accountId);
  });

  return {
    /** The consent page, or (the account page's own client) the grant at once. */
    async show(ctx: Context, details: InteractionDetails): Promise<void> {
      const accountId = (await liveSession(details))?.accountId;
      if (!accountId) throw interactionProblem('Your session has ended. Start again.');
      if (details.params.client_id === ACCOUNT_CLIENT_ID) {
        // The account page is first party: signing in to it needs no consent screen.
        return grantAndFinish(ctx, details, accountId);
      }
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingResourceScopes?: Record<string, string[]>;
        [CONFIRM_EVERY_TIME_DETAIL]?: string[];
      };
      // What the grant lacks, plus what is confirmed every time although the grant holds it (account:erase).
      const scopes = [
        // API scopes among the OpenID ones are never granted as such (R13): shown only for the API resource.
        ...splitOpenIdScopes(missing.missingOIDCScope ?? []).granted,
        ...Object.values(missing.missingResourceScopes ?? {}).flat(),
        // eslint-disable-next-line security/detect-object-injection -- a constant key (interaction-policy.ts)
        ...(missing[CONFIRM_EVERY_TIME_DETAIL] ?? []),
      ];
      const account = await accounts.findActive(accountId);
      render(ctx, 'consent', {
        clientName: (await steps.clientOf(details)).name,
        email: account?.email ?? '',
        scopes: describeScopes(scopes.filter((s) => s !== 'openid' || scopes.length === 1)),
        csrf: csrf.issue(details.uid),
        action: `/interaction/${details.uid}/confirm`,
        abortAction: `/interaction/${details.uid}/abort`,
      });
    },
  };
}
