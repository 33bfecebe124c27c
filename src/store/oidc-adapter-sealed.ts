import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { createCryptoBox } from '../shared/crypto-box.ts';
import { KEY_PURPOSE, SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import { deriveKey } from '../shared/derive-key.ts';
import type { Adapter, AdapterPayload } from './oidc-adapter.ts';

/**
 * HKDF labels (src/shared/crypto-contexts.ts): one subkey of the root names stored oidc state,
 * another seals it. The root is the `oidc-state` server secret (src/store/server-secrets.ts):
 * random, stored sealed under MASTER_KEY, so a MASTER_KEY rotation re-seals it and keeps every
 * session and token (S2).
 */
const { oidcStorageKey: STORAGE_KEY_PURPOSE, oidcSeal: SEAL_PURPOSE } = KEY_PURPOSE;

/** 128 random bits per seal, as 32 hex characters (the envelope's key id). */
const SALT = /^[0-9a-f]{32}$/;

/**
 * Keys for oidc-provider state at rest. storageKey(value) is the keyed hash (HMAC-SHA-256) under
 * which a token, code, session, interaction, grant or user code is stored: deterministic, so a
 * lookup by the presented value is one hash and one read, and useless without the key, so a copy
 * of the store cannot be replayed or searched offline (an 8-letter user code has 35 bits; an
 * unkeyed hash of it falls to a brute force in seconds).
 *
 * seal/open: AES-256-GCM under a key of its own for every seal, HMAC(seal key, random 128-bit
 * salt), the salt named in the envelope as its key id. One long-lived GCM key with random 96-bit
 * IVs is good for about 2^32 seals (NIST SP 800-38D); this store seals on every session touch and
 * token save of every instance, which passes that within weeks at a few thousand writes a second.
 */
export type OidcStateKeys = {
  readonly storageKey: (value: string) => string;
  readonly seal: (plaintext: string, associatedData: string) => string;
  /** Throws when the envelope is not one of ours or does not authenticate. */
  readonly open: (envelope: string, associatedData: string) => Buffer;
};

export function createOidcStateKeys(root: Buffer): OidcStateKeys {
  const hmacKey: KeyObject = createSecretKey(deriveKey(root, STORAGE_KEY_PURPOSE));
  const sealKey: KeyObject = createSecretKey(deriveKey(root, SEAL_PURPOSE));
  const boxFor = (salt: string) => createCryptoBox(createHmac('sha256', sealKey).update(salt).digest(), salt);
  return {
    storageKey: (value) => createHmac('sha256', hmacKey).update(value, 'utf8').digest('base64url'),
    seal: (plaintext, associatedData) => boxFor(randomBytes(16).toString('hex')).seal(plaintext, associatedData),
    open(envelope, associatedData) {
      const salt = envelope.split('.', 3)[1] ?? '';
      if (!SALT.test(salt)) throw new Error('not an oidc state envelope');
      return boxFor(salt).open(envelope, associatedData);
    },
  };
}

/** What the storage adapters hold: index fields as storage keys, the payload itself sealed. */
type StoredPayload = {
  /** The envelope of the payload (with its id as jti, without `consumed`). */
  sealed?: string;
  /** Kept readable: the erasure of an account deletes its rows by it (oidc-revocations removeOidcPayloadsOf). */
  accountId?: string;
  grantId?: string;
  uid?: string;
  userCode?: string;
  /** The storage adapters own consumption (an atomic mark, a grace window); they read and hide it here. */
  consumed?: unknown;
};

/** The sealed payload of a stored value, or undefined (absent, not ours, tampered with). */
function openSealed(keys: OidcStateKeys, model: string, stored: unknown): AdapterPayload | undefined {
  const { sealed } = (stored ?? {}) as StoredPayload;
  if (typeof sealed !== 'string') return undefined;
  try {
    return JSON.parse(keys.open(sealed, SEAL_CONTEXT.oidcPayload(model)).toString('utf8')) as AdapterPayload;
  } catch {
    // Tampered with, or sealed under another deployment's keys: as good as absent (fail closed).
    return undefined;
  }
}

/** The payload inside a value the storage adapter holds (for tools that read the store directly, e.g. bench/). */
export const unsealStoredPayload = (keys: OidcStateKeys, model: string, stored: unknown): AdapterPayload | undefined =>
  openSealed(keys, model, stored);

/**
 * oidc-provider's adapter for one model, stored by keyed hash and sealed (S10): the storage
 * adapter below (Redis or Postgres) only ever sees storage keys — for the id, grantId, uid and
 * userCode, which are what it indexes — and a sealed payload. Nothing it holds is a value the
 * token, userinfo, account, authorization or device endpoints accept, and no personal data
 * (deviceInfo's IP and user agent, login hints, claims) is readable in Redis.
 *
 * The seal binds the payload to its model (associated data), and every lookup checks that the
 * payload names what was looked up (its jti, uid or userCode, inside the seal), so a sealed
 * payload copied under another key is refused: someone who can write to Redis cannot move another
 * user's session under a session id they hold. oidc-provider's payloads always carry their id as
 * jti; one without it gets it here.
 */
export function sealedAdapter(inner: Adapter, model: string, keys: OidcStateKeys): Adapter {
  const { storageKey, seal } = keys;
  const aad = SEAL_CONTEXT.oidcPayload(model);

  /** The payload, with the storage adapter's consumed mark. */
  function open(stored: unknown): AdapterPayload | undefined {
    const opened = openSealed(keys, model, stored);
    const { consumed } = (stored ?? {}) as StoredPayload;
    return opened === undefined || consumed === undefined ? opened : { ...opened, consumed };
  }

  return {
    async upsert(id, payload, expiresIn) {
      if (payload.jti !== undefined && payload.jti !== id) throw new TypeError(`${model} payload jti does not match its id`);
      const rest: AdapterPayload = { ...payload, jti: id };
      const consumed: unknown = rest.consumed;
      delete rest.consumed;
      const stored: StoredPayload = { sealed: seal(JSON.stringify(rest), aad) };
      if (typeof payload.accountId === 'string') stored.accountId = payload.accountId;
      if (typeof payload.grantId === 'string') stored.grantId = storageKey(payload.grantId);
      if (typeof payload.uid === 'string') stored.uid = storageKey(payload.uid);
      if (typeof payload.userCode === 'string') stored.userCode = storageKey(payload.userCode);
      if (consumed !== undefined) stored.consumed = consumed;
      await inner.upsert(storageKey(id), stored, expiresIn);
    },

    async find(id) {
      const found = open(await inner.find(storageKey(id)));
      return found?.jti === id ? found : undefined;
    },

    async findByUid(uid) {
      const found = open(await inner.findByUid(storageKey(uid)));
      return found?.uid === uid ? found : undefined;
    },

    async findByUserCode(userCode) {
      const found = open(await inner.findByUserCode(storageKey(userCode)));
      return found?.userCode === userCode ? found : undefined;
    },

    consume: (id) => inner.consume(storageKey(id)),
    destroy: (id) => inner.destroy(storageKey(id)),
    revokeByGrantId: (grantId) => inner.revokeByGrantId(storageKey(grantId)),
  };
}
