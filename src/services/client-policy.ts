import { isInternalHost } from '../shared/internal-host.ts';
import { API_SCOPES, DEFAULT_API_SCOPES, OIDC_SCOPES, OPERATOR_SCOPES } from '../shared/scopes.ts';
import { ClientPolicyError } from './client-policy-error.ts';
import { checkRedirectUri } from './redirect-uris.ts';
import { reservedNameReason } from './reserved-client-names.ts';

export { ClientPolicyError };

/**
 * The registration policy for every client, whoever registers it (the RFC 7591 endpoint or
 * `portcullis clients create`). It runs before oidc-provider's own metadata validation and
 * either refuses with an RFC 7591 error code or fills in our defaults. Pure: no I/O. Redirect
 * URIs are checked by redirect-uris.ts, the URLs the server fetches by src/shared/internal-host.ts.
 */

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
