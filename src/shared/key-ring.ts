import { DecryptionError, envelopeKeyId, type CryptoBox } from './crypto-box.ts';
import { StartupError } from './dev-keys.ts';

/** One key of a ring: a box sealing under the key's id, and every key id it opens (its own, and any legacy id). */
export type RingKey = CryptoBox & { readonly opens: readonly string[] };

/** A CryptoBox over a current key and previous keys: every consumer of a box can take a ring. */
export type KeyRing = CryptoBox & {
  /** Ids of the keys that still open but never seal. */
  readonly previousKeyIds: readonly string[];
  /** Every key id an envelope may name for this ring to open it (legacy ids included). */
  readonly opensKeyIds: readonly string[];
  /** Whether the envelope is sealed under the current key's own id (what a re-seal leaves alone). */
  isCurrent(envelope: string): boolean;
};

/**
 * Rotation without stopping the fleet (S2): values are always sealed under the current key and
 * opened under whichever key of the ring their envelope names, so instances on the new key read
 * what instances still on the old one wrote, and `portcullis keys reseal` can move everything to
 * the current key while they run. Generic over key families: `name` is the variable that holds the
 * current key (MASTER_KEY, or another family's), its previous keys are `<name>_PREVIOUS`.
 */
export function createKeyRing(name: string, current: RingKey, previous: readonly RingKey[] = []): KeyRing {
  const all = [current, ...previous];
  if (new Set(all.map((k) => k.keyId)).size !== all.length)
    throw new StartupError(`${name}_PREVIOUS is the same key as ${name}; set it to the key used before ${name}, or unset it`);
  const previousKeyIds = previous.map((k) => k.keyId);
  const unknownKey = (keyId: string) =>
    new DecryptionError(
      `sealed under key ${keyId}, not the configured ${name} (${current.keyId})${previous.length > 0 ? ` nor ${name}_PREVIOUS (${previousKeyIds.join(', ')})` : ''}`,
    );
  return {
    keyId: current.keyId,
    previousKeyIds,
    opensKeyIds: [...new Set(all.flatMap((k) => k.opens))],
    seal: (plaintext, associatedData) => current.seal(plaintext, associatedData),
    isCurrent: (envelope) => envelopeKeyId(envelope) === current.keyId,
    open(envelope, associatedData) {
      const keyId = envelopeKeyId(envelope);
      // Not an envelope: the current key's box says why.
      if (keyId === undefined) return current.open(envelope, associatedData);
      const candidates = all.filter((k) => k.opens.includes(keyId));
      if (candidates.length === 0) throw unknownKey(keyId);
      // A legacy id can name more than one key of the ring: the one that authenticates wins.
      let failure: unknown;
      for (const key of candidates) {
        try {
          return key.open(envelope, associatedData);
        } catch (error) {
          failure = error;
        }
      }
      throw failure;
    },
  };
}
