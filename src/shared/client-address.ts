import type { IncomingMessage } from 'node:http';
import proxyaddr from '@fastify/proxy-addr';
import ipaddr from 'ipaddr.js';

/**
 * Who the client is, per TRUST_PROXY (R13, docs/operations.md "Behind a proxy").
 *
 * TRUST_PROXY names the proxies whose X-Forwarded-For we believe: addresses, CIDR ranges and the
 * names `loopback`, `linklocal`, `uniquelocal` (the conventions of Express's `trust proxy`, through
 * the same library Express and Fastify use). The client is the rightmost address in
 * X-Forwarded-For that is not a trusted proxy, walking from the socket: a caller that reaches the
 * app directly (a container on the proxy's network, a service through the internal listener)
 * is not in the list, so its X-Forwarded-For is ignored and its socket address counts. A spoofed
 * leftmost entry, which an appending proxy passes on, is never reached. `false` (the default)
 * trusts nobody; `true` trusts every caller (X-Forwarded-For's leftmost entry, Express's
 * meaning), which production refuses.
 */
export type ClientAddress = {
  /** The client's address for this request. */
  of: (req: IncomingMessage) => string;
  /** Whether the request's socket peer is a trusted proxy (may set X-Request-Id, X-Forwarded-For). */
  fromTrustedProxy: (req: IncomingMessage) => boolean;
};

const trustNobody = (): boolean => false;
const trustEveryone = (): boolean => true;

/** The trust function for a validated TRUST_PROXY list (config/load.ts checks it with trustProxyProblem). */
function compileTrust(trustProxy: readonly string[]): (address: string, hop: number) => boolean {
  if (trustProxy.length === 0 || (trustProxy.length === 1 && trustProxy[0] === 'false')) return trustNobody;
  if (trustProxy.length === 1 && trustProxy[0] === 'true') return trustEveryone;
  return proxyaddr.compile([...trustProxy]);
}

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * An address as an operator writes one: dotted-quad IPv4 or IPv6, with an optional prefix length.
 * ipaddr.js alone would also read "2" or "10.1" as IPv4 (0.0.0.2, 10.0.0.1), and "2" is what an
 * Express user writes for a hop count, which would then silently trust 0.0.0.2.
 */
function writtenAsAddress(entry: string): boolean {
  const [address = '', prefix, extra] = entry.split('/');
  if (extra !== undefined || (prefix !== undefined && !/^\d{1,3}$/.test(prefix))) return false;
  return ipaddr.IPv4.isValidFourPartDecimal(address) || (address.includes(':') && ipaddr.IPv6.isValid(address));
}

/** Why a TRUST_PROXY list is not valid, or undefined: for the configuration's one-line problems. */
export function trustProxyProblem(trustProxy: readonly string[]): string | undefined {
  const expected =
    "expected false, true, or the proxies' addresses and CIDRs (10.0.0.0/8, 127.0.0.1, ::1) or loopback, linklocal, uniquelocal";
  if (trustProxy.length > 1 && trustProxy.some((entry) => entry === 'true' || entry === 'false')) {
    return 'true and false stand alone; otherwise list the proxies (addresses, CIDRs, loopback, linklocal, uniquelocal)';
  }
  const special = trustProxy.length === 1 && (trustProxy[0] === 'true' || trustProxy[0] === 'false');
  for (const entry of special ? [] : trustProxy) {
    if (/^\d+$/.test(entry))
      return `${entry} looks like a hop count, which would trust whoever connects; name the proxies instead (${expected})`;
    if (!NAMED_RANGES.has(entry) && !writtenAsAddress(entry)) return `${entry} is not an address or CIDR; ${expected}`;
  }
  try {
    compileTrust(trustProxy);
    return undefined;
  } catch (error) {
    return `${(error as Error).message}; ${expected}`;
  }
}

/** TRUST_PROXY=true: every caller may say who the client is. */
export const trustsEveryone = (trustProxy: readonly string[]): boolean => trustProxy.length === 1 && trustProxy[0] === 'true';

export function clientAddressOf(trustProxy: readonly string[]): ClientAddress {
  const trust = compileTrust(trustProxy);
  return {
    of: (req) => {
      if (trust === trustNobody) return req.socket.remoteAddress ?? '';
      // [socket, then X-Forwarded-For right to left], cut after the first untrusted hop.
      const chain = proxyaddr.all(req, trust);
      const client = chain.at(-1) ?? '';
      // A trusted proxy that passed on something that is not an address: the proxy is the client.
      return ipaddr.isValid(client) ? client : (chain.at(-2) ?? req.socket.remoteAddress ?? '');
    },
    fromTrustedProxy: (req) => {
      const peer = req.socket.remoteAddress;
      return peer !== undefined && trust(peer, 0);
    },
  };
}
