/**
 * The one spelling of an email address that identifies an account: what is stored in
 * users.email_normalized (unique), what a sign-in looks up, and what the password lockout
 * counts under (R7). One function for all three, so no spelling can reach an account under
 * another lockout budget.
 *
 * NFKC first, then trim, then String.prototype.toLowerCase (Unicode's default full lower-case
 * mapping, not locale-dependent):
 * - NFKC folds compatibility forms: full-width `ＡＬＩＣＥ＠ｘ` is `ALICE@x`, the Kelvin sign
 *   U+212A is `K`, ligatures split. Trimming after NFKC also removes spaces NFKC produced.
 * - `İ` (U+0130) becomes `i̇` (i + U+0307), not `i`: outside Turkish it is not a capital i, so
 *   `alİce@x` is another address than `alice@x`. Postgres lower() under a libc/C.UTF-8 locale
 *   maps it to `i`, which is how the login's lookup once reached alice under another budget.
 * - `ß` stays `ß` (no full case folding to `ss`): IDNA2008 keeps `straße` and `strasse` as
 *   different domains, so folding would merge addresses that are really different. Likewise
 *   final `ς` and `σ` stay distinct (toLowerCase writes a capital Σ at a word's end as `ς`).
 * - No IDNA conversion of the domain (punycode and Unicode forms are different spellings).
 * The result is idempotent and already NFKC (checked code point by code point in
 * test/unit/email.test.ts).
 */
export function normalizeEmail(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase();
}
