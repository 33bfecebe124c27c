import argon2 from 'argon2';
import type { Config } from '../config/types.ts';

export const PASSWORD_MAX_BYTES = 1024;

export type PasswordPolicyError = 'too_short' | 'too_long';

/**
 * argon2id hashing with the configured (OWASP) cost. Passwords are verified exactly as
 * received: no trimming, no normalisation, no truncation (ASVS 6.2.8); lengths are checked
 * before any hashing so a huge input costs nothing (ASVS 6.2.9, T39).
 */
export function createPasswordHasher(params: Config['argon2'], minLength = 8) {
  const options = {
    type: argon2.argon2id as 2,
    memoryCost: params.memoryKiB,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  };
  // Verifying against this keeps unknown-account logins as slow as real ones (T33).
  const dummyHash = argon2.hash('portcullis-dummy-password', options);

  const fitsLimit = (password: string): boolean => Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES;

  return {
    check(password: string): PasswordPolicyError | undefined {
      if (!fitsLimit(password)) return 'too_long';
      // Length in code points, as people count characters (NIST 800-63B §3.1.1.2).
      if (Array.from(password).length < minLength) return 'too_short';
      return undefined;
    },

    hash(password: string): Promise<string> {
      if (!fitsLimit(password)) throw new Error('password exceeds the maximum length');
      return argon2.hash(password, options);
    },

    /** `rehash` is true when the stored hash uses other parameters than ours (upgrade at login). */
    async verify(hash: string | null, password: string): Promise<{ ok: boolean; rehash: boolean }> {
      if (!fitsLimit(password)) return { ok: false, rehash: false };
      if (!hash) {
        await argon2.verify(await dummyHash, password).catch(() => false);
        return { ok: false, rehash: false };
      }
      const ok = await argon2.verify(hash, password).catch(() => false);
      return { ok, rehash: ok && argon2.needsRehash(hash, options) };
    },
  };
}

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;
