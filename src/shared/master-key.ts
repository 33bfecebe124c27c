import { createHash } from 'node:crypto';
import { createCryptoBox, DecryptionError, type CryptoBox } from './crypto-box.ts';

/** The key id of envelopes sealed before master-key ids were derived from the key itself. */
const LEGACY_KEY_ID = 'm1';

/**
 * A master key's id is a fingerprint of the key (never the key): after `keys rotate-master`
 * the envelopes name the new key, and a process started with the wrong MASTER_KEY says so
 * ("sealed under key m-…") instead of failing authentication silently.
 */
export function masterKeyId(key: Buffer): string {
  return `m-${createHash('sha256').update('portcullis master key id\0').update(key).digest('hex').slice(0, 12)}`;
}

export function envelopeKeyId(envelope: string): string | undefined {
  const [version, keyId] = envelope.split('.');
  return version === 'v1' ? keyId : undefined;
}

/**
 * The box for MASTER_KEY: seals under the key's fingerprint id and still opens envelopes
 * sealed under the legacy fixed id `m1` by the same key (they are re-sealed by rotation).
 */
export function createMasterBox(key: Buffer): CryptoBox {
  const current = createCryptoBox(key, masterKeyId(key));
  const legacy = createCryptoBox(key, LEGACY_KEY_ID);
  return {
    keyId: current.keyId,
    seal: (plaintext, associatedData) => current.seal(plaintext, associatedData),
    open(envelope, associatedData) {
      const keyId = envelopeKeyId(envelope);
      if (keyId === LEGACY_KEY_ID) return legacy.open(envelope, associatedData);
      if (keyId !== undefined && keyId !== current.keyId)
        throw new DecryptionError(`sealed under key ${keyId}, not the configured MASTER_KEY (${current.keyId})`);
      return current.open(envelope, associatedData);
    },
  };
}
