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
import { randomBytes } from 'node:crypto';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
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
export type WebAuthnResult =
  WebAuthnSuccess | { ok: false; reason: WebAuthnFailure; userId?: string | undefined; credentialId?: string | undefined };

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
function signedChallenge(response: AuthenticationResponseJSON): string | undefined {
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

export function createWebAuthnService({
  credentials,
  store,
  box,
  once,
  rpId,
  rpName,
  origin,
}: {
  credentials: WebAuthnCredentialStore;
  store: MfaStore;
  /** Seals passwordless challenges (the challenge carries its own binding and expiry). */
  box: CryptoBox;
  /** Claims a passwordless challenge's single use once its answer verified. */
  once: ReplayStore;
  rpId: string;
  rpName: string;
  origin: string;
}) {
  const toDescriptor = (c: WebAuthnCredentialRow) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] });

  /**
   * Passwordless challenges are asked for by anyone who opens a sign-in request, so they are not
   * stored (R13: one row per anonymous request was unbounded): the challenge is 16 random bytes
   * and an expiry, sealed under the master key with the interaction and purpose as associated
   * data. It opens only for that interaction, before it expires; its single use is claimed once
   * an answer verified (verifyAuthentication). The other ceremonies (second factor, passkey
   * registration) follow a password or a session and keep one stored row per binding and purpose.
   */
  const sealedAad = SEAL_CONTEXT.passwordlessChallenge;
  /** The sealed envelope; its UTF-8 bytes are the challenge (the options carry them base64url-encoded, as always). */
  function sealChallenge(binding: string): string {
    return box.seal(
      JSON.stringify({ n: randomBytes(16).toString('base64url'), e: Math.floor(Date.now() / 1000) + CHALLENGE_TTL_SECONDS }),
      sealedAad(binding),
    );
  }
  /** The seconds the sealed challenge has left for this binding, or undefined when it is not one of ours, another's, or expired. */
  function openChallenge(binding: string, challenge: string): number | undefined {
    try {
      const { e } = JSON.parse(box.open(Buffer.from(challenge, 'base64url').toString('utf8'), sealedAad(binding)).toString('utf8')) as {
        e?: unknown;
      };
      const left = typeof e === 'number' ? e - Math.floor(Date.now() / 1000) : 0;
      return left > 0 ? left : undefined;
    } catch {
      return undefined;
    }
  }

  return {
    list: (userId: string) => credentials.listByUser(userId),
    rename: (userId: string, id: string, name: string) => credentials.rename(userId, id, name),
    remove: (userId: string, id: string) => credentials.remove(userId, id),
    removeAll: (userId: string) => credentials.removeAll(userId),

    async hasCredentials(userId: string): Promise<boolean> {
      return (await credentials.listByUser(userId)).length > 0;
    },

    /** Registration options: a discoverable credential (passkey), existing ones excluded. */
    async registrationOptions(input: {
      binding: string;
      userId: string;
      email: string;
      displayName: string;
    }): Promise<PublicKeyCredentialCreationOptionsJSON> {
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
      await store.putChallenge({
        binding: input.binding,
        purpose: 'register',
        challenge: options.challenge,
        userId: input.userId,
        ttlSeconds: CHALLENGE_TTL_SECONDS,
      });
      return options;
    },

    async finishRegistration(input: {
      binding: string;
      userId: string;
      response: RegistrationResponseJSON;
      name: string;
    }): Promise<WebAuthnResult> {
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
        if (error instanceof DuplicateCredentialError)
          return { ok: false, reason: 'duplicate_credential', userId: input.userId, credentialId: info.credential.id };
        throw error;
      }
      return {
        ok: true,
        userId: input.userId,
        credentialId: info.credential.id,
        deviceType: info.credentialDeviceType,
        userVerified: info.userVerified,
      };
    },

    /**
     * Sign-in options. Passwordless: no allow list (discoverable credentials) and user
     * verification required. Second factor: only this user's credentials, presence enough
     * unless `userVerification` (a passkey-level request) asks for it.
     */
    async authenticationOptions(input: {
      binding: string;
      purpose: 'passwordless' | 'second-factor';
      userId?: string | undefined;
      userVerification?: boolean;
    }): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const allow = input.purpose === 'second-factor' && input.userId ? (await credentials.listByUser(input.userId)).map(toDescriptor) : [];
      const passwordless = input.purpose === 'passwordless';
      const options = await generateAuthenticationOptions({
        rpID: rpId,
        timeout: TIMEOUT_MS,
        allowCredentials: allow,
        userVerification: passwordless || input.userVerification ? 'required' : 'preferred',
        ...(passwordless ? { challenge: sealChallenge(input.binding) } : {}),
      });
      if (!passwordless)
        await store.putChallenge({
          binding: input.binding,
          purpose: input.purpose,
          challenge: options.challenge,
          userId: input.userId,
          ttlSeconds: CHALLENGE_TTL_SECONDS,
        });
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
      let expectedChallenge: string;
      /** Passwordless: the sealed challenge's remaining lifetime (its single use is claimed after verification). */
      let claimFor: number | undefined;
      if (input.purpose === 'passwordless') {
        const challenge = signedChallenge(input.response);
        claimFor = challenge === undefined ? undefined : openChallenge(input.binding, challenge);
        if (challenge === undefined || claimFor === undefined) return { ok: false, reason: 'no_challenge', userId: input.expectedUserId };
        expectedChallenge = challenge;
      } else {
        const stored = await store.takeChallenge(input.binding, input.purpose);
        if (!stored || (input.expectedUserId && stored.userId !== input.expectedUserId))
          return { ok: false, reason: 'no_challenge', userId: input.expectedUserId };
        expectedChallenge = stored.challenge;
      }
      const credential = await credentials.find(input.response.id);
      if (!credential) return { ok: false, reason: 'unknown_credential', userId: input.expectedUserId };
      const base = { userId: credential.user_id, credentialId: credential.id };
      if (input.expectedUserId && credential.user_id !== input.expectedUserId)
        return { ok: false, reason: 'wrong_user', userId: input.expectedUserId, credentialId: credential.id };
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
          expectedChallenge,
          expectedOrigin: origin,
          expectedRPID: rpId,
          expectedType: 'webauthn.get',
          // The library compares counters before it checks the signature, so anyone holding the
          // credential id could get the credential flagged with an unsigned assertion (R6). With
          // 0 here it never refuses on the counter; the counter is checked below, once signed.
          credential: {
            id: credential.id,
            publicKey: new Uint8Array(credential.public_key),
            counter: 0,
            transports: credential.transports,
          },
          requireUserVerification: input.purpose === 'passwordless' || input.requireUserVerification === true,
        });
      } catch {
        return { ok: false, reason: 'verification_failed', ...base };
      }
      if (!verification.verified) return { ok: false, reason: 'verification_failed', ...base };
      // A sealed challenge is used once: the first verified answer claims it (a counter of 0, as
      // many passkeys keep, would not tell a replay apart).
      if (claimFor !== undefined && !(await once.firstUse(`webauthn:${expectedChallenge}`, claimFor)))
        return { ok: false, reason: 'no_challenge', ...base };
      const info = verification.authenticationInfo;
      // W3C WebAuthn §7.2, the signature-counter step: a counter that does not move forward (when either side is
      // non-zero) from a genuinely signed assertion means a possible cloned authenticator: block
      // the credential until the user looks at it.
      if ((info.newCounter > 0 || previous > 0) && info.newCounter <= previous) {
        await credentials.flag(credential.id);
        return { ok: false, reason: 'counter_regression', ...base };
      }
      if (!(await credentials.recordUse(credential.id, previous, info.newCounter)))
        return { ok: false, reason: 'counter_regression', ...base };
      return {
        ok: true,
        userId: credential.user_id,
        credentialId: credential.id,
        deviceType: info.credentialDeviceType,
        userVerified: info.userVerified,
      };
    },
  };
}

export type WebAuthnService = ReturnType<typeof createWebAuthnService>;
