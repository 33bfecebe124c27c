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
// A Map: the acr text comes from the request, and an object would answer "constructor" (R12).
const RANK = new Map<string, number>([
  [ACR.password, 1],
  [ACR.mfa, 2],
  [ACR.passkey, 3],
]);

export function acrRank(acr: string | undefined): number {
  return acr ? (RANK.get(acr) ?? 0) : 0;
}

const MFA_RANK = acrRank(ACR.mfa);
const PASSKEY_RANK = acrRank(ACR.passkey);

/**
 * The lowest rank that satisfies the request: acr_values are alternatives (any one will do),
 * unknown values are ignored, and a client that requires MFA raises the floor to loa:2.
 *
 * An essential acr (`essentialAcrs`, from the claims parameter; undefined when none is asked for)
 * decides instead of acr_values (R14): the ID token must name one of its values (OIDC Core
 * §5.5.1.1), and the name must still meet the client's floor, so the rank needed is that of the
 * lowest essential value at or above the floor. None such (or none at all): Infinity, a request
 * that cannot be met (refused with unmet_authentication_requirements, never asked for again and
 * again).
 */
export function requiredRank(input: {
  requestedAcrs?: readonly string[] | undefined;
  essentialAcrs?: readonly string[] | undefined;
  clientRequiresMfa?: boolean | undefined;
}): number {
  const floor = input.clientRequiresMfa ? MFA_RANK : 0;
  if (input.essentialAcrs !== undefined) {
    const meeting = input.essentialAcrs.map(acrRank).filter((r) => r > 0 && r >= floor);
    return meeting.length > 0 ? Math.min(...meeting) : Number.POSITIVE_INFINITY;
  }
  const known = (input.requestedAcrs ?? []).map(acrRank).filter((r) => r > 0);
  const requested = known.length > 0 ? Math.min(...known) : 0;
  return Math.max(requested, floor);
}

export type MfaDecision =
  | { kind: 'done' }
  | { kind: 'challenge'; factors: SecondFactor[]; recovery: boolean; userVerification: boolean }
  | { kind: 'enroll'; factors: SecondFactor[] };

/**
 * The next step of a sign-in after the password (or of a step-up), from what the account has and
 * what passed so far in this sign-in (`passedRank`: the acr rank of the second factor passed in
 * this interaction, 0 when none has).
 *
 * - A user who has any second factor must pass one of them before anything else — in particular
 *   before any new factor is enrolled (R1): enrolment would otherwise let the password alone add
 *   a factor that then signs in by itself.
 * - A user who must use a second factor (role, client, requested acr) but has none enrolls one.
 * - A passkey-level request is met only by a passkey assertion with user verification: a user who
 *   has a passkey is asked for it; a user who has only other factors passes one of them first,
 *   then enrolls a passkey, then uses it. Enrolling a passkey is not signing in with one, so it
 *   never raises the acr by itself.
 */
export function decideSecondFactor(input: {
  enrolled: readonly SecondFactor[];
  recoveryCodesLeft: number;
  roleRequiresMfa: boolean;
  requiredRank: number;
  passedRank?: number | undefined;
}): MfaDecision {
  const passedRank = input.passedRank ?? 0;
  const passkeyLevel = input.requiredRank >= PASSKEY_RANK;
  const hasAny = input.enrolled.length > 0;
  const hasPasskey = input.enrolled.includes('webauthn');
  const target = passkeyLevel ? PASSKEY_RANK : hasAny || input.roleRequiresMfa || input.requiredRank >= MFA_RANK ? MFA_RANK : 0;
  if (passedRank >= target) return { kind: 'done' };
  const passkeyChallenge: MfaDecision = { kind: 'challenge', factors: ['webauthn'], recovery: false, userVerification: true };
  if (passedRank < MFA_RANK && hasAny) {
    // Nothing passed yet in this sign-in: one of the user's own factors comes first.
    if (passkeyLevel && hasPasskey) return passkeyChallenge;
    return { kind: 'challenge', factors: [...input.enrolled], recovery: input.recoveryCodesLeft > 0, userVerification: false };
  }
  // A factor passed but the request wants a passkey, or the user has no factor yet.
  if (passkeyLevel) return hasPasskey ? passkeyChallenge : { kind: 'enroll', factors: ['webauthn'] };
  return { kind: 'enroll', factors: ['totp', 'webauthn'] };
}

/** How a sign-in went, in RFC 8176 amr values and our acr. */
export type LoginMethod =
  | { first: 'password' }
  | { first: 'password'; second: 'totp' | 'recovery' }
  | { first: 'password'; second: 'webauthn'; deviceType: string; userVerified: boolean }
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
  if (method.second === 'webauthn') {
    // A passkey assertion with user verification is what loa:passkey means, password or not.
    return method.userVerified
      ? { amr: ['pwd', key(method.deviceType), 'user', 'mfa'], acr: ACR.passkey }
      : { amr: ['pwd', key(method.deviceType), 'mfa'], acr: ACR.mfa };
  }
  return { amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa };
}

/**
 * One more step of a sign-in (a second factor, or a passkey on a passkey-level request) added to
 * what the sign-in had passed before it (`before`: the password step, or on step-up the session's
 * own sign-in). The result describes the whole sign-in, which keeps its first step's time as
 * auth_time (docs/mfa.md, "Step-up"): amr lists every method used in it — `pwd` only when a
 * password was one of them (a step's own context assumes a password first) — and the acr is the
 * stronger of the two.
 */
export function addStep(
  before: { amr: readonly string[]; acr: string },
  step: { amr: readonly string[]; acr: string },
): { amr: string[]; acr: string } {
  const earlier = before.amr.filter((a) => a !== 'mfa');
  const added = step.amr.filter((a) => a !== 'pwd' || earlier.includes('pwd'));
  const amr = [...new Set([...earlier, ...added])];
  // `mfa` closes the list, as in authenticationContext.
  const ordered = [...amr.filter((a) => a !== 'mfa'), ...(amr.includes('mfa') ? ['mfa'] : [])];
  return { amr: ordered, acr: acrRank(step.acr) >= acrRank(before.acr) ? step.acr : before.acr };
}

/**
 * The acr to name for a sign-in that reached `achieved` when the request asked for `essential`
 * acr values (OIDC Core §5.5.1.1: the acr returned must be one of them): the strongest requested
 * value the sign-in meets, e.g. loa:2 for a passkey sign-in asked for loa:2 — a lower bound, as
 * the policy ranks a passkey above a code. Without essential values (or none met) `achieved`.
 */
export function acrMeeting(essential: readonly string[], achieved: string): string {
  const rank = acrRank(achieved);
  const met = essential.filter((value) => acrRank(value) > 0 && acrRank(value) <= rank).sort((a, b) => acrRank(b) - acrRank(a));
  return met[0] ?? achieved;
}

/**
 * The acr to name for a sign-in that reached `achieved`, or undefined when that name would not
 * meet the request (R14): with an essential acr it must be one of its values and meet the
 * client's floor (requiredRank); otherwise `achieved` must reach the rank the request needs. A
 * sign-in that ended so would be asked for again by the provider's own checks, for ever.
 */
export function acrNamed(
  request: {
    requestedAcrs?: readonly string[] | undefined;
    essentialAcrs?: readonly string[] | undefined;
    clientRequiresMfa?: boolean | undefined;
  },
  achieved: string,
): string | undefined {
  const named = acrMeeting(request.essentialAcrs ?? [], achieved);
  if (request.essentialAcrs !== undefined && !request.essentialAcrs.includes(named)) return undefined;
  return acrRank(named) >= requiredRank(request) ? named : undefined;
}
