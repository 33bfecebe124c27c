import type { IncomingMessage } from 'node:http';
import type { Context, Middleware } from 'koa';
import type { Client, ErrorOut, KoaContextWithOIDC } from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import type { AuditService } from '../../services/audit.ts';
import type { Lockout } from '../../services/lockout.ts';
import { signInCounts } from '../../services/session-validity.ts';
import type { Logger } from '../../shared/logger.ts';
import { displayOf } from '../client-display.ts';
import { providerRouteIn } from '../provider-routes.ts';
import { describeScopes } from '../../shared/scopes.ts';
import { renderView, type ViewData, type ViewName } from '../views.ts';

/** oidc-provider's route name for the user-code pages (routes.code_verification, /device). */
const CODE_VERIFICATION = 'code_verification';

type DeviceCodeEntity = { clientId?: string; iat?: number; deviceInfo?: { ip?: string; ua?: string }; params?: { scope?: string } };

const page = <V extends ViewName>(ctx: Context | KoaContextWithOIDC, view: V, data: ViewData[V], status = 200): void => {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderView(view, data);
};

/** "2 minutes ago (2026-11-23 12:05 UTC)": relative for people, absolute for the record. */
function describeTime(epochSeconds: number | undefined): { iso: string; text: string } {
  if (!epochSeconds) return { iso: '', text: 'just now' };
  const date = new Date(epochSeconds * 1000);
  const minutes = Math.max(0, Math.round((Date.now() - date.getTime()) / 60_000));
  const relative = minutes === 0 ? 'less than a minute ago' : minutes === 1 ? '1 minute ago' : `${minutes} minutes ago`;
  return { iso: date.toISOString(), text: `${relative} (${date.toISOString().slice(0, 16).replace('T', ' ')} UTC)` };
}

/**
 * RFC 8628 §3.3 pages on oidc-provider's device hooks: code entry (labelled "Code"; case and
 * dash do not matter, the provider normalises), a confirmation that shows who asks for what,
 * when and from where (§5.4 anti-phishing), with Allow / Deny / "I didn't start this", and the
 * result. Wrong codes are counted per IP by the lockout sentinel's user-code budget and lock
 * the IP out like wrong passwords, with the same doubling back-off (§5.1).
 */
