import ipaddr from 'ipaddr.js';

/** Prefix length of an IPv6 client's budget: one /64 is one subscriber's LAN (RFC 6177, RFC 7421). */
export const IPV6_BUDGET_PREFIX = 64;

/**
 * The key under which a client address spends per-IP budgets (rate limits, per-IP lockouts, the
 * device user-code lockout, the API's per-IP limit). An IPv6 client usually holds a whole /64 and
 * picks any address in it at will, so the /64 is the unit: "2001:db8:1:2::/64". An IPv4-mapped
 * IPv6 address (::ffff:192.0.2.1, as a dual-stack socket reports IPv4 peers) counts as the IPv4
 * address itself, so one client cannot hold two budgets. Anything that is not an address (a
 * garbled X-Forwarded-For behind a trusted proxy) is its own key, as before.
 */
export function ipBudgetKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toNormalizedString()}/${IPV6_BUDGET_PREFIX}`).toString()}/${IPV6_BUDGET_PREFIX}`;
}
