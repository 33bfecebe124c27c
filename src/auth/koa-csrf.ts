import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import { Problem, problemType } from '../shared/problem.ts';

const csrfFailure = (detail: string): Problem =>
  new Problem({ status: 403, type: problemType('csrf'), title: 'This form has expired or was sent from another site', detail });

/**
 * Login/consent CSRF defence in depth (ASVS 3.5.1, T30): SameSite=Lax cookies (set by the
 * provider), this check of Fetch Metadata / Origin, and a form token bound to the interaction.
 */
export function rejectCrossSite(issuerOrigin: string): Middleware {
  return async function rejectCrossSiteMiddleware(ctx, next) {
    if (ctx.method === 'POST') {
      const site = ctx.get('Sec-Fetch-Site');
      if (site && site !== 'same-origin' && site !== 'none') throw csrfFailure('cross-site form submission refused');
      const origin = ctx.get('Origin');
      // Koa 3's ctx.request.origin echoes the header; compare with the configured issuer instead.
      // Under Referrer-Policy: no-referrer browsers send "Origin: null" even for same-origin
      // forms; a same-origin Sec-Fetch-Site (set by the browser, not scripts) settles it then.
      const vouched = site === 'same-origin' && origin === 'null';
      if (origin && origin !== issuerOrigin && !vouched) throw csrfFailure('cross-origin form submission refused');
    }
    await next();
  };
}

/** Form tokens: HMAC over the binding (e.g. the interaction uid) under each cookie key. */
export function createCsrfTokens(keys: readonly string[]) {
  const sign = (key: string, binding: string): Buffer => createHmac('sha256', key).update(`csrf:${binding}`).digest();
  return {
    issue(binding: string): string {
      return sign(keys[0] as string, binding).toString('base64url');
    },
    verify(binding: string, token: unknown): void {
      if (typeof token !== 'string' || token.length === 0 || token.length > 128) throw csrfFailure('missing form token');
      const presented = Buffer.from(token, 'base64url');
      const valid = keys.some((key) => {
        const expected = sign(key, binding);
        return presented.length === expected.length && timingSafeEqual(presented, expected);
      });
      if (!valid) throw csrfFailure('invalid form token');
    },
  };
}

export type CsrfTokens = ReturnType<typeof createCsrfTokens>;
