/**
 * Every HTTP route of both servers, in one place: what the fuzz pass (test/security/http-fuzz.test.ts)
 * aims at. The same test compares this list with what the servers register (our koa routers,
 * oidc-provider's route names, the API's route table) and fails on a route missing here, so a
 * new endpoint cannot escape the fuzzer. Paths use `:name` for parameters.
 */
export type SurfaceOwner =
  /** oidc-provider's own routes; `name` is its route name (ctx.oidc.route). */
  | 'provider'
  /** Our @koa/router routers on the auth server (interaction and account pages). */
  | 'interaction'
  | 'account'
  /** The resource API's route table (src/api/routes); `name` is the operationId. */
  | 'api'
  /** Plain middleware that answers a fixed path (health, static files, metadata, OpenAPI). */
  | 'middleware';

export type SurfaceRoute = {
  server: 'auth' | 'api';
  owner: SurfaceOwner;
  methods: readonly string[];
  path: string;
  name?: string;
};

const provider = (name: string, methods: string[], path: string): SurfaceRoute => ({
  server: 'auth',
  owner: 'provider',
  name,
  methods,
  path,
});
const ours = (owner: 'interaction' | 'account', methods: string[], path: string): SurfaceRoute => ({
  server: 'auth',
  owner,
  methods,
  path,
});
const api = (name: string, methods: string[], path: string): SurfaceRoute => ({ server: 'api', owner: 'api', name, methods, path });
const fixed = (server: 'auth' | 'api', path: string): SurfaceRoute => ({ server, owner: 'middleware', methods: ['GET', 'HEAD'], path });

export const AUTH_ROUTES: readonly SurfaceRoute[] = [
  fixed('auth', '/healthz'),
  fixed('auth', '/readyz'),
  fixed('auth', '/static/style.css'),
  fixed('auth', '/static/webauthn.js'),
  fixed('auth', '/static/simplewebauthn-browser.js'),

  provider('authorization', ['GET'], '/auth'),
  provider('resume', ['GET'], '/auth/:uid'),
  provider('userinfo', ['GET', 'POST'], '/me'),
  provider('cors.userinfo', ['OPTIONS'], '/me'),
  provider('token', ['POST'], '/token'),
  provider('cors.token', ['OPTIONS'], '/token'),
  provider('jwks', ['GET'], '/jwks'),
  provider('cors.jwks', ['OPTIONS'], '/jwks'),
  provider('discovery', ['GET'], '/.well-known/oauth-authorization-server'),
  provider('cors.discovery', ['OPTIONS'], '/.well-known/oauth-authorization-server'),
  provider('discovery', ['GET'], '/.well-known/openid-configuration'),
  provider('cors.discovery', ['OPTIONS'], '/.well-known/openid-configuration'),
  provider('registration', ['POST'], '/reg'),
  provider('client', ['GET'], '/reg/:clientId'),
  provider('client_update', ['PUT'], '/reg/:clientId'),
  provider('client_delete', ['DELETE'], '/reg/:clientId'),
  provider('revocation', ['POST'], '/token/revocation'),
  provider('cors.revocation', ['OPTIONS'], '/token/revocation'),
  provider('introspection', ['POST'], '/token/introspection'),
  provider('cors.introspection', ['OPTIONS'], '/token/introspection'),
  provider('end_session_confirm', ['POST'], '/session/end/confirm'),
  provider('end_session', ['GET'], '/session/end'),
  provider('end_session_success', ['GET'], '/session/end/success'),
  provider('device_authorization', ['POST'], '/device/auth'),
  provider('cors.device_authorization', ['OPTIONS'], '/device/auth'),
  provider('code_verification', ['GET', 'POST'], '/device'),
  provider('device_resume', ['GET'], '/device/:uid'),
  provider('pushed_authorization_request', ['POST'], '/request'),
  provider('cors.pushed_authorization_request', ['OPTIONS'], '/request'),

  ours('interaction', ['GET', 'HEAD'], '/interaction/:uid'),
  ours('interaction', ['POST'], '/interaction/:uid/login'),
  ours('interaction', ['POST'], '/interaction/:uid/passkey/options'),
  ours('interaction', ['POST'], '/interaction/:uid/passkey'),
  ours('interaction', ['POST'], '/interaction/:uid/mfa/:method'),
  ours('interaction', ['POST'], '/interaction/:uid/enroll/totp'),
  ours('interaction', ['POST'], '/interaction/:uid/enroll/totp/begin'),
  ours('interaction', ['POST'], '/interaction/:uid/enroll/webauthn'),
  ours('interaction', ['POST'], '/interaction/:uid/continue'),
  ours('interaction', ['POST'], '/interaction/:uid/confirm'),
  ours('interaction', ['POST'], '/interaction/:uid/abort'),
  // Self-registration and verification at sign-in (issue 12): registered when SELF_REGISTRATION and REQUIRE_VERIFIED_EMAIL are on.
  ours('interaction', ['GET', 'HEAD'], '/interaction/:uid/sign-up'),
  ours('interaction', ['POST'], '/interaction/:uid/sign-up'),
  ours('interaction', ['GET', 'HEAD'], '/interaction/:uid/sign-up/verify'),
  ours('interaction', ['POST'], '/interaction/:uid/sign-up/verify'),
  ours('interaction', ['POST'], '/interaction/:uid/sign-up/resend'),
  ours('interaction', ['GET', 'HEAD'], '/interaction/:uid/verify-email'),
  ours('interaction', ['POST'], '/interaction/:uid/verify-email'),
  ours('interaction', ['POST'], '/interaction/:uid/verify-email/send'),

  ours('account', ['GET', 'HEAD'], '/account'),
  ours('account', ['POST'], '/account/passkeys/options'),
  ours('account', ['GET', 'HEAD'], '/account/login'),
  ours('account', ['GET', 'HEAD'], '/account/callback'),
  ours('account', ['POST'], '/account/password'),
  ours('account', ['GET', 'HEAD'], '/account/totp'),
  ours('account', ['POST'], '/account/totp'),
  ours('account', ['POST'], '/account/totp/begin'),
  ours('account', ['POST'], '/account/totp/remove'),
  ours('account', ['POST'], '/account/passkeys'),
  ours('account', ['POST'], '/account/passkeys/:id/rename'),
  ours('account', ['POST'], '/account/passkeys/:id/remove'),
  ours('account', ['POST'], '/account/recovery-codes'),
  ours('account', ['POST'], '/account/grants/:id/revoke'),
  ours('account', ['POST'], '/account/offers/:recordId/accept'),
  ours('account', ['POST'], '/account/offers/:recordId/decline'),
  ours('account', ['POST'], '/account/shared-with-me/:recordId/leave'),
  ours('account', ['POST'], '/account/notices/reuse/dismiss'),
  ours('account', ['POST'], '/account/sign-out-everywhere'),
  ours('account', ['POST'], '/account/email'),
  ours('account', ['GET', 'HEAD'], '/account/email/verify'),
  ours('account', ['POST'], '/account/email/verify'),
  ours('account', ['POST'], '/account/email/resend'),
  ours('account', ['POST'], '/account/email/cancel'),
];

