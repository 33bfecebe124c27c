import type { IncomingMessage } from 'node:http';
import type { Context, Middleware } from 'koa';
import type { ClientAddress } from '../shared/client-address.ts';

/**
 * Headers by which a client or a proxy can name a host, a scheme or an address. Read at most once,
 * at the edge (the address, from the proxies TRUST_PROXY names), then removed: nothing further in
 * can trust them.
 */
const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-real-ip',
];

/** The client address the edge decided on, for the provider's own context of the same request. */
const clientAddresses = new WeakMap<IncomingMessage, string>();

/**
 * The origin-form of a request target (RFC 9112 §3.2.1). An absolute-form target
 * (`GET http://evil.example/x`) would otherwise become Koa's ctx.href as it stands, and
 * oidc-provider builds its absolute URLs from ctx.href. Only the scheme and authority go; the
 * path is kept byte for byte, so routing sees exactly what it would have seen.
 */
export function originForm(target: string): string {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  if (!authority) return target;
  const rest = target.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * Koa derives host and protocol from the request (Host, X-Forwarded-Host/-Proto with app.proxy,
 * and "https" whenever the socket is TLS, even when ISSUER is http). Own properties on this
 * request object shadow those getters, so href, origin, secure (and the `secure` flag of the
 * cookies made from it) all follow ISSUER.
 */
function pinToIssuer(ctx: Context, issuer: URL, address: string): void {
  Object.defineProperties(ctx.request, {
    host: { value: issuer.host, configurable: true },
    protocol: { value: issuer.protocol.slice(0, -1), configurable: true },
  });
  ctx.request.ip = address;
}

/**
 * The first middleware of the auth app (R2, docs/security.md "The edges between our middleware and
 * oidc-provider"). Every URL the server emits is built from ISSUER, whatever Host,
 * X-Forwarded-Host or the request target name: the client address is decided here (the socket,
 * or X-Forwarded-For as far as the proxies TRUST_PROXY names say, R13), then the request is rewritten to the
 * issuer's host in origin-form with the forwarding headers removed, and host, protocol and ip
 * are pinned on our context and (providerCanonicalRequest) on oidc-provider's.
 *
 * A request naming another host is answered, not refused with 421: nothing in the answer depends
 * on the name, and internal callers reach us by other names (the API's JWKS_URL
 * http://auth:3000/jwks, health checks by address, the mTLS listener).
 */
export function canonicalRequest({ issuer, clientAddress }: { issuer: string; clientAddress: ClientAddress }): Middleware {
  const url = new URL(issuer);
  return async function canonicalRequestMiddleware(ctx, next) {
    const address = clientAddress.of(ctx.req);
    const target = originForm(ctx.req.url ?? '/');
    if (target !== ctx.req.url) {
      ctx.req.url = target;
      ctx.originalUrl = target;
      ctx.request.originalUrl = target;
    }
    for (const name of FORWARDING_HEADERS) Reflect.deleteProperty(ctx.req.headers, name);
    ctx.req.headers.host = url.host;
    clientAddresses.set(ctx.req, address);
    pinToIssuer(ctx, url, address);
    await next();
  };
}

/** oidc-provider's first middleware: its context of the same request, pinned the same way. */
export function providerCanonicalRequest({ issuer }: { issuer: string }): Middleware {
  const url = new URL(issuer);
  return async function providerCanonicalRequestMiddleware(ctx, next) {
    pinToIssuer(ctx, url, clientAddresses.get(ctx.req) ?? ctx.request.socket.remoteAddress ?? '');
    await next();
  };
}
