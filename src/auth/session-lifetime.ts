/** Anything with the session's last sign-in time (oidc-provider's Session; epoch seconds). */
type SessionLike = { loginTs?: number | undefined };

/**
 * Sign-in session lifetime (ASVS 7.3.1/7.3.2) as oidc-provider's `ttl.Session`: the provider
 * saves the session again on every request that uses it (authorization, resume, logout) and asks
 * this for the new lifetime. Each use grants `idleSeconds` more, but never past `maxSeconds`
 * after the last sign-in, so activity keeps a session alive only until the absolute limit.
 * The provider sets the session cookie's Expires to the same instant, so the cookie never
 * outlives the session.
 */
export function sessionTtl(
  { idleSeconds, maxSeconds }: { idleSeconds: number; maxSeconds: number },
  now: () => number = () => Math.floor(Date.now() / 1000),
): (session: SessionLike) => number {
  return (session) => {
    // Before sign-in (a session holding only interaction state) the absolute limit starts now.
    const remaining = session.loginTs ? session.loginTs + maxSeconds - now() : maxSeconds;
    // oidc-provider needs a positive integer; a session this old is already gone from the store.
    return Math.max(1, Math.min(idleSeconds, remaining));
  };
}
