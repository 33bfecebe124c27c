import {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { MfaStore } from '../store/mfa.ts';
import { DuplicateCredentialError, type WebAuthnCredentialStore } from '../store/webauthn-credentials.ts';
import { CHALLENGE_TTL_SECONDS, TIMEOUT_MS, toDescriptor, type WebAuthnResult } from './webauthn-ceremony.ts';

/**
 * The registration ceremony (W3C WebAuthn §7.1 via SimpleWebAuthn): options for a discoverable
 * credential with a stored single-use challenge per binding, and the new credential stored once
 * the answer verified (a credential already registered is refused, not replaced).
 */
export function webAuthnRegistration({
  credentials,
  store,
  rpId,
  rpName,
  origin,
}: {
  credentials: WebAuthnCredentialStore;
  store: MfaStore;
  rpId: string;
  rpName: string;
  origin: string;
}) {
  return {
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
  };
}