export const API_ROUTES: readonly SurfaceRoute[] = [
  fixed('api', '/healthz'),
  fixed('api', '/readyz'),
  fixed('api', '/openapi.json'),
  fixed('api', '/.well-known/oauth-protected-resource'),

  api('getMe', ['GET'], '/v1/me'),
  api('exportMe', ['GET'], '/v1/me/export'),
  api('eraseMe', ['DELETE'], '/v1/me'),
  api('listRecords', ['GET'], '/v1/records'),
  api('createRecord', ['POST'], '/v1/records'),
  api('getRecord', ['GET'], '/v1/records/:id'),
  api('updateRecord', ['PATCH'], '/v1/records/:id'),
  api('deleteRecord', ['DELETE'], '/v1/records/:id'),
  api('shareRecord', ['POST'], '/v1/records/:id/shares'),
  api('unshareRecord', ['DELETE'], '/v1/records/:id/shares/:userId'),
  api('listIncomingOffers', ['GET'], '/v1/shares/incoming'),
  api('acceptOffer', ['POST'], '/v1/shares/incoming/:recordId/accept'),
  api('declineOffer', ['POST'], '/v1/shares/incoming/:recordId/decline'),
  api('listReceivedShares', ['GET'], '/v1/shares/received'),
  api('leaveShare', ['DELETE'], '/v1/shares/received/:recordId'),
  api('listUsers', ['GET'], '/v1/admin/users'),
  api('getUser', ['GET'], '/v1/admin/users/:id'),
  api('updateUser', ['PATCH'], '/v1/admin/users/:id'),
  api('listAuditEvents', ['GET'], '/v1/admin/audit'),
];

export const ALL_ROUTES: readonly SurfaceRoute[] = [...AUTH_ROUTES, ...API_ROUTES];

/** `METHOD /path` keys, one per method, for comparing with what the servers register. */
export const routeKeys = (routes: readonly SurfaceRoute[]): string[] => routes.flatMap((r) => r.methods.map((m) => `${m} ${r.path}`));

/** The parameter names of a path template. */
export const paramsOf = (path: string): string[] => [...path.matchAll(/:(\w+)/g)].map((m) => m[1] ?? '');
