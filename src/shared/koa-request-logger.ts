import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type { Logger } from './logger.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const requestIds = new AsyncLocalStorage<string>();

/** The X-Request-Id of the request being served, for outgoing calls made on its behalf. */
export const currentRequestId = (): string | undefined => requestIds.getStore();

/**
 * One structured line per request with a request id (echoed as X-Request-Id). An incoming id is
 * kept only from a trusted proxy (trustsPeer: the socket peer is one TRUST_PROXY names), so
 * clients cannot forge log correlation.
 */
export function requestLogger({ logger, trustsPeer }: { logger: Logger; trustsPeer: (req: IncomingMessage) => boolean }): Middleware {
  return async function requestLoggerMiddleware(ctx, next) {
    const incoming = ctx.get('X-Request-Id');
    const valid = incoming !== '' && REQUEST_ID.test(incoming);
    const id = valid && trustsPeer(ctx.req) ? incoming : randomUUID();
    // Untrusted, a well-formed caller id is still logged beside ours (the API's JWKS fetch sends
    // its request's id), under its own name so it cannot pass for ours.
    const callerReqId = valid && id !== incoming ? incoming : undefined;
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    const started = process.hrtime.bigint();
    try {
      // Outgoing calls made for this request (the API's JWKS fetch) read the id from here.
      await requestIds.run(id, next);
    } finally {
      // A mounted app (the provider) answers on the raw response.
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      const quiet = ctx.path === '/healthz' || ctx.path === '/readyz';
      // A refused request (4xx) is logged like a served one, at info: at warn, every bad token or
      // flood would cost more to refuse than to serve. Metrics count refusals by status, and
      // security events (failed logins, lockouts, token reuse) are audited separately.
      const level = status >= 500 ? 'error' : quiet ? 'debug' : 'info';
      if (logger.isLevelEnabled(level)) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const line = { reqId: id, method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 };
        // eslint-disable-next-line security/detect-object-injection -- level is one of three literal pino levels chosen just above
        logger[level](callerReqId ? { ...line, callerReqId } : line, 'request');
      }
    }
  };
}
