import { createHash } from 'node:crypto';
import { createCryptoBox } from './crypto-box.ts';
import { createKeyRing, type KeyRing, type RingKey } from './key-ring.ts';

/** VAULT_KEY's id in envelopes: `v-` and a fingerprint, so a wrapped data key names its key family. */
export function vaultKeyId(key: Buffer): string {
  return `v-${createHash('sha256').update('portcullis vault key id\0').update(key).digest('hex').slice(0, 12)}`;
}

/** Envelopes sealed under MASTER_KEY name `m-…` (or the legacy `m1`): data keys from before VAULT_KEY. */
export const isMasterKeyId = (keyId: string | undefined): boolean => keyId === 'm1' || (keyId?.startsWith('m-') ?? false);

function vaultRingKey(key: Buffer): RingKey {
  const box = createCryptoBox(key, vaultKeyId(key));
  return { ...box, opens: [box.keyId] };
}

/** A whole ring as one key of another ring: it opens whatever it opens, and seals under its current key. */
const asRingKey = (ring: KeyRing): RingKey => ({
  keyId: ring.keyId,
  opens: ring.opensKeyIds,
  seal: (plaintext, associatedData) => ring.seal(plaintext, associatedData),
  open: (envelope, associatedData) => ring.open(envelope, associatedData),
});

/**
 * The box that wraps the records vault's per-user data keys (S3): VAULT_KEY, and during a rotation
 * VAULT_KEY_PREVIOUS, on the key ring of MASTER_KEY's rotation (S2, src/shared/key-ring.ts). It is
 * not MASTER_KEY, which only the identity server holds: the API opens records without being able
 * to open signing keys, cookie keys or client secrets.
 */
export function createVaultBox(current: Buffer, previous: readonly Buffer[] = []): KeyRing {
  return createKeyRing('VAULT_KEY', vaultRingKey(current), previous.map(vaultRingKey));
}

/**
 * The ring that moves data keys from before VAULT_KEY under it (`keys rewrap-vault`, an upgrade):
 * seals under VAULT_KEY, opens what the vault ring opens and what MASTER_KEY (and
 * MASTER_KEY_PREVIOUS) opens. Only a process given both keys for this step builds it.
 */
export function withMasterKey(vault: KeyRing, master: KeyRing): KeyRing {
  return createKeyRing('VAULT_KEY', asRingKey(vault), [asRingKey(master)]);
}
