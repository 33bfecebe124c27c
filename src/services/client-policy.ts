import ipaddr from 'ipaddr.js';
import { API_SCOPES, DEFAULT_API_SCOPES, OIDC_SCOPES, OPERATOR_SCOPES } from '../shared/scopes.ts';
import { reservedNameReason } from './reserved-client-names.ts';

/**
 * The registration policy for every client, whoever registers it (the RFC 7591 endpoint or
 * `portcullis clients create`). It runs before oidc-provider's own metadata validation and
 * either refuses with an RFC 7591 error code or fills in our defaults. Pure: no I/O.
 */
export class ClientPolicyError extends Error {
  readonly error: 'invalid_redirect_uri' | 'invalid_client_metadata';
  constructor(error: 'invalid_redirect_uri' | 'invalid_client_metadata', description: string) {
    super(description);
    this.name = 'ClientPolicyError';
    this.error = error;
  }
}

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Grant types a client may hold; ROPC and implicit are never offered (RFC 9700 §2.1.2, §2.4). */
const GRANTS_PUBLIC = new Set(['authorization_code', 'refresh_token', DEVICE_CODE_GRANT]);
const GRANTS_CONFIDENTIAL = new Set([...GRANTS_PUBLIC, 'client_credentials']);

/** client_secret_jwt would need the plain secret server-side; mTLS is not offered. */
export const TOKEN_AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;

/**
 * Scopes a client gets when it asks for none, however it was registered (CLI, RFC 7591, or a
 * stored client without `scope`): never `admin` or the account scopes (OPERATOR_SCOPES).
 */
export const DEFAULT_CLIENT_SCOPE = [...OIDC_SCOPES, ...DEFAULT_API_SCOPES].join(' ');

export const KNOWN_SCOPES = new Set<string>([...OIDC_SCOPES, ...API_SCOPES]);

/** URL-valued metadata other than redirect URIs: https only (a logo over http is a tracking/MITM vector). */
const HTTPS_URL_FIELDS = [
  'logo_uri',
  'client_uri',
  'policy_uri',
  'tos_uri',
  'jwks_uri',
  'initiate_login_uri',
  'sector_identifier_uri',
] as const;

/** URLs the server itself fetches (keys, pairwise sectors): never toward loopback or private networks (SSRF). */
const FETCHED_URL_FIELDS = new Set<string>(['jwks_uri', 'sector_identifier_uri']);

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

/** Schemes that execute or embed content in the browser, whatever the client kind. */
const DANGEROUS_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:', 'filesystem:']);

export type PolicyOptions = {
  /**
   * The operator scopes (OPERATOR_SCOPES) this registration may hold: all of them for the CLI,
   * those the initial access token allows for the registration endpoint. Never a default.
   */
  operatorGranted: ReadonlySet<string>;
  /**
   * An operator registers this client (`portcullis clients create`): it may carry the
   * operator-only properties (OPERATOR_PROPERTIES). Never true for a client registering or
   * updating itself (RFC 7591, RFC 7592).
   */
  byOperator: boolean;
};

/**
 * Client properties only an operator sets. `introspect_any_token`: a resource server trusted to
 * introspect every client's tokens (RFC 7662 §4), apart from any scope it may ask users for.
 */
export const OPERATOR_PROPERTIES = ['introspect_any_token'] as const;

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

function stringArray(metadata: Record<string, unknown>, field: string): string[] | undefined {
  // eslint-disable-next-line security/detect-object-injection -- field is one of our literal metadata names; only metadata is input
  const value = metadata[field];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new ClientPolicyError('invalid_client_metadata', `${field} must be an array of strings`);
  }
  return value as string[];
}

/**
 * Applies the policy to RFC 7591 metadata in place (defaults are written into `metadata`).
 * Throws ClientPolicyError with a description that says what to change.
 */
