import { randomBytes } from 'node:crypto';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import type { KeyStore, SigningKeyRow } from '../store/signing-keys.ts';
import { generateSigningKey, SIGNING_ALGS, type SigningAlg } from './keys.ts';

/**
 * Signing-key lifecycle (docs/operations.md, signing keys; oidc-provider's rolling-deployment recipe):
 *   rotate  → a new key per algorithm in state `next`: published in JWKS, not signing;
 *   advance → after activateAfterSeconds (longer than any JWKS cache) it becomes `active` and,
 *             being the newest active key of its algorithm, signs; the previous key stays
 *             published to verify what it signed;
 *   retire  → once retireAfterSeconds (the longest lifetime of a token it signed) have passed
 *             since it was superseded, the old key leaves the JWKS.
 * Every step runs under the cluster-wide key lock; instances notice through the key fingerprint.
 */
export type RotationPolicy = {
  /** How long a new key is published before it signs. */
  activateAfterSeconds: number;
  /** How long a superseded key stays published: the longest token lifetime it may have signed. */
  retireAfterSeconds: number;
  /** Rotate automatically when the signing key of an algorithm is this old; 0 = never. */
  rotateAfterDays: number;
  /** How long a superseded cookie key keeps verifying: the longest session. */
  cookieRetireAfterSeconds: number;
};

export class KeyRotationError extends Error {}

export type KeySummary = {
  kid: string;
  alg: string;
  state: 'next' | 'active' | 'retired';
  signing: boolean;
  created_at: Date;
  activated_at: Date | null;
  retired_at: Date | null;
  superseded_at?: Date;
};

const seconds = (from: Date | null, to: Date): number => (from ? (to.getTime() - from.getTime()) / 1000 : 0);

/** Per algorithm: the signing key (newest active), and when each older active key was superseded. */
function describe(rows: SigningKeyRow[]): KeySummary[] {
  const byAlg = new Map<string, SigningKeyRow[]>();
  for (const row of rows.filter((r) => r.state === 'active')) byAlg.set(row.alg, [...(byAlg.get(row.alg) ?? []), row]);
  const superseded = new Map<string, Date>();
  const signing = new Set<string>();
  for (const active of byAlg.values()) {
    const sorted = [...active].sort((x, y) => y.created_at.getTime() - x.created_at.getTime());
    sorted.forEach((row, i) => {
      const newer = sorted[i - 1];
      if (!newer) signing.add(row.kid);
      // A key is superseded when the next newer key became active.
      else superseded.set(row.kid, newer.activated_at ?? newer.created_at);
    });
  }
  return rows.map((row) => {
    const supersededAt = superseded.get(row.kid);
    return {
      kid: row.kid,
      alg: row.alg,
      state: row.state,
      signing: signing.has(row.kid),
      created_at: row.created_at,
      activated_at: row.activated_at,
      retired_at: row.retired_at,
      ...(supersededAt ? { superseded_at: supersededAt } : {}),
    };
  });
}

