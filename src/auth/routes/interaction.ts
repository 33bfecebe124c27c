import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import { Problem, problemType } from '../../shared/problem.ts';
import { rejectCrossSite, type CsrfTokens } from '../koa-csrf.ts';
import { describeScope } from '../scopes.ts';
import { render } from '../views.ts';
import { ACR } from '../provider-config.ts';

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

const GENERIC_LOGIN_ERROR = 'The email or password is not right.';

const interactionProblem = (detail: string): Problem =>
  new Problem({ status: 400, type: problemType('interaction'), title: 'This sign-in request cannot continue', detail });

/** A single short string form field; anything else (arrays, huge values) is refused. */
function field(ctx: Context, name: string, max: number): string {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string' || value.length > max) throw interactionProblem(`The field "${name}" is not valid.`);
  return value;
}

/**
 * Login and consent pages (panva's interaction pattern). Every step reloads the interaction
 * from its cookie, checks that the URL's uid is that interaction and that the step is the one
 * the provider asks for, so steps cannot be skipped or replayed (ASVS 2.3.1, T31, T32).
 */
export function interactionRoutes({ provider, accounts, csrf, issuerOrigin }: {
  provider: Provider;
  accounts: AccountService;
  csrf: CsrfTokens;
  issuerOrigin: string;
}): Router {
  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });

  async function load(ctx: Context, expectedPrompt?: string): Promise<InteractionDetails> {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== (ctx.params as { uid?: string }).uid) throw interactionProblem('This page belongs to another sign-in request.');
    if (expectedPrompt && details.prompt.name !== expectedPrompt) throw interactionProblem('This step is not expected now.');
    return details;
  }

  async function clientName(details: InteractionDetails): Promise<string> {
    const client = await provider.Client.find(String(details.params.client_id));
    return client?.clientName ?? String(details.params.client_id);
  }

  async function showLogin(ctx: Context, details: InteractionDetails, extra: { email?: string; error?: string } = {}): Promise<void> {
    render(ctx, 'login', {
      clientName: await clientName(details),
      email: extra.email ?? (typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 320) : ''),
      error: extra.error,
      csrf: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/login`,
      abortAction: `/interaction/${details.uid}/abort`,
    });
  }

  router.get('/:uid', async function showInteraction(ctx) {
    const details = await load(ctx);
    if (details.prompt.name === 'login') return showLogin(ctx, details);
    if (details.prompt.name === 'consent') {
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      const scopes = [...(missing.missingOIDCScope ?? []), ...Object.values(missing.missingResourceScopes ?? {}).flat()];
      const account = details.session?.accountId ? await accounts.findActive(details.session.accountId) : undefined;
      render(ctx, 'consent', {
        clientName: await clientName(details),
        email: account?.email ?? '',
        scopes: [...new Set(scopes)].filter((s) => s !== 'openid' || scopes.length === 1).map(describeScope),
        csrf: csrf.issue(details.uid),
        action: `/interaction/${details.uid}/confirm`,
        abortAction: `/interaction/${details.uid}/abort`,
      });
      return;
    }
    throw interactionProblem('This sign-in step is not supported.');
  });

  router.post('/:uid/login', rejectCrossSite(issuerOrigin), body, async function submitLogin(ctx) {
    const details = await load(ctx, 'login');
    csrf.verify(details.uid, field(ctx, 'csrf', 128));
    const email = field(ctx, 'email', 320).trim();
    // The password is used exactly as typed: no trimming (ASVS 6.2.8).
    const password = field(ctx, 'password', 4096);
    const user = email && password
      ? await accounts.authenticate(email, password, { ip: ctx.ip, userAgent: ctx.get('User-Agent'), clientId: String(details.params.client_id) })
      : undefined;
    if (!user) return showLogin(ctx, details, { email, error: GENERIC_LOGIN_ERROR });
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: user.id, amr: ['pwd'], acr: ACR.password, remember: true } },
      { mergeWithLastSubmission: false },
    );
  });

  router.post('/:uid/confirm', rejectCrossSite(issuerOrigin), body, async function submitConsent(ctx) {
    const details = await load(ctx, 'consent');
    csrf.verify(details.uid, field(ctx, 'csrf', 128));
    const accountId = details.session?.accountId;
    if (!accountId) throw interactionProblem('Sign in first.');
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined)
      ?? new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  });

  router.post('/:uid/abort', rejectCrossSite(issuerOrigin), body, async function abortInteraction(ctx) {
    const details = await load(ctx);
    csrf.verify(details.uid, field(ctx, 'csrf', 128));
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'The user cancelled the request.' },
      { mergeWithLastSubmission: false },
    );
  });

  return router;
}
