import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from './logger.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * One structured line per request with a request id (echoed as X-Request-Id). An incoming id is
 * kept only behind a trusted proxy, so clients cannot forge log correlation.
 */
export function requestLogger({ logger, trustProxy }: { logger: Logger; trustProxy: boolean }): Middleware {
  return async function requestLoggerMiddleware(ctx, next) {
    const incoming = ctx.get('X-Request-Id');
    const id = trustProxy && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // A mounted app (the provider) answers on the raw response.
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      const quiet = ctx.path === '/healthz' || ctx.path === '/readyz';
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : quiet ? 'debug' : 'info';
      logger[level]({ reqId: id, method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 }, 'request');
    }
  };
}
