import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import type { Middleware } from 'koa';

type ResponseWithNonce = ServerResponse & { cspNonce?: string };

/**
 * Security headers for HTML-serving apps. CSP with a per-request script nonce, and no
 * `form-action`: a login POST ends in a redirect to the client's redirect_uri, which
 * form-action would block (panva's example drops it for the same reason). oidc-provider adds
 * the hash of its own inline form_post script to script-src when it renders one.
 */
export function securityHeaders({ https }: { https: boolean }): Middleware {
  const headers = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'", (_req: IncomingMessage, res: ServerResponse) => `'nonce-${(res as ResponseWithNonce).cspNonce ?? ''}'`],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:', 'https:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'"],
        'frame-ancestors': ["'none'"],
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        ...(https ? { 'upgrade-insecure-requests': [] } : {}),
      },
    },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginOpenerPolicy: { policy: 'same-origin' },
    // Client logos and the JWKS are fetched cross-origin by design.
    crossOriginResourcePolicy: { policy: 'same-site' },
    crossOriginEmbedderPolicy: false,
    xFrameOptions: { action: 'deny' },
  });

  return async function securityHeadersMiddleware(ctx, next) {
    const nonce = randomBytes(16).toString('base64');
    (ctx.res as ResponseWithNonce).cspNonce = nonce;
    ctx.state.cspNonce = nonce;
    await new Promise<void>((resolve, reject) => {
      headers(ctx.req, ctx.res, (error?: unknown) => {
        if (error) reject(error instanceof Error ? error : new Error('security headers failed'));
        else resolve();
      });
    });
    await next();
  };
}

/** For JSON-only apps (the resource API): no CSP document policy needed, but no sniffing or framing. */
export function apiSecurityHeaders({ https }: { https: boolean }): Middleware {
  return async function apiSecurityHeadersMiddleware(ctx, next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    ctx.set('Referrer-Policy', 'no-referrer');
    if (https) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}
