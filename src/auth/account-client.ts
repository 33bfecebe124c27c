import type { ClientMetadata } from 'oidc-provider';

/**
 * The account page signs people in through the provider like any other application (the way
 * Keycloak's account console does), so every login rule — second factors, lockout, step-up —
 * applies to it too. It is a static, first-party client: response_type=none (no code, no
 * tokens: the result is the provider's own session, which the page then reads), consent is
 * implied, and it cannot be changed or removed through the registration or admin APIs.
 */
export const ACCOUNT_CLIENT_ID = 'portcullis-account';

export function accountClientMetadata(issuer: string): ClientMetadata {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'Your account',
    redirect_uris: [new URL('/account/callback', issuer).href],
    response_types: ['none'] as ClientMetadata['response_types'],
    grant_types: [],
    token_endpoint_auth_method: 'none',
  };
}
