/**
 * Who must pass a second factor, which factors count, and what the ID token says about it.
 * Pure functions: the interaction routes and the provider's policy check both use them.
 */

/** Authentication context class values (documented in docs/mfa.md). */
export const ACR = { password: 'urn:portcullis:loa:1', mfa: 'urn:portcullis:loa:2', passkey: 'urn:portcullis:loa:passkey' } as const;

export type Factor = 'totp' | 'webauthn' | 'recovery';
export type SecondFactor = Exclude<Factor, 'recovery'>;

// Order of assurance: a passkey sign-in (possession + user verification, phishing-resistant)
// satisfies a request for loa:2; password + TOTP does not satisfy a request for passkey.
const RANK: Record<string, number> = { [ACR.password]: 1, [ACR.mfa]: 2, [ACR.passkey]: 3 };

export function acrRank(acr: string | undefined): number {
  return acr ? (RANK[acr] ?? 0) : 0;
}

/**
 * The lowest rank that satisfies the request: acr_values are alternatives (any one will do),
 * unknown values are ignored, and a client that requires MFA raises the floor to loa:2.
 */
export function requiredRank(input: { requestedAcrs?: readonly string[] | undefined; clientRequiresMfa?: boolean | undefined }): number {
  const known = (input.requestedAcrs ?? []).map(acrRank).filter((r) => r > 0);
  const requested = known.length > 0 ? Math.min(...known) : 0;
  return Math.max(requested, input.clientRequiresMfa ? RANK[ACR.mfa] as number : 0);
}

export type MfaDecision =
  | { kind: 'done' }
  | { kind: 'challenge'; factors: SecondFactor[]; recovery: boolean }
  | { kind: 'enroll'; factors: SecondFactor[] };

/**
 * After the password: a user with any second factor must pass one (their choice); a user who
 * must have MFA (role, client, requested acr) but has none enrolls one first. A passkey-level
 * request can only be met with a passkey, so only passkeys are offered.
 */
export function decideSecondFactor(input: {
  enrolled: readonly SecondFactor[];
  recoveryCodesLeft: number;
  roleRequiresMfa: boolean;
  requiredRank: number;
}): MfaDecision {
  const passkeyOnly = input.requiredRank >= (RANK[ACR.passkey] as number);
  const mustHave = input.roleRequiresMfa || input.requiredRank >= (RANK[ACR.mfa] as number);
  const usable = passkeyOnly ? input.enrolled.filter((f) => f === 'webauthn') : [...input.enrolled];
  if (usable.length > 0) return { kind: 'challenge', factors: usable, recovery: !passkeyOnly && input.recoveryCodesLeft > 0 };
  if (passkeyOnly) return { kind: 'enroll', factors: ['webauthn'] };
  if (input.enrolled.length > 0) return { kind: 'challenge', factors: [...input.enrolled], recovery: input.recoveryCodesLeft > 0 };
  if (mustHave) return { kind: 'enroll', factors: ['totp', 'webauthn'] };
  return { kind: 'done' };
}

/** How a sign-in went, in RFC 8176 amr values and our acr. */
export type LoginMethod =
  | { first: 'password' }
  | { first: 'password'; second: 'totp' | 'recovery' }
  | { first: 'password'; second: 'webauthn'; deviceType: string }
  | { first: 'passkey'; deviceType: string; userVerified: boolean };

export function authenticationContext(method: LoginMethod): { amr: string[]; acr: string } {
  // multiDevice (synced) passkeys are software-protected keys; single-device ones hardware.
  const key = (deviceType: string): string => (deviceType === 'singleDevice' ? 'hwk' : 'swk');
  if (method.first === 'passkey') {
    return method.userVerified
      ? { amr: [key(method.deviceType), 'user', 'mfa'], acr: ACR.passkey }
      : { amr: [key(method.deviceType)], acr: ACR.password };
  }
  if (!('second' in method)) return { amr: ['pwd'], acr: ACR.password };
  if (method.second === 'webauthn') return { amr: ['pwd', key(method.deviceType), 'mfa'], acr: ACR.mfa };
  return { amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa };
}
