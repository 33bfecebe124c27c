import {
  generateAuthenticationOptions,
  verifyAuthenticationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import type { CryptoBox } from '../shared/crypto-box.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { MfaStore } from '../store/mfa.ts';
import type { WebAuthnCredentialStore } from '../store/webauthn-credentials.ts';
import { CHALLENGE_TTL_SECONDS, signedChallenge, TIMEOUT_MS, toDescriptor, type WebAuthnResult } from './webauthn-ceremony.ts';
import { webAuthnRegistration } from './webauthn-registration.ts';
import { sealedChallenges } from './webauthn-sealed-challenge.ts';

export type { WebAuthnResult };

/**
 * Passkeys and security keys: the user's credentials, registration (webauthn-registration.ts) and
 * the authentication ceremony, passwordless or as a second factor.
 */
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
  const passwordlessChallenges = sealedChallenges(box);

  return {
    list: (userId: string) => credentials.listByUser(userId),
    rename: (userId: string, id: string, name: string) => credentials.rename(userId, id, name),
    remove: (userId: string, id: string) => credentials.remove(userId, id),
    removeAll: (userId: string) => credentials.removeAll(userId),

    async hasCredentials(userId: string): Promise<boolean> {
      return (await credentials.listByUser(userId)).length > 0;
    },

    ...webAuthnRegistration({ credentials, store, rpId, rpName, origin }),

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
        ...(passwordless ? { challenge: passwordlessChallenges.seal(input.binding) } : {}),
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
        claimFor = challenge === undefined ? undefined : passwordlessChallenges.open(input.binding, challenge);
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