export function createKeyRotation({ store, box, policy }: { store: KeyStore; box: CryptoBox; policy: RotationPolicy }) {
  /** Publishes a new key for each algorithm (state next). Refuses while one is already waiting. */
  async function rotate(algs: readonly SigningAlg[] = SIGNING_ALGS): Promise<KeySummary[]> {
    return store.withKeyLock(async (trx) => {
      const waiting = await store.waiting(algs, trx);
      if (waiting.length > 0)
        throw new KeyRotationError(
          `a new ${waiting.map((w) => w.alg).join(', ')} key is already published and waiting to sign (${waiting.map((w) => w.kid).join(', ')})`,
        );
      const created: string[] = [];
      for (const alg of algs) {
        const key = await generateSigningKey(alg, box, 'next');
        await store.insertSigningKey(key, trx);
        created.push(key.kid);
      }
      return describe(await store.all(trx)).filter((k) => created.includes(k.kid));
    });
  }

  /** A new cookie signing key, first in the list: it signs, the older ones still verify. */
  async function rotateCookieKeys(): Promise<{ id: number; created_at: Date }> {
    return store.withKeyLock(async (trx) => {
      await store.insertCookieKey(box.seal(randomBytes(32).toString('base64url'), SEAL_CONTEXT.cookieKey()), trx);
      const [newest] = await store.cookieKeys(trx);
      if (!newest) throw new Error('cookie key insert failed');
      return { id: newest.id, created_at: newest.created_at };
    });
  }

  return {
    rotate,
    rotateCookieKeys,

    async list(): Promise<KeySummary[]> {
      return describe(await store.all());
    },

    /** The scheduled step: activate keys published long enough, retire superseded keys, auto-rotate. */
    async advance(now = new Date()): Promise<{ activated: string[]; retired: string[]; rotated: string[] }> {
      const result = await store.withKeyLock(async (trx) => {
        const keys = describe(await store.all(trx));
        const activated: string[] = [];
        const retired: string[] = [];
        for (const key of keys) {
          if (key.state === 'next' && seconds(key.created_at, now) >= policy.activateAfterSeconds) {
            await store.setState(key.kid, 'active', trx);
            activated.push(key.kid);
          }
          if (key.state === 'active' && key.superseded_at && seconds(key.superseded_at, now) >= policy.retireAfterSeconds) {
            await store.setState(key.kid, 'retired', trx);
            retired.push(key.kid);
          }
        }
        // Cookie keys: a key superseded longer than the longest session verifies nothing anymore.
        const cookies = await store.cookieKeys(trx);
        for (const [i, key] of cookies.entries()) {
          const newer = cookies[i - 1];
          if (newer && seconds(newer.created_at, now) >= policy.cookieRetireAfterSeconds) {
            await store.retireCookieKey(key.id, trx);
            retired.push(`cookie-key:${String(key.id)}`);
          }
        }
        return { activated, retired };
      });
      let rotated: string[] = [];
      if (policy.rotateAfterDays > 0) {
        const keys = describe(await store.all());
        const due = SIGNING_ALGS.filter((alg) => {
          const signer = keys.find((k) => k.alg === alg && k.signing);
          const waiting = keys.some((k) => k.alg === alg && k.state === 'next');
          return signer && !waiting && seconds(signer.activated_at ?? signer.created_at, now) >= policy.rotateAfterDays * 86_400;
        });
        if (due.length > 0) rotated = (await rotate(due).catch(() => [])).map((k) => k.kid);
      }
      return { ...result, rotated };
    },

    /**
     * Makes a published (next) key sign now, skipping KEY_ACTIVATE_AFTER: for emergencies (a
     * leaked key), accepting that caches which have not seen it yet refetch on its unknown kid.
     */
    async activate(kid: string): Promise<KeySummary> {
      return store.withKeyLock(async (trx) => {
        const key = describe(await store.all(trx)).find((k) => k.kid === kid);
        if (!key) throw new KeyRotationError(`no signing key ${kid}`);
        if (key.state !== 'next') throw new KeyRotationError(`key ${kid} is ${key.state}; only a published (next) key can be activated`);
        await store.setState(kid, 'active', trx);
        const now = describe(await store.all(trx)).find((k) => k.kid === kid);
        if (!now) throw new KeyRotationError(`no signing key ${kid}`);
        return now;
      });
    },

    /**
     * Removes a key from the JWKS now. Refuses the key that signs (there would be none), and a
     * superseded key whose tokens may still be valid, unless forced.
     */
    async retire(kid: string, options: { force?: boolean } = {}, now = new Date()): Promise<KeySummary> {
      return store.withKeyLock(async (trx) => {
        const keys = describe(await store.all(trx));
        const key = keys.find((k) => k.kid === kid);
        if (!key) throw new KeyRotationError(`no signing key ${kid}`);
        if (key.state === 'retired') throw new KeyRotationError(`key ${kid} is already retired`);
        if (key.signing) throw new KeyRotationError(`key ${kid} is the current ${key.alg} signing key; rotate first`);
        const since = key.superseded_at ? seconds(key.superseded_at, now) : 0;
        if (key.state === 'active' && since < policy.retireAfterSeconds && !options.force) {
          throw new KeyRotationError(
            `tokens signed by ${kid} may be valid for ${Math.ceil(policy.retireAfterSeconds - since)} more seconds; retiring now makes them fail verification (use --force)`,
          );
        }
        await store.setState(kid, 'retired', trx);
        return { ...key, state: 'retired' as const, retired_at: new Date() };
      });
    },
  };
}

export type KeyRotation = ReturnType<typeof createKeyRotation>;

/**
 * The schedule from the configuration. A superseded key stays published for the longest
 * lifetime of anything it signed (access and ID tokens; sessions for cookie keys), plus a minute
 * of clock skew.
 */
export function rotationPolicyOf(config: {
  ttl: { accessToken: number; idToken: number; sessionMax: number };
  signingKeys: { activateAfterSeconds: number; rotateAfterDays: number };
}): RotationPolicy {
  return {
    activateAfterSeconds: config.signingKeys.activateAfterSeconds,
    retireAfterSeconds: Math.max(config.ttl.accessToken, config.ttl.idToken) + 60,
    rotateAfterDays: config.signingKeys.rotateAfterDays,
    cookieRetireAfterSeconds: config.ttl.sessionMax + 60,
  };
}
