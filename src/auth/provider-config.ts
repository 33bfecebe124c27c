// Over 250 lines: oidc-provider's configuration is one object, and this is the only module that knows its shape (README).
import { randomBytes } from 'node:crypto';
import { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { applyClientPolicy, ClientPolicyError, DEFAULT_CLIENT_SCOPE } from '../services/client-policy.ts';
import type { Config } from '../config/types.ts';
import type { AccountService } from '../services/accounts.ts';
import { accountClaims } from '../services/accounts.ts';
import type { Adapter } from '../store/oidc-adapter.ts';
import { BASE_REGISTRATION_POLICY, grantPolicy } from '../store/oidc-adapter-registration.ts';
import { API_SCOPES, IAT_GRANTABLE_SCOPES, OIDC_SCOPES } from '../shared/scopes.ts';
import type { DevicePages } from './routes/device.ts';
import { providerPages } from './provider-pages.ts';
import { accountClientMetadata } from './account-client.ts';
import { ACR } from '../services/mfa-policy.ts';
import { buildInteractionPolicy } from './interaction-policy.ts';
import { apiResourceServer, grantConsented, withoutResource } from './api-scope-grants.ts';
import { assertClaimsParameter } from './claims-parameter.ts';
import { sessionTtl } from './session-lifetime.ts';
import { CLIENT_FETCH_BODY_LIMITS, clientFetch } from './client-fetch.ts';
import { signInCounts, type SignIn } from '../services/session-validity.ts';

/** Authentication context class values (documented in docs/mfa.md; defined with the MFA policy). */
export { ACR };

export type ProviderConfigDeps = {
  config: Config;
  accounts: AccountService;
  /** Every model's storage and wrappers (OidcStorage.forProvider, src/auth/oidc-storage.ts). */
  adapter: (model: string) => Adapter;
  jwks: NonNullable<Configuration['jwks']>;
  cookieKeys: readonly string[];
  /** Device flow pages (RFC 8628); the provider's plain defaults are never shown. */
  devicePages?: Pick<DevicePages, 'userCodeInputSource' | 'userCodeConfirmSource' | 'successSource'>;
};

/**
 * The registration policy as an oidc-provider policy (carried by every initial access token and
 * inherited by registration access tokens, so RFC 7592 updates pass it again). The operator
 * scopes the registration may hold are those its token names with a `grant:<scope>` policy:
 * the initial access token's at registration, the registration access token's (a copy of them)
 * at an update. A client can therefore never add one to itself by PUT.
 */
function registrationPolicy(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): void {
  const { InitialAccessToken: iat, RegistrationAccessToken: rat } = ctx.oidc.entities;
  const policies = new Set(iat ? (iat.policies ?? []) : (rat?.policies ?? []));
  const operatorGranted = new Set(IAT_GRANTABLE_SCOPES.filter((scope) => policies.has(grantPolicy(scope))));
  try {
    applyClientPolicy(properties, { operatorGranted, byOperator: false });
  } catch (error) {
    // InvalidClientMetadata answers invalid_redirect_uri when the description starts with "redirect_uris".
    if (error instanceof ClientPolicyError) throw new errors.InvalidClientMetadata(error.message);
    throw error;
  }
}

/**
 * The sign-in findAccount is asked about: a token that records one (codes, device codes and
 * refresh tokens carry authTime and sessionUid; an access token counts by when it was issued),
 * or else the request's session (authorization, resume, device confirmation).
 */
function signInOf(ctx: KoaContextWithOIDC, token: unknown): SignIn | undefined {
  if (token) {
    const { kind, iat } = token as { kind?: unknown; iat?: unknown };
    // An access token (userinfo) is dated by its issue: none issued before the cutoff counts,
    // whichever session it came from (tokenCounts), so no session is named here (R13).
    if (kind === 'AccessToken') return { loginTs: typeof iat === 'number' ? iat : undefined };
    const { authTime, sessionUid } = token as { authTime?: unknown; sessionUid?: unknown };
    return typeof authTime === 'number'
      ? { loginTs: authTime, sessionUid: typeof sessionUid === 'string' ? sessionUid : undefined }
      : undefined;
  }
  const session = (ctx.oidc as { session?: { loginTs?: number; uid?: string } } | undefined)?.session;
  return session ? { loginTs: session.loginTs, sessionUid: session.uid } : undefined;
}

/**
 * The one place that knows oidc-provider's configuration shape. Secure defaults per
 * docs/security.md: no dev interactions, PKCE for every client, code flow only, rotating refresh
 * tokens, short JWT access tokens for the API audience.
 */
export function buildProviderConfiguration({
  config,
  accounts,
  adapter,
  jwks,
  cookieKeys,
  devicePages,
}: ProviderConfigDeps): Configuration {
  const https = config.issuer.startsWith('https://');
  const cookieBase = { httpOnly: true, sameSite: 'lax' as const, secure: https, signed: true };
  const sessionLifetime = sessionTtl({ idleSeconds: config.ttl.sessionIdle, maxSeconds: config.ttl.sessionMax });
  const pages = providerPages(config.issuer);
  return {
    adapter,
    jwks,
    cookies: {
      keys: [...cookieKeys],
      // __Host- needs Secure and Path=/: the session cookie; path-scoped ones get __Secure-.
      names: https
        ? { session: '__Host-portcullis.session', interaction: '__Secure-portcullis.interaction', resume: '__Secure-portcullis.resume' }
        : { session: 'portcullis.session', interaction: 'portcullis.interaction', resume: 'portcullis.resume' },
      long: cookieBase,
      short: cookieBase,
    },
    /**
     * Only an active account, and only for a sign-in that still counts (R8, R13): the session's
     * at /auth (and the device flow), the code's, device code's or refresh token's authTime at
     * /token. A sign-in older than the account's "sessions not valid before" time is treated as
     * no sign-in at all: the login prompt again (prompt=none: login_required), invalid_grant at
     * /token. The cutoff comes with the account row read here anyway, so this costs no query.
     */
    async findAccount(ctx, sub, token) {
      const user = await accounts.findActive(sub);
      if (!user) return undefined;
      const signIn = signInOf(ctx, token);
      if (signIn && !signInCounts(user, signIn)) return undefined;
      return { accountId: user.id, claims: () => accountClaims(user) };
    },
    claims: {
      // acr/amr/auth_time ride on `openid` so every ID token says how the user signed in.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', 'updated_at'],
      email: ['email', 'email_verified'],
      sid: null,
      iss: null,
    },
    // API scopes are listed too, so a client's registered `scope` can allow or withhold them.
    scopes: [...OIDC_SCOPES, ...API_SCOPES],
    acrValues: Object.values(ACR),
    responseTypes: ['code', 'none'],
    pkce: { required: () => true },
    // client_secret_jwt would need the plain secret; secrets are stored hashed (docs/clients.md).
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: {
      // A client stored without `scope` (older rows, SQL by hand) is limited like a new one:
      // oidc-provider lets a client without `scope` request every scope, `admin` included.
      scope: DEFAULT_CLIENT_SCOPE,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    rotateRefreshToken: true,
    // A client's own URLs (jwks_uri, sector_identifier_uri) are read with a size and time limit (R15).
    fetch: clientFetch,
    fetchResponseBodyLimits: { ...CLIENT_FETCH_BODY_LIMITS },
    // RFC 9068 §2.2.1: JWT access tokens say when and how the user signed in, so the API can
    // demand a recent sign-in for dangerous operations (RFC 9470 step-up, e.g. DELETE /v1/me).
    extraTokenClaims(ctx, token) {
      if (token.kind !== 'AccessToken') return undefined;
      const { AuthorizationCode: code, RefreshToken: refresh, DeviceCode: device } = ctx.oidc.entities;
      const source = code ?? refresh ?? device;
      if (!source?.authTime) return undefined;
      return { auth_time: source.authTime, ...(source.acr ? { acr: source.acr } : {}), ...(source.amr ? { amr: source.amr } : {}) };
    },
    ttl: {
      AccessToken: config.ttl.accessToken,
      ClientCredentials: config.ttl.accessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: (_ctx, session) => sessionLifetime(session),
      Interaction: config.ttl.interaction,
      Grant: config.ttl.grant,
      DeviceCode: config.clients.deviceCodeTtl,
    },
    // Absolute, from ISSUER (R2): an emitted URL never depends on the request.
    interactions: {
      policy: buildInteractionPolicy(),
      url: (_ctx, interaction) => new URL(`/interaction/${interaction.uid}`, config.issuer).href,
    },
    // The account page's own first-party client (static: not in the database, not editable).
    clients: [accountClientMetadata(config.issuer)],
    // `require_mfa: true` makes every sign-in to the client pass a second factor (acr loa:2).
    // `introspect_any_token: true` (operator-only, applyClientPolicy) lets a resource server
    // introspect every client's tokens.
    extraClientMetadata: {
      properties: ['require_mfa', 'introspect_any_token'],
      validator(_ctx, key, value) {
        if ((key === 'require_mfa' || key === 'introspect_any_token') && value !== undefined && typeof value !== 'boolean')
          throw new errors.InvalidClientMetadata(`${key} must be a boolean`);
      },
    },
    features: {
      devInteractions: { enabled: false },
      // OIDC Core §5.5: only the claims every ID token carries (sub, acr, amr, auth_time); an
      // essential acr is met by the MFA policy (second-factor-steps.ts) or refused (claims-parameter.ts).
      claimsParameter: { enabled: true, assertClaimsParameter: (ctx, claims, client) => assertClaimsParameter(ctx, claims, client) },
      introspection: {
        enabled: true,
        // RFC 7662 §4: only confidential clients, about their own tokens; a resource server an
        // operator flagged `introspect_any_token` (never a client itself, R13) about any token.
        // Holding `admin` is no such trust: it only lets a client ask users for admin tokens.
        // oidc-provider does not look up the account here: a disabled user's token is inactive (T28),
        // and so is one whose sign-in (or, for an access token, issue) is older than the account's
        // sessions-not-before, whether or not its grant has been revoked yet (R13).
        async allowedPolicy(ctx, client, token) {
          if (client.clientAuthMethod === 'none') return false;
          if (token.clientId !== client.clientId && client.metadata().introspect_any_token !== true) return false;
          const accountId = token.kind === 'ClientCredentials' ? undefined : token.accountId;
          if (!accountId) return true;
          const user = await accounts.findActive(accountId);
          const signIn = signInOf(ctx, token);
          return user !== undefined && (!signIn || signInCounts(user, signIn));
        },
      },
      // RFC 7009 §2.1: a client revokes only its own tokens (a public CLI may revoke its own
      // refresh token at logout); revoking a refresh or access token revokes its whole grant.
      revocation: {
        enabled: true,
        allowedPolicy(_ctx, client, token) {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      clientCredentials: { enabled: true },
      // RFC 8628: 8 characters from 20 consonants (no vowels, so no words; no 0/O or 1/I).
      deviceFlow: { enabled: true, charset: 'base-20', mask: '****-****', ...devicePages },
      // RFC 7591 behind initial access tokens (`portcullis iat create`); RFC 7592 with rotation.
      registration: {
        enabled: true,
        initialAccessToken: true,
        // `grant:<scope>` policies only mark what an operator allowed; registrationPolicy reads them.
        policies: {
          [BASE_REGISTRATION_POLICY]: registrationPolicy,
          ...Object.fromEntries(IAT_GRANTABLE_SCOPES.map((scope) => [grantPolicy(scope), () => undefined])),
        },
        secretFactory: () => randomBytes(32).toString('base64url'),
      },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      // RFC 9449 sender-constrained tokens; the resource API checks cnf.jkt against the proof.
      dPoP: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No resource named: API scopes are dropped (authorization, PAR, device) or refused
        // (client_credentials), never granted as OpenID scopes (R13, api-scope-grants.ts).
        defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          withoutResource(ctx, config.apiUrl);
          return undefined;
        },
        useGrantedResource: () => false,
        // Only the API (API_URL): JWT access tokens with the API scopes this client may hold (R13).
        getResourceServerInfo: (ctx, resourceIndicator, client) =>
          apiResourceServer(ctx, resourceIndicator, client, { url: config.apiUrl, accessTokenTtl: config.ttl.accessToken }),
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: pages.logoutSource,
        postLogoutSuccessSource: pages.postLogoutSuccessSource,
      },
    },
    /**
     * The default lookup (this session's grant for the client), plus one rule for the device
     * flow: the user already approved exactly these scopes on our confirmation page (which
     * showed the client, the scopes, when and from where), so a separate consent page would
     * only ask again. The grant gets what was requested, limited to what the client may have.
     */
    async loadExistingGrant(ctx) {
      const { account, client } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(client?.clientId ?? '');
      const existing = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      const deviceRoute = ctx.oidc.route === 'code_verification' || ctx.oidc.route === 'device_resume';
      if (!deviceRoute || !ctx.oidc.deviceCode || !account || !client) return existing;
      const grant = existing ?? new ctx.oidc.provider.Grant({ accountId: account.accountId, clientId: client.clientId });
      const requested = ctx.oidc.requestParamScopes;
      // API scopes are in the provider's scope list too (provider-config scopes): they are granted
      // for the API resource, never as OpenID scopes (R13), as on the consent page.
      grantConsented(grant, {
        openIdScopes: ctx.oidc.requestParamOIDCScopes,
        resourceScopes: Object.entries(ctx.oidc.resourceServers ?? {}).map(([indicator, server]) => {
          const allowed = new Set(server.scope.split(' '));
          return [indicator, [...requested].filter((scope) => allowed.has(scope))];
        }),
      });
      await grant.save();
      return grant;
    },
    renderError: pages.renderError,
  };
}
