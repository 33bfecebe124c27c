import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';

/**
 * Authorization requests for code + PKCE (S256), the one shape every flow in the suite starts
 * with: a fresh code verifier and its challenge, a random state, redirect_uri RP_REDIRECT and
 * scope openid unless the caller's parameters say otherwise (a given state replaces the random
 * one). A nonce is sent only when the caller passes one, since openid-client then expects it back.
 */
export const RP_REDIRECT = 'https://rp.example.test/cb';

export type AuthorizationRequest = { url: URL; verifier: string; state: string };

function withDefaults(challenge: string, state: string, params: Record<string, string>) {
  return { redirect_uri: RP_REDIRECT, scope: 'openid', state, code_challenge: challenge, code_challenge_method: 'S256', ...params };
}

/** Built by openid-client for a discovered client (the relying party's own way). */
export async function authorizationRequest(rp: client.Configuration, params: Record<string, string> = {}): Promise<AuthorizationRequest> {
  const verifier = client.randomPKCECodeVerifier();
  const query = withDefaults(await client.calculatePKCECodeChallenge(verifier), client.randomState(), params);
  return { url: client.buildAuthorizationUrl(rp, query), verifier, state: query.state };
}

/** Built by hand against the issuer's /auth for a client id, without discovery. */
export function authorizationRequestTo(issuer: string, clientId: string, params: Record<string, string> = {}): AuthorizationRequest {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = withDefaults(challenge, randomBytes(8).toString('hex'), params);
  const url = new URL('/auth', issuer);
  url.search = new URLSearchParams({ client_id: clientId, response_type: 'code', ...query }).toString();
  return { url, verifier, state: query.state };
}