export function applyClientPolicy(metadata: Record<string, unknown>, options: PolicyOptions): void {
  const applicationType = metadata.application_type ?? 'web';
  if (applicationType !== 'web' && applicationType !== 'native') {
    throw new ClientPolicyError('invalid_client_metadata', 'application_type must be "web" or "native"');
  }
  const native = applicationType === 'native';

  const authMethod = metadata.token_endpoint_auth_method ?? 'client_secret_basic';
  if (typeof authMethod !== 'string' || !(TOKEN_AUTH_METHODS as readonly string[]).includes(authMethod)) {
    throw new ClientPolicyError('invalid_client_metadata', `token_endpoint_auth_method must be one of ${TOKEN_AUTH_METHODS.join(', ')}`);
  }
  const isPublic = authMethod === 'none';
  metadata.token_endpoint_auth_method = authMethod;
  for (const field of ['introspection_endpoint_auth_method', 'revocation_endpoint_auth_method'] as const) {
    // eslint-disable-next-line security/detect-object-injection -- field is one of the two literal names iterated here
    const value = metadata[field];
    if (value !== undefined && (typeof value !== 'string' || !(TOKEN_AUTH_METHODS as readonly string[]).includes(value))) {
      throw new ClientPolicyError('invalid_client_metadata', `${field} must be one of ${TOKEN_AUTH_METHODS.join(', ')}`);
    }
  }

  const grantTypes = stringArray(metadata, 'grant_types') ?? ['authorization_code'];
  const allowedGrants = isPublic ? GRANTS_PUBLIC : GRANTS_CONFIDENTIAL;
  for (const grant of grantTypes) {
    if (!allowedGrants.has(grant)) {
      throw new ClientPolicyError(
        'invalid_client_metadata',
        grant === 'client_credentials' && isPublic
          ? 'grant_types: client_credentials needs a confidential client (token_endpoint_auth_method other than none)'
          : `grant_types: "${grant}" is not allowed; use ${[...allowedGrants].join(', ')}`,
      );
    }
  }
  if (grantTypes.length === 0) throw new ClientPolicyError('invalid_client_metadata', 'grant_types must not be empty');
  metadata.grant_types = [...new Set(grantTypes)];

  const responseTypes = stringArray(metadata, 'response_types');
  const usesCode = grantTypes.includes('authorization_code');
  if (responseTypes?.some((t) => t !== 'code')) {
    throw new ClientPolicyError('invalid_client_metadata', 'response_types: only "code" is supported (RFC 9700 §2.1.2)');
  }
  metadata.response_types = usesCode ? ['code'] : [];

  const redirectUris = stringArray(metadata, 'redirect_uris') ?? [];
  if (usesCode && redirectUris.length === 0)
    throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris: the authorization_code grant needs at least one redirect URI');
  if (!usesCode && redirectUris.length > 0)
    throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris are only for clients with the authorization_code grant');
  for (const uri of redirectUris) checkRedirectUri('redirect_uris', uri, native);
  metadata.redirect_uris = redirectUris;
  for (const uri of stringArray(metadata, 'post_logout_redirect_uris') ?? []) checkRedirectUri('post_logout_redirect_uris', uri, native);

  for (const field of HTTPS_URL_FIELDS) {
    // eslint-disable-next-line security/detect-object-injection -- field is one of the constant HTTPS_URL_FIELDS
    const value = metadata[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') throw new ClientPolicyError('invalid_client_metadata', `${field} must be a string`);
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:' || url.username || url.password || value.includes('#')) {
      throw new ClientPolicyError('invalid_client_metadata', `${field} must be an https URL without credentials or fragment`);
    }
    if (FETCHED_URL_FIELDS.has(field) && isInternalHost(url.hostname)) {
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `${field} must be a public https URL (the server fetches it; internal hosts are refused)`,
      );
    }
  }
  if (authMethod === 'private_key_jwt' && metadata.jwks === undefined && metadata.jwks_uri === undefined) {
    throw new ClientPolicyError('invalid_client_metadata', "private_key_jwt needs jwks or jwks_uri with the client's public keys");
  }
  if (isPublic && (metadata.jwks !== undefined || metadata.jwks_uri !== undefined)) {
    throw new ClientPolicyError('invalid_client_metadata', 'a public client (token_endpoint_auth_method none) must not register keys');
  }

  // The consent and device pages name the client: only an operator names one like the product or
  // its first-party apps (R14; src/services/reserved-client-names.ts).
  const name = metadata.client_name;
  if (typeof name === 'string' && !options.byOperator) {
    const reason = reservedNameReason(name);
    if (reason)
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `client_name: ${JSON.stringify(name.slice(0, 100))} is reserved (${reason}); choose your app's own name`,
      );
  }

  for (const property of OPERATOR_PROPERTIES) {
    // eslint-disable-next-line security/detect-object-injection -- property is one of the constant OPERATOR_PROPERTIES
    const value = metadata[property];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') throw new ClientPolicyError('invalid_client_metadata', `${property} must be a boolean`);
    if (value && !options.byOperator)
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `${property} is set by an operator only (portcullis clients create); ask an administrator`,
      );
    if (value && isPublic)
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `${property} needs a confidential client (introspection needs client authentication)`,
      );
  }

  const scope = metadata.scope ?? DEFAULT_CLIENT_SCOPE;
  if (typeof scope !== 'string' || scope.length > 1000)
    throw new ClientPolicyError('invalid_client_metadata', 'scope must be a space-separated string');
  const scopes = scope.split(' ').filter(Boolean);
  for (const s of scopes) {
    if (!KNOWN_SCOPES.has(s))
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `scope: "${s}" is not a scope of this server (${[...KNOWN_SCOPES].join(' ')})`,
      );
    if (OPERATOR_SCOPES.includes(s) && !options.operatorGranted.has(s)) {
      throw new ClientPolicyError(
        'invalid_client_metadata',
        s === 'admin'
          ? 'scope: "admin" cannot be self-registered; ask an administrator'
          : `scope: "${s}" needs an operator's grant; ask an administrator for an initial access token that allows it`,
      );
    }
  }
  metadata.scope = [...new Set(scopes)].join(' ');
}
