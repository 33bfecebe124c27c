import { createHash } from 'node:crypto';
import { createCryptoBox, envelopeKeyId } from './crypto-box.ts';
import { createKeyRing, type KeyRing, type RingKey } from './key-ring.ts';

export { envelopeKeyId };

/** The key id of envelopes sealed before master-key ids were derived from the key itself. */
const LEGACY_KEY_ID = 'm1';

/**
 * A master key's id is a fingerprint of the key (never the key): envelopes name the key that
 * sealed them, so a ring of keys (MASTER_KEY and MASTER_KEY_PREVIOUS) knows which one opens a
 * value, and a process started with the wrong MASTER_KEY says so ("sealed under key m-…")
 * instead of failing authentication silently.
 */
export function masterKeyId(key: Buffer): string {
  return `m-${createHash('sha256').update('portcullis master key id\0').update(key).digest('hex').slice(0, 12)}`;
}

/** One master key: seals under its fingerprint id, and still opens envelopes of the legacy fixed id `m1`. */
function masterRingKey(key: Buffer): RingKey {
  const own = createCryptoBox(key, masterKeyId(key));
  const legacy = createCryptoBox(key, LEGACY_KEY_ID);
  return {
    keyId: own.keyId,
    opens: [own.keyId, LEGACY_KEY_ID],
    seal: (plaintext, associatedData) => own.seal(plaintext, associatedData),
    open: (envelope, associatedData) => (envelopeKeyId(envelope) === LEGACY_KEY_ID ? legacy : own).open(envelope, associatedData),
  };
}

/**
 * The box for MASTER_KEY: seals under MASTER_KEY, opens under MASTER_KEY or MASTER_KEY_PREVIOUS
 * (S2; see src/shared/key-ring.ts). Values under a previous key, or under the legacy id, are moved
 * to the current key by `portcullis keys reseal`.
 */
export function createMasterBox(key: Buffer, previous: readonly Buffer[] = []): KeyRing {
  return createKeyRing('MASTER_KEY', masterRingKey(key), previous.map(masterRingKey));
}
