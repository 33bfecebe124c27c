import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Context, Next } from 'koa';
import { notFound, toProblemJson } from '../shared/problem.ts';
import type { ViewData, ViewName } from './view-data.ts';

const viewsDir = fileURLToPath(new URL('../../views/', import.meta.url));

// Compiled once and cached; autoEscape is on, so only `<%~` emits raw HTML.
const eta = new Eta({ views: viewsDir, cache: true, autoEscape: true, autoTrim: false });

export type { ViewData, ViewName } from './view-data.ts';

/** The page's HTML; `data` has the fields its template reads (src/auth/view-data.ts). */
export function renderView<V extends ViewName>(view: V, data: ViewData[V]): string {
  return eta.render(view, data);
}

/** Renders a page into the response: HTML, never cached (RFC 9700 §4.16 pages hold secrets). */
export function render<V extends ViewName>(ctx: Context, view: V, data: ViewData[V], status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = renderView(view, data);
}

/**
 * Unknown paths: oidc-provider leaves them to Koa's plain-text "Not Found". Browsers get our
 * error page instead, everyone else RFC 9457 problem JSON; neither is cached. A provider
 * middleware (provider.use), so it sees the provider's own routing; a response the provider
 * wrote (an OAuth error, a 405) has a body and is left alone.
 */
export async function notFoundPage(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.status !== 404 || ctx.body != null) return;
  if (ctx.accepts('json', 'html') === 'html') {
    render(
      ctx,
      'error',
      { heading: "This page doesn't exist", message: 'The address may be mistyped, or the page may have moved.', home: '/account' },
      404,
    );
    return;
  }
  ctx.status = 404;
  ctx.type = 'application/problem+json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = toProblemJson(notFound());
}

const staticFiles = new Map<string, { type: string; body: Buffer }>([
  // Fixed paths, one per file (security/detect-non-literal-fs-filename sees that they are).
  ['/static/style.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(import.meta.dirname, '../../views/static/style.css')) }],
  [
    '/static/webauthn.js',
    { type: 'text/javascript; charset=utf-8', body: readFileSync(join(import.meta.dirname, '../../views/static/webauthn.js')) },
  ],
  // @simplewebauthn/browser's own UMD bundle, served from node_modules (no CDN).
  [
    '/static/simplewebauthn-browser.js',
    {
      type: 'text/javascript; charset=utf-8',
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a fixed file inside an installed package, found by module resolution, never from a request
      body: readFileSync(
        join(dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')), '../dist/bundle/index.umd.min.js'),
      ),
    },
  ],
]);

/** Our few static assets, read once at start and served from memory. */
export async function serveStatic(ctx: Context, next: () => Promise<void>): Promise<void> {
  const file = ctx.method === 'GET' || ctx.method === 'HEAD' ? staticFiles.get(ctx.path) : undefined;
  if (!file) return next();
  ctx.type = file.type;
  ctx.set('Cache-Control', 'public, max-age=3600');
  ctx.body = file.body;
}
