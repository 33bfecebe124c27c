/**
 * "Sessions not valid before": the per-account time before which no sign-in counts any more.
 * Ending sessions by deleting them cannot win against a request already in flight, which
 * oidc-provider lets save the session again as it ends (R8, R13); comparing each sign-in's time
 * with this one can. Set by sign out everywhere, a password change that signs out the other
 * devices, an MFA reset and disabling the account; read with the account row every sign-in
 * check already loads (no extra query on the authorization path).
 *
 * Sign-in times are whole epoch seconds (oidc-provider's loginTs, a token's authTime), so a
 * sign-in dated in the same second as the cutoff cannot be placed before or after it: it does
 * not count. A sign-in that really began after the cutoff and finishes within that second waits
 * for the next one and is dated then (signInTime), so it counts.
 */

/** The account columns this reads (src/store/users.ts UserRow). */
export type SessionCutoff = {
  /** Sign-ins before this instant no longer count; null: none has been ended. */
  sessions_not_before: Date | null;
  /** The session (oidc-provider Session uid) kept when the cutoff was set, e.g. the one that changed the password. */
  sessions_not_before_keep: string | null;
};

/** A sign-in as the provider keeps it: a session's loginTs and uid, or a code's or refresh token's authTime and sessionUid. */
export type SignIn = { loginTs?: number | undefined; sessionUid?: string | undefined };

/** The first whole second whose sign-ins count, or undefined when every sign-in does. */
export function firstCountingSecond(account: SessionCutoff): number | undefined {
  const cutoff = account.sessions_not_before;
  return cutoff ? Math.floor(cutoff.getTime() / 1000) + 1 : undefined;
}

/** Whether a sign-in still stands for this account. A sign-in without a time never does once a cutoff exists. */
export function signInCounts(account: SessionCutoff, signIn: SignIn): boolean {
  const first = firstCountingSecond(account);
  if (first === undefined) return true;
  if (signIn.sessionUid !== undefined && signIn.sessionUid === account.sessions_not_before_keep) return true;
  return signIn.loginTs !== undefined && signIn.loginTs >= first;
}

/**
 * Whether an access token issued at `iat` (epoch seconds) still stands for this account. Every
 * grant (and with it every access token) of the account was revoked when the cutoff was set, the
 * kept session's too, so no token issued before it counts, kept or not; one issued in the
 * cutoff's own second cannot be placed and does not count either. Checked where access tokens are
 * read without their grant being looked up first, or in case the revocation has not run yet:
 * userinfo and introspection (opaque tokens) and the API (JWTs) (R13).
 */
export function tokenCounts(account: SessionCutoff, iat: number | undefined): boolean {
  const first = firstCountingSecond(account);
  return first === undefined || (iat !== undefined && iat >= first);
}

/**
 * The auth_time (epoch seconds) of a sign-in finishing now, dated `datedAtMs` (when it
 * completes; a step-up keeps its session's sign-in time), and how long to wait before finishing
 * it so that auth_time is not in the future. Undefined when its first step (`startedAtMs`, the
 * password or passkey check) came before the account's cutoff — unless it steps up the session
 * kept then (`sessionUid`): it must start again.
 */
export function signInTime(
  account: SessionCutoff,
  signIn: { startedAtMs: number; datedAtMs: number; sessionUid?: string | undefined },
  nowMs: number = Date.now(),
): { ts: number; waitMs: number } | undefined {
  const ts = Math.floor(signIn.datedAtMs / 1000);
  const cutoff = account.sessions_not_before;
  const first = firstCountingSecond(account);
  if (!cutoff || first === undefined) return { ts, waitMs: 0 };
  if (signIn.sessionUid !== undefined && signIn.sessionUid === account.sessions_not_before_keep) return { ts, waitMs: 0 };
  if (signIn.startedAtMs < cutoff.getTime()) return undefined;
  if (ts >= first) return { ts, waitMs: 0 };
  // After the cutoff, but within its second: the sign-in is dated the next second.
  return { ts: first, waitMs: Math.max(0, first * 1000 - nowMs) };
}
