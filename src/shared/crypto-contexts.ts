/**
 * Every encryption context of Portcullis in one place (issue 18): the associated data each kind
 * of sealed value is bound to (AES-256-GCM, src/shared/crypto-box.ts) and the HKDF labels of
 * derived keys (src/shared/derive-key.ts). A value opens only under the context it was sealed
 * with, so the code that seals and the code that opens (and `keys reseal`, and backup checks)
 * must name the same entry here; retyping the string elsewhere is how a rename silently makes
 * stored values unreadable.
 *
 * Changing a string here is a data migration: every stored value sealed under the old string has
 * to be resealed. Contexts are distinct and none is a prefix of another
 * (test/unit/crypto-contexts.test.ts), so a value sealed for one kind of row never opens as
 * another kind, and the row's id inside the context binds it to its row.
 */
export const SEAL_CONTEXT = {
  /** A signing key's private JWK (signing_keys.private_jwk_sealed), bound to its kid. */
  signingKey: (kid: string): string => `signing-key:${kid}`,
  /** A cookie key (cookie_keys.key_sealed): interchangeable, so no row id. */
  cookieKey: (): string => 'cookie-key',
  /** A client_secret_jwt client's secret (oauth_clients.secret_sealed). */
  clientSecret: (clientId: string): string => `client:${clientId}`,
  /** A user's records data key, wrapped (user_data_keys.key_wrapped): it cannot be given to another user. */
  dataKey: (userId: string): string => `data-key:${userId}`,
  /** A record payload, sealed with its owner's data key: it cannot be moved to another row or owner. */
  record: (recordId: string, ownerId: string): string => `record:${recordId}|owner:${ownerId}`,
  /** A TOTP secret (mfa_totp.secret_sealed). */
  totpSecret: (userId: string): string => `totp:${userId}`,
  /** A server secret (server_secrets.secret_sealed): a sealed value cannot be moved to another name. */
  serverSecret: (name: string): string => `server-secret:${name}`,
  /** An oidc-provider model's payload at rest (src/store/oidc-adapter-sealed.ts). */
  oidcPayload: (model: string): string => `oidc:${model}`,
  /** A passwordless sign-in's challenge, sealed into itself instead of stored (src/services/webauthn-sealed-challenge.ts). */
  passwordlessChallenge: (binding: string): string => `webauthn:passwordless:${binding}`,
  /** A queued mail's recipient, subject and bodies (outbox.payload_sealed), bound to its row. */
  outboxPayload: (id: string): string => `outbox:${id}`,
} as const;

/** HKDF labels: each use of a root key gets its own subkey (src/shared/derive-key.ts). */
export const KEY_PURPOSE = {
  /** Names stored oidc state: the keyed hash of a token, code or session id. */
  oidcStorageKey: 'oidc-state storage key v1',
  /** Seals stored oidc state. */
  oidcSeal: 'oidc-state seal v1',
  /**
   * Names the flow an MFA ceremony belongs to (a session or interaction id) in webauthn_challenges
   * and mfa_totp (S12). Root: the `oidc-state` server secret, like the oidc state's own keys.
   */
  mfaBinding: 'mfa ceremony binding v1',
  /**
   * Names sign-in counters (lockouts, rate limits) by the email or address they count (S12).
   * Root: AUDIT_KEY, which every process holds (the API never holds MASTER_KEY, S3).
   */
  counterKey: 'counter key v1',
  /**
   * The HMAC key of mailed verification codes (email_codes.code_hash) and the keyed digest of the
   * flow each belongs to (email_codes.binding). Root: the `oidc-state` server secret.
   */
  emailCode: 'email code v1',
  emailCodeBinding: 'email code binding v1',
} as const;
