import type { Context, Middleware } from 'koa';
import type { Logger } from './logger.ts';
import { badRequest, internalError, payloadTooLarge, Problem, problemType, serviceUnavailable, toProblemJson } from './problem.ts';

export type HtmlRenderer = (ctx: Context, problem: Problem) => void;

/** Maps anything thrown below into a Problem; unknown errors become an opaque 500. */
function asProblem(error: unknown): Problem {
  if (error instanceof Problem) return error;
  const status = (error as { status?: unknown }).status;
  const type = (error as { type?: unknown }).type;
  // Body parser errors (raw-body / co-body) carry status and type.
  if (status === 413 || type === 'entity.too.large') return payloadTooLarge((error as { limit?: number }).limit ?? 0);
  if (status === 400 && (type === 'entity.parse.failed' || type === 'entity.verify.failed'))
    return badRequest('The request body could not be parsed.');
  if (status === 415) return new Problem({ status: 415, type: problemType('unsupported-media-type'), title: 'Unsupported media type' });
  // oidc-provider errors raised inside our routes (e.g. interactionDetails): keep their code.
  const oauth = error as { error?: unknown; error_description?: unknown; expose?: unknown };
  // The provider's store is down (src/auth/storage-unavailable.ts): 503, try again (T45).
  if (status === 503 && oauth.error === 'temporarily_unavailable') return serviceUnavailable(error);
  if (typeof status === 'number' && status < 500 && oauth.expose === true && typeof oauth.error === 'string') {
    const lostSession = /session.*not found|session_not_found/.test(`${oauth.error} ${String(oauth.error_description)}`);
    return new Problem({
      status,
      type: problemType(oauth.error.replaceAll('_', '-')),
      title: lostSession ? 'Your sign-in session has expired' : 'The request cannot be completed',
      detail: lostSession
        ? 'It may have timed out, or been opened in another browser. Go back to the application and sign in again.'
        : typeof oauth.error_description === 'string'
          ? oauth.error_description
          : oauth.error,
      extensions: { error: oauth.error },
    });
  }
  return internalError(error);
}

/**
 * The one error handler for our own routes: RFC 9457 problem JSON, or a friendly HTML page
 * when a browser asked and a renderer is given. Internals are logged, never sent (ASVS 16.5.1).
 */
export function problemHandler({ logger, renderHtml }: { logger: Logger; renderHtml?: HtmlRenderer }): Middleware {
  return async function problemHandlerMiddleware(ctx, next) {
    try {
      await next();
    } catch (error) {
      const problem = asProblem(error);
      if (problem.status >= 500) logger.error({ err: problem.cause ?? error, path: ctx.path }, 'request failed');
      else logger.debug({ problem: problem.type, path: ctx.path }, 'request refused');
      ctx.set(problem.headers);
      if (renderHtml && ctx.accepts('json', 'html') === 'html') {
        renderHtml(ctx, problem);
      } else {
        ctx.status = problem.status;
        ctx.type = 'application/problem+json';
        ctx.body = toProblemJson(problem);
      }
    }
  };
}
