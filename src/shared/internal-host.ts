import ipaddr from 'ipaddr.js';

/** Name suffixes that never name a public host: this machine, cloud metadata, mDNS, home networks (RFC 6761, 6762, 8375). */
const INTERNAL_SUFFIXES = ['localhost', 'internal', 'local', 'home.arpa'];

/** The host as WHATWG URL writes it (numeric IPv4 forms to dotted quads, IPv6 compressed), brackets and trailing dots gone. */
function normalisedHost(hostname: string): string | undefined {
  const bracketed = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  let host: string;
  try {
    host = new URL(`https://${bracketed}/`).hostname;
  } catch {
    return undefined;
  }
  // "localhost." is "localhost": the root label is implied. WHATWG keeps the dot on names.
  return host.replace(/^\[|\]$/g, '').replace(/\.+$/, '');
}

/**
 * Whether a host is this machine, a private network or anything else that is not the public
 * internet (SSRF guard for the URLs the server fetches). Every spelling counts (R15): the host is
 * first put in WHATWG form (so `0x7f.1`, `2130706433`, `0177.0.0.1` and `127.1` are 127.0.0.1),
 * trailing dots are dropped (`localhost.`, `metadata.google.internal.`), and an IP literal is
 * public only when ipaddr.js calls it unicast — and, for IPv6, global unicast (2000::/3), so
 * IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo forms, which embed an IPv4 address, are
 * refused whatever they embed. A public name that resolves to an internal address is refused at
 * connect time by oidc-provider's SSRF-protected dispatcher, which checks the connected address.
 */
export function isInternalHost(hostname: string): boolean {
  const host = normalisedHost(hostname);
  if (host === undefined || host === '') return true;
  if (ipaddr.isValid(host)) {
    const address = ipaddr.parse(host);
    if (address.range() !== 'unicast') return true;
    // Global unicast only: ipaddr.js calls the IPv4-compatible ::a.b.c.d (in ::/8) unicast too.
    return address.kind() === 'ipv6' && !(address as ipaddr.IPv6).match(ipaddr.IPv6.parse('2000::'), 3);
  }
  if (!host.includes('.')) return true;
  return INTERNAL_SUFFIXES.some((suffix) => host === suffix || host.endsWith(`.${suffix}`));
}
