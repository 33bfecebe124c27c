import type Koa from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from '../shared/logger.ts';

type HttpishError = { status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown };

/**
 * oidc-provider answers OAuth errors itself, per route. An error that escapes its routes (a bug,
 * a library error) would reach Koa's default handler, which clears every header already set —
 * CSP, HSTS, nosniff, no-store — answers plain text, and prints the error to stderr past our
 * logger. This outermost provider middleware answers instead, keeping the headers: a generic
 * `server_error` (OAuth JSON, or a short page for a browser) and one structured log line.
 */
export function containProviderErrors(provider: Provider, logger: Logger): void {
  // A listener replaces Koa's default onerror, which would print to stderr.
  // Provider extends Koa; its types list only the provider's own events.
  (provider as unknown as Koa).on('error', (error: unknown) => {
    // As Koa's own handler: client errors (expose) and 404s are not server faults.
    const { status, expose } = (error ?? {}) as HttpishError;
    if (expose === true || status === 404) return;
    logger.error({ err: error }, 'oidc-provider error outside a route');
  });
  provider.middleware.unshift(async function containErrors(ctx, next) {
    try {
      await next();
    } catch (error) {
      const { status, statusCode, expose } = (error ?? {}) as HttpishError;
      const code = typeof status === 'number' ? status : typeof statusCode === 'number' ? statusCode : 500;
      const clientError = code >= 400 && code < 500 && expose === true;
      if (!clientError) logger.error({ err: error, path: ctx.path }, 'oidc-provider error outside a route');
      ctx.status = clientError ? code : 500;
      ctx.set('Cache-Control', 'no-store');
      const body = clientError
        ? { error: 'invalid_request', error_description: 'The request could not be processed.' }
        : { error: 'server_error', error_description: 'The server could not complete the request. Please try again in a moment.' };
      if (ctx.accepts('json', 'html') === 'html') {
        ctx.type = 'html';
        ctx.body = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Something went wrong</title><p>${body.error_description}</p></html>`;
      } else {
        ctx.body = body;
      }
    }
  });
}
