import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';

const ROUTES = new Set(['discovery', 'jwks']);

/**
 * RFC 9110 §13.1.2 (weak comparison). Not Koa's ctx.fresh: that also honours a request's
 * Cache-Control: no-cache, which fetch() adds to every request carrying If-None-Match, but an
 * origin server evaluates the precondition regardless.
 */
const matches = (ifNoneMatch: string, etag: string): boolean =>
  ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);

/**
 * Discovery and the JWKS are the same document for every request of one provider instance (the
 * auth app, and so the provider, is rebuilt when the keys change: src/auth/reloading-app.ts).
 * The first answer of each is serialized once with a strong ETag; later answers send that body,
 * `Cache-Control: public, max-age`, and 304 when If-None-Match matches. maxAgeSeconds must stay
 * below the time a rotated key is published before it signs, so no cache misses a new key.
 */
export function cacheableMetadata(provider: Provider, { maxAgeSeconds }: { maxAgeSeconds: number }): void {
  const documents = new Map<string, { body: string; etag: string }>();
  provider.use(async function cacheMetadata(ctx, next) {
    await next();
    const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
    if (!route || !ROUTES.has(route) || ctx.status !== 200) return;
    let document = documents.get(route);
    if (!document) {
      const body = JSON.stringify(ctx.body);
      document = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
      documents.set(route, document);
    }
    ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
    ctx.set('ETag', document.etag);
    if (matches(ctx.get('If-None-Match'), document.etag)) {
      ctx.status = 304;
      ctx.body = null;
    } else {
      // Content-Type is already set by the provider, so a string body keeps it.
      ctx.body = document.body;
    }
  });
}
