import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { MfaStore } from '../store/mfa.ts';
import { DuplicateCredentialError, type WebAuthnCredentialRow, type WebAuthnCredentialStore } from '../store/webauthn-credentials.ts';

/** How long a ceremony may take: the challenge dies after this (single use either way). */
const CHALLENGE_TTL_SECONDS = 300;
const TIMEOUT_MS = CHALLENGE_TTL_SECONDS * 1000;

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
export type WebAuthnResult = WebAuthnSuccess | { ok: false; reason: WebAuthnFailure; userId?: string | undefined; credentialId?: string | undefined };

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

export const parseRegistrationJson = (input: string): RegistrationResponseJSON | undefined => parseCredentialJson(input) as RegistrationResponseJSON | undefined;
export const parseAuthenticationJson = (input: string): AuthenticationResponseJSON | undefined => parseCredentialJson(input) as AuthenticationResponseJSON | undefined;

export function createWebAuthnService({ credentials, store, rpId, rpName, origin }: {
  credentials: WebAuthnCredentialStore;
  store: MfaStore;
  rpId: string;
  rpName: string;
  origin: string;
}) {
  const toDescriptor = (c: WebAuthnCredentialRow) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] });

  return {
    list: (userId: string) => credentials.listByUser(userId),
    rename: (userId: string, id: string, name: string) => credentials.rename(userId, id, name),
    remove: (userId: string, id: string) => credentials.remove(userId, id),
    removeAll: (userId: string) => credentials.removeAll(userId),

    async hasCredentials(userId: string): Promise<boolean> {
      return (await credentials.listByUser(userId)).length > 0;
    },

    /** Registration options: a discoverable credential (passkey), existing ones excluded. */
    async registrationOptions(input: { binding: string; userId: string; email: string; displayName: string }): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const existing = await credentials.listByUser(input.userId);
      const options = await generateRegistrationOptions({
        rpName,
        rpID: rpId,
        userName: input.email,
        userDisplayName: input.displayName,
        userID: new Uint8Array(await credentials.userHandle(input.userId)),
        attestationType: 'none',
        timeout: TIMEOUT_MS,
        excludeCredentials: existing.map(toDescriptor),
        authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
      });
      await store.putChallenge({ binding: input.binding, purpose: 'register', challenge: options.challenge, userId: input.userId, ttlSeconds: CHALLENGE_TTL_SECONDS });
      return options;
    },

    async finishRegistration(input: { binding: string; userId: string; response: RegistrationResponseJSON; name: string }): Promise<WebAuthnResult> {
      const stored = await store.takeChallenge(input.binding, 'register');
      if (stored?.userId !== input.userId) return { ok: false, reason: 'no_challenge', userId: input.userId };
      let verification;
      try {
        verification = await verifyRegistrationResponse({
          response: input.response,
          expectedChallenge: stored.challenge,
          expectedOrigin: origin,
          expectedRPID: rpId,
          requireUserVerification: false,
        });
      } catch {
        return { ok: false, reason: 'verification_failed', userId: input.userId };
      }
      if (!verification.verified) return { ok: false, reason: 'verification_failed', userId: input.userId };
      const info = verification.registrationInfo;
      try {
        await credentials.insert({
          id: info.credential.id,
          user_id: input.userId,
          public_key: Buffer.from(info.credential.publicKey),
          counter: info.credential.counter,
          transports: info.credential.transports ?? [],
          device_type: info.credentialDeviceType,
          backed_up: info.credentialBackedUp,
          aaguid: info.aaguid,
          name: input.name,
        });
      } catch (error) {
        if (error instanceof DuplicateCredentialError) return { ok: false, reason: 'duplicate_credential', userId: input.userId, credentialId: info.credential.id };
        throw error;
      }
      return { ok: true, userId: input.userId, credentialId: info.credential.id, deviceType: info.credentialDeviceType, userVerified: info.userVerified };
    },

    /**
     * Sign-in options. Passwordless: no allow list (discoverable credentials) and user
     * verification required. Second factor: only this user's credentials, presence enough
     * unless `userVerification` (a passkey-level request) asks for it.
     */
    async authenticationOptions(input: { binding: string; purpose: 'passwordless' | 'second-factor'; userId?: string | undefined; userVerification?: boolean }): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const allow = input.purpose === 'second-factor' && input.userId ? (await credentials.listByUser(input.userId)).map(toDescriptor) : [];
      const options = await generateAuthenticationOptions({
        rpID: rpId,
        timeout: TIMEOUT_MS,
        allowCredentials: allow,
        userVerification: input.purpose === 'passwordless' || input.userVerification ? 'required' : 'preferred',
      });
      await store.putChallenge({ binding: input.binding, purpose: input.purpose, challenge: options.challenge, userId: input.userId, ttlSeconds: CHALLENGE_TTL_SECONDS });
      return options;
    },

    /**
     * Verifies an assertion (W3C WebAuthn §7.2 via SimpleWebAuthn): the single-use challenge of
     * this binding and purpose, origin, RP ID, type, UP (and UV when passwordless), signature,
     * that the credential belongs to the expected account, and — only once the signature is
     * verified — that the counter moves forward.
     */
    async verifyAuthentication(input: {
      binding: string;
      purpose: 'passwordless' | 'second-factor';
      response: AuthenticationResponseJSON;
      expectedUserId?: string | undefined;
      /** Second factor at passkey level: the authenticator must have verified the user. */
      requireUserVerification?: boolean;
    }): Promise<WebAuthnResult> {
      const stored = await store.takeChallenge(input.binding, input.purpose);
      if (!stored || (input.expectedUserId && stored.userId !== input.expectedUserId)) return { ok: false, reason: 'no_challenge', userId: input.expectedUserId };
      const credential = await credentials.find(input.response.id);
      if (!credential) return { ok: false, reason: 'unknown_credential', userId: input.expectedUserId };
      const base = { userId: credential.user_id, credentialId: credential.id };
      if (input.expectedUserId && credential.user_id !== input.expectedUserId) return { ok: false, reason: 'wrong_user', userId: input.expectedUserId, credentialId: credential.id };
      if (input.purpose === 'passwordless') {
        // The authenticator's user handle must name the credential's owner.
        const handle = input.response.response.userHandle;
        const owner = handle ? await credentials.userByHandle(Buffer.from(handle, 'base64url')) : undefined;
        if (owner !== credential.user_id) return { ok: false, reason: 'wrong_user', ...base };
      }
      if (credential.flagged_at) return { ok: false, reason: 'flagged_credential', ...base };
      const previous = Number(credential.counter);
      let verification;
      try {
        verification = await verifyAuthenticationResponse({
          response: input.response,
          expectedChallenge: stored.challenge,
          expectedOrigin: origin,
          expectedRPID: rpId,
          expectedType: 'webauthn.get',
          // The library compares counters before it checks the signature, so anyone holding the
          // credential id could get the credential flagged with an unsigned assertion (R6). With
          // 0 here it never refuses on the counter; the counter is checked below, once signed.
          credential: { id: credential.id, publicKey: new Uint8Array(credential.public_key), counter: 0, transports: credential.transports },
          requireUserVerification: input.purpose === 'passwordless' || input.requireUserVerification === true,
        });
      } catch {
        return { ok: false, reason: 'verification_failed', ...base };
      }
      if (!verification.verified) return { ok: false, reason: 'verification_failed', ...base };
      const info = verification.authenticationInfo;
      // W3C WebAuthn §7.2, the signature-counter step: a counter that does not move forward (when either side is
      // non-zero) from a genuinely signed assertion means a possible cloned authenticator: block
      // the credential until the user looks at it.
      if ((info.newCounter > 0 || previous > 0) && info.newCounter <= previous) {
        await credentials.flag(credential.id);
        return { ok: false, reason: 'counter_regression', ...base };
      }
      if (!(await credentials.recordUse(credential.id, previous, info.newCounter))) return { ok: false, reason: 'counter_regression', ...base };
      return { ok: true, userId: credential.user_id, credentialId: credential.id, deviceType: info.credentialDeviceType, userVerified: info.userVerified };
    },
  };
}

export type WebAuthnService = ReturnType<typeof createWebAuthnService>;
