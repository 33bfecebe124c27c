import { createHash, createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { MfaStore, RecoveryCodeRow } from '../store/mfa.ts';

export const RECOVERY_CODE_COUNT = 10;
// No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read off paper and typed by hand.
const ALPHABET = 'ACDEFGHJKMNPQRTUVWXY34679';
const LENGTH = 12; // 12 symbols of 25 ≈ 55.7 bits: a keyed fast hash is enough, no argon2 needed.

/** How a stored hash was made (mfa_recovery_codes.hash_version). */
export const HASH_VERSION = { unkeyed: 1, keyed: 2 } as const;

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

/** What earlier releases stored (hash_version 1): SHA-256 without a secret. */
function unkeyedHash(normalized: string): Buffer {
  return createHash('sha256').update(`portcullis-recovery:${normalized}`).digest();
}

/**
 * What is stored now (hash_version 2): HMAC-SHA-256 under the server's pepper (a random secret in
 * server_secrets, sealed under MASTER_KEY) over the unkeyed digest. Without the pepper a database
 * dump cannot be checked against guessed codes (S6). Keying the old digest rather than the code
 * lets rows written by earlier releases be rekeyed without knowing their codes.
 */
function keyedHash(pepper: Buffer, unkeyed: Buffer): Buffer {
  return createHmac('sha256', pepper).update(unkeyed).digest();
}

export function createRecoveryCodeService({ store, pepper }: { store: MfaStore; pepper: Buffer }) {
  const stored = (normalized: string): Buffer => keyedHash(pepper, unkeyedHash(normalized));

  return {
    /** A new set of codes (shown once); the old set stops working in the same transaction. */
    async regenerate(userId: string): Promise<string[]> {
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, generateRecoveryCode);
      await store.replaceRecoveryCodes(
        userId,
        codes.map((c) => stored(normalizeRecoveryCode(c) as string)),
        HASH_VERSION.keyed,
      );
      return codes;
    },

    async remaining(userId: string): Promise<number> {
      return (await store.unusedRecoveryCodes(userId)).length;
    },

    /**
     * Uses a code once. Hashes are compared in constant time against every unused code of this
     * user, each the way it was stored (an unkeyed row from an earlier release that no start has
     * rekeyed yet still works); the conditional UPDATE makes the use single even for concurrent
     * requests.
     */
    async use(userId: string, input: string): Promise<boolean> {
      const normalized = normalizeRecoveryCode(input);
      const unkeyed = unkeyedHash(normalized ?? 'invalid');
      const keyed = keyedHash(pepper, unkeyed);
      let match: string | undefined;
      for (const row of await store.unusedRecoveryCodes(userId)) {
        const expected = row.hash_version === HASH_VERSION.keyed ? keyed : row.hash_version === HASH_VERSION.unkeyed ? unkeyed : undefined;
        if (expected && timingSafeEqual(row.code_hash, expected) && normalized) match = row.id;
      }
      return match !== undefined && (await store.useRecoveryCode(match));
    },

    /**
     * Rekeys every unkeyed hash (used or not) in place: HMAC of the stored digest. Run at every
     * start of the auth server and by `portcullis keys reseal`; rows an earlier release writes
     * during a rolling upgrade are caught by the next run. Idempotent (compare and set per row).
     */
    async rekeyUnkeyed(batchSize = 500): Promise<number> {
      let rekeyed = 0;
      let after = '0';
      for (;;) {
        const rows: RecoveryCodeRow[] = await store.recoveryCodesOfVersion(HASH_VERSION.unkeyed, batchSize, after);
        for (const row of rows) if (await store.rehashRecoveryCode(row, keyedHash(pepper, row.code_hash), HASH_VERSION.keyed)) rekeyed++;
        const last = rows.at(-1);
        if (!last || rows.length < batchSize) return rekeyed;
        after = last.id;
      }
    },

    remove: (userId: string) => store.removeRecoveryCodes(userId),

    /** How many stored hashes are keyed and how many still unkeyed (`portcullis keys status`). */
    async hashVersions(): Promise<{ keyed: number; unkeyed: number }> {
      const versions = await store.recoveryCodeVersions();
      return { keyed: versions[String(HASH_VERSION.keyed)] ?? 0, unkeyed: versions[String(HASH_VERSION.unkeyed)] ?? 0 };
    },
  };
}

export type RecoveryCodeService = ReturnType<typeof createRecoveryCodeService>;
