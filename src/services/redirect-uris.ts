import { ClientPolicyError } from './client-policy-error.ts';

/** Schemes that execute or embed content in the browser, whatever the client kind. */
const DANGEROUS_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:', 'filesystem:']);

const redirectError = (field: string, uri: string, why: string): ClientPolicyError =>
  new ClientPolicyError(
    field === 'redirect_uris' ? 'invalid_redirect_uri' : 'invalid_client_metadata',
    `${field}: ${JSON.stringify(uri.slice(0, 200))} ${why}`,
  );

/**
 * RFC 9700 §2.1/§2.6 and RFC 8252 rules for one redirect URI: an absolute URI compared by exact
 * string, https for everyone, http only for a native app's loopback IP literal (any port at
 * run time), reverse-domain private schemes for native apps, no fragment, no wildcard, no
 * userinfo, no dangerous scheme.
 */
export function checkRedirectUri(field: string, uri: unknown, native: boolean): void {
  if (typeof uri !== 'string' || uri.length === 0)
    throw new ClientPolicyError('invalid_client_metadata', `${field} must be an array of non-empty strings`);
  if (uri.length > 2000) throw redirectError(field, uri, 'is too long');
  // Whitespace and control characters invite parser differentials (docs/security.md T2).
  // eslint-disable-next-line no-control-regex -- the point: control characters in a redirect URI are refused
  if (/[\s\u0000-\u001f\u007f\\]/.test(uri)) throw redirectError(field, uri, 'contains whitespace, control characters or a backslash');
  if (uri.includes('*')) throw redirectError(field, uri, 'contains a wildcard; register every URI exactly');
  if (uri.includes('#')) throw redirectError(field, uri, 'has a fragment, which RFC 6749 §3.1.2 forbids');
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw redirectError(field, uri, 'is not an absolute URI');
  }
  const scheme = url.protocol.toLowerCase();
  if (DANGEROUS_SCHEMES.has(scheme)) throw redirectError(field, uri, `uses the forbidden scheme ${scheme}`);
  if (url.username || url.password) throw redirectError(field, uri, 'must not contain user information');
  if (scheme === 'https:') {
    if (!url.hostname) throw redirectError(field, uri, 'has no host');
    return;
  }
  if (scheme === 'http:') {
    if (!native) throw redirectError(field, uri, 'uses http; only https is allowed (http only for native apps on 127.0.0.1 or [::1])');
    if (url.hostname !== '127.0.0.1' && url.hostname !== '[::1]') {
      throw redirectError(
        field,
        uri,
        'uses http on a host other than the loopback IP literals 127.0.0.1 and [::1] (RFC 8252 §7.3; "localhost" is not accepted)',
      );
    }
    return;
  }
  // RFC 8252 §7.1: private-use schemes in reverse domain name notation, native apps only.
  if (!native) throw redirectError(field, uri, `uses the scheme ${scheme}; web clients must use https`);
  if (!isReverseDomainScheme(scheme)) {
    throw redirectError(field, uri, `uses the scheme ${scheme}; private-use schemes must be reverse domain names such as com.example.app:`);
  }
}

/**
 * RFC 8252 §7.1: a private-use scheme in reverse domain name notation (com.example.app:), checked
 * label by label rather than with one nested-quantifier pattern (security/detect-unsafe-regex).
 */
function isReverseDomainScheme(scheme: string): boolean {
  if (!scheme.endsWith(':')) return false;
  const [first = '', ...rest] = scheme.slice(0, -1).split('.');
  return rest.length > 0 && /^[a-z][a-z0-9+-]*$/.test(first) && rest.every((label) => /^[a-z0-9+-]+$/.test(label));
}
