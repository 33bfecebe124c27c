import type { Knex } from 'knex';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { envelopeKeyId } from '../shared/master-key.ts';
import { createSealedColumnStore, SEALED_COLUMNS } from '../store/sealed-columns.ts';

export type RotationReport = { from: string; to: string; resealed: Record<string, number>; alreadyRotated: number };

/**
 * Re-seals every master-key-sealed value (wrapped data keys, signing keys, cookie keys, client
 * secrets, TOTP seeds) from the current master key to a new one, in one transaction: either all
 * values move or none do. Record payloads are sealed under the data keys and are not touched.
 * Values already under the new key (a repeated run) are verified and left as they are.
 */
export async function rotateMasterKey(knex: Knex, from: CryptoBox, to: CryptoBox): Promise<RotationReport> {
  if (from.keyId === to.keyId) throw new Error('the new master key is the current one');
  return knex.transaction(async (trx) => {
    // The same lock the key service takes: no signing or cookie key is created meanwhile.
    await trx.raw(`SELECT pg_advisory_xact_lock(hashtext('portcullis:keys'))`);
    const store = createSealedColumnStore(trx);
    const resealed: Record<string, number> = {};
    let alreadyRotated = 0;
    for (const spec of SEALED_COLUMNS) {
      if (!(await store.exists(spec))) continue;
      let count = 0;
      for (const row of await store.rows(spec)) {
        const aad = spec.aad(row.key);
        if (envelopeKeyId(row.sealed) === to.keyId) {
          to.open(row.sealed, aad);
          alreadyRotated++;
          continue;
        }
        await store.update(spec, row.key, to.seal(from.open(row.sealed, aad), aad));
        count++;
      }
      resealed[`${spec.table}.${spec.column}`] = count;
    }
    return { from: from.keyId, to: to.keyId, resealed, alreadyRotated };
  });
}
