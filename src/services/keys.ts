import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import type { KeyStore, SigningKeyRow } from '../store/signing-keys.ts';

/**
 * Signing algorithms kept in the JWKS. ES256 signs access tokens (cheap); RS256 signs ID tokens
 * by default because OIDC requires it (Core §15.1); EdDSA is offered to clients that ask.
 */
export const SIGNING_ALGS = ['ES256', 'RS256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export async function generateSigningKey(alg: SigningAlg, box: CryptoBox, state: 'next' | 'active' = 'active') {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' ? { modulusLength: 3072 } : {}),
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
  });
  const kid = randomUUID();
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    public_jwk: publicJwk,
    private_jwk_sealed: box.seal(JSON.stringify(privateJwk), SEAL_CONTEXT.signingKey(kid)),
    state,
    activated_at: state === 'active' ? new Date() : null,
  };
}

export function createKeyService({ store, box }: { store: KeyStore; box: CryptoBox }) {
  const unsealPrivate = (row: SigningKeyRow): JWK =>
    JSON.parse(box.open(row.private_jwk_sealed, SEAL_CONTEXT.signingKey(row.kid)).toString('utf8')) as JWK;

  return {
    /** First start: one active key per algorithm, created once even when instances race. */
    async ensureSigningKeys(): Promise<string[]> {
      return store.withKeyLock(async (trx) => {
        const active = await store.activeAlgs(trx);
        const created: string[] = [];
        for (const alg of SIGNING_ALGS.filter((a) => !active.has(a))) {
          const key = await generateSigningKey(alg, box);
          await store.insertSigningKey(key, trx);
          created.push(key.kid);
        }
        return created;
      });
    },

    /**
     * The provider's JWKS: active keys first (the provider signs with the first key of an alg),
     * then keys published ahead of activation so caches learn them before they sign.
     */
    async privateJwks(): Promise<{ keys: JWK[] }> {
      return { keys: (await store.published()).map(unsealPrivate) };
    },

    async publicJwks(): Promise<{ keys: JWK[] }> {
      return { keys: (await store.published()).map((row) => row.public_jwk as JWK) };
    },

    /** Cookie signing keys, newest first; generated once when none are configured. */
    async cookieKeys(): Promise<string[]> {
      const existing = await store.cookieKeys();
      if (existing.length > 0) return existing.map((row) => box.open(row.key_sealed, SEAL_CONTEXT.cookieKey()).toString('utf8'));
      return store.withKeyLock(async (trx) => {
        if (!(await store.hasCookieKey(trx)))
          await store.insertCookieKey(box.seal(randomBytes(32).toString('base64url'), SEAL_CONTEXT.cookieKey()), trx);
        return (await store.cookieKeys(trx)).map((row) => box.open(row.key_sealed, SEAL_CONTEXT.cookieKey()).toString('utf8'));
      });
    },
  };
}

export type KeyService = ReturnType<typeof createKeyService>;