export function createDevicePages({
  lockout,
  audit,
  accounts,
  logger,
}: {
  lockout: Lockout;
  audit: AuditService;
  accounts: AccountService;
  logger: Logger;
}) {
  // verification_uri_complete: the code travels from our guard to the input page with the request.
  const prefill = new WeakMap<IncomingMessage, string>();
  // Code entries the provider found no device code for: their reserved attempt stays counted.
  const wrongCode = new WeakSet<IncomingMessage>();

  const xsrfOf = (ctx: KoaContextWithOIDC): string => (ctx.oidc.session?.state as { secret?: string } | undefined)?.secret ?? '';

  const showInput = (ctx: KoaContextWithOIDC, userCode: string, error?: string): void => {
    page(ctx, 'device-code', { action: ctx.oidc.urlFor('code_verification'), xsrf: xsrfOf(ctx), userCode, error });
  };

  const lockedOut = (ctx: Context, retryAfter: number): void => {
    ctx.set('Retry-After', String(Math.max(1, Math.ceil(retryAfter))));
    page(
      ctx,
      'device-done',
      {
        heading: 'Too many wrong codes',
        message: 'For your security, code entry is paused for this network.',
        hint: `Try again in ${Math.ceil(retryAfter / 60)} minute(s), and check the code shown on your device carefully.`,
      },
      429,
    );
  };

  return {
    /**
     * In front of the provider: verification_uri_complete (GET /device?user_code=…) shows the
     * filled-in form instead of auto-submitting it, so a link alone never reaches the
     * confirmation; a POST from a locked-out IP is refused before any code lookup. Fails
     * closed when the limiter's store is down.
     */
    guard: async function deviceGuard(ctx, next) {
      // Keyed on the provider's route name (app.ts nameProviderRoute), so /DEVICE, /device/ and
      // every other spelling the provider serves is guarded too (R3).
      if (providerRouteIn(ctx) !== CODE_VERIFICATION) {
        await next();
        return;
      }
      if ((ctx.method === 'GET' || ctx.method === 'HEAD') && typeof ctx.query.user_code === 'string') {
        prefill.set(ctx.req, ctx.query.user_code.replace(/[^A-Za-z0-9-]/g, '').slice(0, 32));
        ctx.querystring = '';
      } else if (ctx.method === 'POST') {
        // Reserved before the provider looks the code up, in one atomic step with the check of the
        // lock (R14): concurrent wrong codes from one address cannot all be looked up before the
        // first is counted. Only a code the provider did not find keeps the attempt counted.
        const reservation = await lockout.reserve(ctx.ip);
        if (reservation.unavailable) {
          logger.error('user code lockout unavailable; refusing device code entry');
          page(
            ctx,
            'device-done',
            { heading: 'Temporarily unavailable', message: 'Code entry is unavailable right now. Please try again in a moment.' },
            503,
          );
          return;
        }
        if (!reservation.granted) {
          lockedOut(ctx, reservation.retryAfterSeconds);
          return;
        }
        try {
          await next();
        } finally {
          if (!wrongCode.has(ctx.req)) await lockout.release(ctx.ip, reservation);
        }
        return;
      }
      await next();
    } satisfies Middleware,

    async userCodeInputSource(ctx: KoaContextWithOIDC, _form: string, out?: ErrorOut, err?: Error): Promise<void> {
      const session = ctx.oidc.session;
      if (out && session && typeof session.exp !== 'number') {
        // An error on a request without a stored session (the cookie expired, a bare POST, a
        // stale resume link): oidc-provider's error handler has put a fresh form secret on this
        // never-saved session and would persist it afterwards, which throws (a 500, found by the
        // R12 fuzz pass). The secret could not be checked anyway without a cookie: drop it and
        // send the browser to the code page, whose GET stores a session, with the code kept.
        (session as typeof session & { touched: boolean }).touched = false;
        const typed =
          typeof ctx.oidc.params?.user_code === 'string' ? ctx.oidc.params.user_code.replace(/[^A-Za-z0-9-]/g, '').slice(0, 32) : '';
        ctx.status = 303;
        // A path, not ctx.oidc.urlFor: that one is built from the request's Host.
        ctx.redirect(ctx.oidc.provider.pathFor('code_verification', typed ? { query: { user_code: typed } } : {}));
        return;
      }
      const entered = (err as { userCode?: string } | undefined)?.userCode ?? '';
      const denied = err?.name === 'AbortedError' || out?.error === 'access_denied';
      if (!denied) {
        let error: string | undefined;
        let userCode = '';
        switch (err?.name) {
          case undefined:
            if (out) error = 'Something went wrong. Please enter the code again.';
            else userCode = prefill.get(ctx.req) ?? '';
            break;
          case 'NoCodeError':
            error = 'Enter the code shown on your device.';
            break;
          case 'NotFoundError':
            // Counted by the guard's reservation; the failure that started a lock still gets this
            // answer, and the next entry is refused.
            wrongCode.add(ctx.req);
            error = 'That code is not right. Check the code shown on your device and try again.';
            userCode = entered;
            break;
          case 'ExpiredError':
            error = 'That code has expired. Start again on your device to get a new one.';
            break;
          case 'AlreadyUsedError':
            error = 'That code has already been used. Start again on your device to get a new one.';
            break;
          default:
            error = 'Something went wrong. Please enter the code again.';
        }
        showInput(ctx, userCode, error);
        return;
      }
      // Denied: from our Deny button, "I didn't start this", or the consent page.
      const reported = ctx.oidc.params?.abort === 'report';
      if (reported) {
        const code = ctx.oidc.entities.DeviceCode as DeviceCodeEntity | undefined;
        await audit.record({
          type: 'device.request_reported',
          outcome: 'failure',
          actorId: ctx.oidc.session?.accountId,
          clientId: code?.clientId,
          ip: ctx.ip,
          userAgent: ctx.get('User-Agent'),
          data: { device_ip: code?.deviceInfo?.ip, device_user_agent: code?.deviceInfo?.ua, requested_at: code?.iat },
        });
      }
      page(ctx, 'device-done', {
        heading: reported ? 'Request blocked and reported' : 'Access denied',
        message: reported
          ? 'Nothing was connected. We have recorded this request so it can be looked into.'
          : 'The device was not connected. You can close this page.',
        hint: reported ? 'If someone sent you this code, do not enter codes for them. Consider changing your password.' : undefined,
      });
    },

    async userCodeConfirmSource(
      ctx: KoaContextWithOIDC,
      _form: string,
      client: Client,
      deviceInfo: { ip?: string; ua?: string },
      userCode: string,
    ): Promise<void> {
      const code = ctx.oidc.entities.DeviceCode as DeviceCodeEntity | undefined;
      const shown = displayOf(client);
      const requested = (code?.params?.scope ?? '').split(' ').filter(Boolean);
      const started = describeTime(code?.iat);
      // Whose account this connects, only while the browser's sign-in still counts: a session from
      // before the account's sessions were ended (sign out everywhere, a password change, an MFA
      // reset, disabling) names nobody here, as it names nobody to the provider (R13). The page
      // then says a sign-in comes next, which the provider asks for after Allow.
      const session = ctx.oidc.session;
      const found = session?.accountId ? await accounts.findActive(session.accountId) : undefined;
      const account = found && session && signInCounts(found, { loginTs: session.loginTs, sessionUid: session.uid }) ? found : undefined;
      page(ctx, 'device-confirm', {
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: xsrfOf(ctx),
        userCode,
        clientName: shown.name,
        logoUri: shown.logoUri,
        scopes: describeScopes([...requested].filter((s) => s !== 'openid' || requested.length === 1)),
        startedIso: started.iso,
        startedText: started.text,
        ip: typeof deviceInfo.ip === 'string' ? deviceInfo.ip : '',
        userAgent: typeof deviceInfo.ua === 'string' ? deviceInfo.ua.slice(0, 200) : '',
        email: account?.email,
      });
    },

    successSource(ctx: KoaContextWithOIDC): void {
      const name = ctx.oidc.client ? displayOf(ctx.oidc.client).name : 'the application';
      page(ctx, 'device-done', {
        heading: 'Device connected',
        message: `You are signed in to ${name} on your device. You can close this page.`,
      });
    },
  };
}

export type DevicePages = ReturnType<typeof createDevicePages>;
