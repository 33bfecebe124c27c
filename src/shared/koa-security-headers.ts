import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import type { Middleware } from 'koa';

type ResponseWithNonce = ServerResponse & { cspNonce?: string };

/**
 * 128-bit CSP nonces cut from a pooled random buffer: one CSPRNG call per 256 requests instead
 * of one per request (the same trick as crypto.randomUUID's entropy cache).
 */
const NONCE_BYTES = 16;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;
function cspNonce(): string {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 256);
    nonceOffset = 0;
  }
  const nonce = noncePool.toString('base64', nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

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
    const nonce = cspNonce();
    (ctx.res as ResponseWithNonce).cspNonce = nonce;
    ctx.state.cspNonce = nonce;
    // helmet's middleware is synchronous: it sets the headers and calls back before returning.
    let done: { error?: unknown } | undefined;
    headers(ctx.req, ctx.res, (error?: unknown) => {
      done = { error };
    });
    if (!done) throw new Error('security headers did not complete synchronously');
    if (done.error) throw done.error instanceof Error ? done.error : new Error('security headers failed');
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
