import { randomBytes } from 'node:crypto';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import { CHALLENGE_TTL_SECONDS } from './webauthn-ceremony.ts';

/**
 * Passwordless challenges are asked for by anyone who opens a sign-in request, so they are not
 * stored (R13: one row per anonymous request was unbounded): the challenge is 16 random bytes
 * and an expiry, sealed under the master key with the interaction and purpose as associated
 * data. It opens only for that interaction, before it expires; its single use is claimed once
 * an answer verified (webauthn.ts verifyAuthentication). The other ceremonies (second factor,
 * passkey registration) follow a password or a session and keep one stored row per binding and
 * purpose.
 */
export function sealedChallenges(box: CryptoBox) {
  const sealedAad = SEAL_CONTEXT.passwordlessChallenge;
  return {
    /** The sealed envelope; its UTF-8 bytes are the challenge (the options carry them base64url-encoded, as always). */
    seal(binding: string): string {
      return box.seal(
        JSON.stringify({ n: randomBytes(16).toString('base64url'), e: Math.floor(Date.now() / 1000) + CHALLENGE_TTL_SECONDS }),
        sealedAad(binding),
      );
    },
    /** The seconds the sealed challenge has left for this binding, or undefined when it is not one of ours, another's, or expired. */
    open(binding: string, challenge: string): number | undefined {
      try {
        const { e } = JSON.parse(box.open(Buffer.from(challenge, 'base64url').toString('utf8'), sealedAad(binding)).toString('utf8')) as {
          e?: unknown;
        };
        const left = typeof e === 'number' ? e - Math.floor(Date.now() / 1000) : 0;
        return left > 0 ? left : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
