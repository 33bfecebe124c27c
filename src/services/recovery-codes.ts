import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import type { MfaStore } from '../store/mfa.ts';

export const RECOVERY_CODE_COUNT = 10;
// No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read off paper and typed by hand.
const ALPHABET = 'ACDEFGHJKMNPQRTUVWXY34679';
const LENGTH = 12; // 12 symbols of 25 ≈ 55.7 bits: a fast hash is enough, no argon2 needed.

/** A code as shown to the user: three groups of four, e.g. "K7QD-WX3A-PMTC". */
export function generateRecoveryCode(): string {
  const symbols = Array.from({ length: LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
  return `${symbols.slice(0, 4)}-${symbols.slice(4, 8)}-${symbols.slice(8)}`;
}

/** Case, spaces and dashes do not matter when typing a code back. */
export function normalizeRecoveryCode(input: string): string | undefined {
  const code = input.toUpperCase().replace(/[\s-]/g, '');
  if (code.length !== LENGTH) return undefined;
  for (const c of code) if (!ALPHABET.includes(c)) return undefined;
  return code;
}

export function hashRecoveryCode(normalized: string): Buffer {
  return createHash('sha256').update(`portcullis-recovery:${normalized}`).digest();
}

export function createRecoveryCodeService({ store }: { store: MfaStore }) {
  return {
    /** A new set of codes (shown once); the old set stops working in the same transaction. */
    async regenerate(userId: string): Promise<string[]> {
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, generateRecoveryCode);
      await store.replaceRecoveryCodes(userId, codes.map((c) => hashRecoveryCode(normalizeRecoveryCode(c) as string)));
      return codes;
    },

    async remaining(userId: string): Promise<number> {
      return (await store.unusedRecoveryCodes(userId)).length;
    },

    /**
     * Uses a code once. Hashes are compared in constant time against every unused code of this
     * user; the conditional UPDATE makes the use single even for concurrent requests.
     */
    async use(userId: string, input: string): Promise<boolean> {
      const normalized = normalizeRecoveryCode(input);
      const presented = hashRecoveryCode(normalized ?? 'invalid');
      let match: string | undefined;
      for (const row of await store.unusedRecoveryCodes(userId)) {
        if (timingSafeEqual(row.code_hash, presented) && normalized) match = row.id;
      }
      return match !== undefined && (await store.useRecoveryCode(match));
    },

    remove: (userId: string) => store.removeRecoveryCodes(userId),
  };
}

export type RecoveryCodeService = ReturnType<typeof createRecoveryCodeService>;
