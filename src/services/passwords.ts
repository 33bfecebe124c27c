import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import argon2 from 'argon2';
import type { Config } from '../config/types.ts';

export const PASSWORD_MAX_BYTES = 1024;

export type PasswordPolicyError = 'too_short' | 'too_long' | 'too_common' | 'breached';

let commonPasswords: ReadonlySet<string> | undefined;

/**
 * The blocklist (ASVS 6.2.4, NIST 800-63B §3.1.1.2): the ~49,000 most common passwords from
 * breach corpora, most frequent first, as shipped by @zxcvbn-ts/language-common (maintained, MIT)
 * in its data file src/passwords.json. Matched case-insensitively; loaded once, on first use.
 */
export function commonPasswordList(): ReadonlySet<string> {
  if (!commonPasswords) {
    const path = createRequire(import.meta.url).resolve('@zxcvbn-ts/language-common/src/passwords.json');
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a data file of an installed package, found by module resolution
    const list = JSON.parse(readFileSync(path, 'utf8')) as string[];
    commonPasswords = new Set(list.map((entry) => entry.toLowerCase()));
  }
  return commonPasswords;
}

/** true: found in breaches; false: not found; undefined: could not tell (never blocks). */
export type BreachCheck = (password: string) => Promise<boolean | undefined>;

/**
 * Have I Been Pwned's range API with k-anonymity: only the first 5 hex characters of the SHA-1
 * leave the process, the match is done here; responses are padded. Time-boxed; any failure
 * (offline, timeout, non-200) answers "could not tell", so registration never depends on it.
 * Never called at login (ASVS 6.2.12: checked when a password is set or changed).
 */
export function createHibpCheck(options: { timeoutMs: number; fetch?: typeof fetch; url?: string }): BreachCheck {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const base = options.url ?? 'https://api.pwnedpasswords.com/range/';
  return async (password) => {
    const digest = createHash('sha1').update(password, 'utf8').digest('hex').toUpperCase();
    const prefix = digest.slice(0, 5);
    const suffix = digest.slice(5);
    try {
      const response = await fetchFn(`${base}${prefix}`, {
        headers: { 'Add-Padding': 'true' },
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      if (!response.ok) return undefined;
      const body = await response.text();
      for (const line of body.split('\n')) {
        const [candidate, count] = line.trim().split(':');
        if (candidate === suffix && Number(count) > 0) return true;
      }
      return false;
    } catch {
      return undefined;
    }
  };
}

export type PasswordPolicy = { minLength?: number; blocklist?: boolean; breachCheck?: BreachCheck | undefined };

/**
 * argon2id hashing with the configured (OWASP) cost. Passwords are verified exactly as
 * received: no trimming, no normalisation, no truncation (ASVS 6.2.8); lengths are checked
 * before any hashing so a huge input costs nothing (ASVS 6.2.9, T39).
 */
export function createPasswordHasher(params: Config['argon2'], policy: number | PasswordPolicy = 8) {
  const { minLength = 8, blocklist = true, breachCheck } = typeof policy === 'number' ? { minLength: policy } : policy;
  const options = {
    type: argon2.argon2id as 2,
    memoryCost: params.memoryKiB,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  };
  // Verifying against this keeps unknown-account logins as slow as real ones (T33).
  const dummyHash = argon2.hash('portcullis-dummy-password', options);

  const fitsLimit = (password: string): boolean => Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES;

  const check = (password: string): PasswordPolicyError | undefined => {
    if (!fitsLimit(password)) return 'too_long';
    // Length in code points, as people count characters (NIST 800-63B §3.1.1.2).
    if (Array.from(password).length < minLength) return 'too_short';
    if (blocklist && commonPasswordList().has(password.toLowerCase())) return 'too_common';
    return undefined;
  };

  return {
    check,

    /** check(), then the breached-password lookup when configured (set/change only, never login). */
    async screen(password: string): Promise<PasswordPolicyError | undefined> {
      const problem = check(password);
      if (problem || !breachCheck) return problem;
      return (await breachCheck(password)) === true ? 'breached' : undefined;
    },

    /** One sentence for people: "The password …". */
    describe(problem: PasswordPolicyError): string {
      return describePasswordProblem(problem, minLength);
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

export function describePasswordProblem(problem: string, minLength = 8): string {
  switch (problem) {
    case 'too_short':
      return `The password is too short (at least ${minLength} characters).`;
    case 'too_long':
      return `The password is too long (at most ${PASSWORD_MAX_BYTES} bytes).`;
    case 'too_common':
      return 'The password is one of the most common passwords; choose another (a few unrelated words make a good one).';
    case 'breached':
      return 'The password appears in known data breaches; choose another.';
    default:
      return 'The password is not allowed.';
  }
}
