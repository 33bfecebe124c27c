import type { AuthenticationResponseJSON, AuthenticatorTransport, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { WebAuthnCredentialRow } from '../store/webauthn-credentials.ts';

/**
 * What both WebAuthn ceremonies (registration, authentication) share: their outcome, how long
 * they may take, how a stored credential is named to the browser, and the browser's JSON answer
 * as it arrives in a form field (shapes only, the library verifies the content).
 */

/** How long a ceremony may take: the challenge dies after this (single use either way). */
export const CHALLENGE_TTL_SECONDS = 300;
export const TIMEOUT_MS = CHALLENGE_TTL_SECONDS * 1000;

export type WebAuthnPurpose = 'register' | 'passwordless' | 'second-factor';

export type WebAuthnFailure =
  | 'no_challenge'
  | 'unknown_credential'
  | 'wrong_user'
  | 'flagged_credential'
  | 'counter_regression'
  | 'verification_failed'
  | 'duplicate_credential'
  | 'malformed';

export type WebAuthnSuccess = { ok: true; userId: string; credentialId: string; deviceType: string; userVerified: boolean };
export type WebAuthnResult =
  WebAuthnSuccess | { ok: false; reason: WebAuthnFailure; userId?: string | undefined; credentialId?: string | undefined };

export const toDescriptor = (c: WebAuthnCredentialRow) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] });

/** Parses the browser's JSON answer; shape checks only, the library verifies the content. */
function parseCredentialJson(input: string): { id: string } | undefined {
  if (input.length === 0 || input.length > 16_384) return undefined;
  try {
    const value = JSON.parse(input) as Record<string, unknown> | null;
    if (!value || typeof value !== 'object' || typeof value.id !== 'string' || typeof value.rawId !== 'string') return undefined;
    if (value.type !== 'public-key' || typeof value.response !== 'object' || value.response === null) return undefined;
    return value as { id: string };
  } catch {
    return undefined;
  }
}

/** The challenge the authenticator signed, from the answer's clientDataJSON (checked again by the library). */
export function signedChallenge(response: AuthenticationResponseJSON): string | undefined {
  try {
    const data = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown };
    return typeof data.challenge === 'string' ? data.challenge : undefined;
  } catch {
    return undefined;
  }
}

export const parseRegistrationJson = (input: string): RegistrationResponseJSON | undefined =>
  parseCredentialJson(input) as RegistrationResponseJSON | undefined;
export const parseAuthenticationJson = (input: string): AuthenticationResponseJSON | undefined =>
  parseCredentialJson(input) as AuthenticationResponseJSON | undefined;
