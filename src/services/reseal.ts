import type { Knex } from 'knex';
import { DecryptionError } from '../shared/crypto-box.ts';
import type { KeyRing } from '../shared/key-ring.ts';
import { createSealedColumnStore, type SealedColumn } from '../store/sealed-columns.ts';

/** Every sealed column, and those sealed under MASTER_KEY (the table is the store's: src/store/sealed-columns.ts). */
export { MASTER_COLUMNS, SEALED_COLUMNS } from '../store/sealed-columns.ts';

export type ResealReport = {
  current: string;
  /** Values moved to the current key, per `table.column`. */
  resealed: Record<string, number>;
  /** Values rewritten by someone else between our read and our write: left as they are now. */
  changed_meanwhile: number;
  /** Values no key of the ring opens (their key id is not configured): nothing can move them. */
  unreadable: { column: string; key: string; key_id: string }[];
};

export type SealStatus = {
  current: string;
  previous: readonly string[];
  /** Per `table.column`: how many values each key id seals. */
  tables: Record<string, Record<string, number>>;
  /** Values under a key other than the current one (a previous key, the legacy id, an unknown key). */
  not_current: number;
  /** Of those, values under a key the ring does not hold: lost unless that key is found. */
  unreadable: number;
};

/** At most this many passes: a value rewritten meanwhile is retried once the pass is over. */
const PASSES = 3;

/**
 * `portcullis keys reseal`: moves every value of `columns` that is not under the ring's current key
 * to it, while instances run. Batches of `batchSize` rows in key order, one short transaction each;
 * each value is rewritten only where the row still holds what was read (compare and set), so a
 * concurrent writer always wins and is never overwritten. Idempotent: values already under the
 * current key are never read. Record payloads are sealed under the data keys and never touched.
 */
export async function resealColumns(
  knex: Knex,
  ring: KeyRing,
  columns: readonly SealedColumn[],
  options: { batchSize?: number } = {},
): Promise<ResealReport> {
  const batchSize = options.batchSize ?? 500;
  const store = createSealedColumnStore(knex);
  const resealed = new Map<string, number>();
  const report: ResealReport = { current: ring.keyId, resealed: {}, changed_meanwhile: 0, unreadable: [] };
  for (const spec of columns) {
    if (!(await store.exists(spec))) continue;
    const name = `${spec.table}.${spec.column}`;
    let moved = 0;
    const unreadable = new Set<string>();
    for (let pass = 0; pass < PASSES; pass++) {
      let changed = 0;
      let after: string | undefined;
      for (;;) {
        const rows = await store.notUnder(spec, ring.keyId, batchSize, after);
        const last = rows.at(-1);
        if (!last) break;
        after = last.key;
        await knex.transaction(async (trx) => {
          for (const row of rows) {
            if (unreadable.has(row.key)) continue;
            let plaintext: Buffer;
            try {
              plaintext = ring.open(row.sealed, spec.aad(row.key));
            } catch (error) {
              if (!(error instanceof DecryptionError)) throw error;
              unreadable.add(row.key);
              report.unreadable.push({ column: name, key: row.key, key_id: row.sealed.split('.')[1] ?? '' });
              continue;
            }
            if (await store.replace(spec, row.key, row.sealed, ring.seal(plaintext, spec.aad(row.key)), trx)) moved += 1;
            else changed += 1;
          }
        });
        if (rows.length < batchSize) break;
      }
      report.changed_meanwhile += changed;
      if (changed === 0) break;
    }
    resealed.set(name, moved);
  }
  return { ...report, resealed: Object.fromEntries(resealed) };
}

/** `portcullis keys status`: how many values each key seals, per column, and how many are not under the current key. */
export async function sealStatus(knex: Knex, ring: KeyRing, columns: readonly SealedColumn[]): Promise<SealStatus> {
  const store = createSealedColumnStore(knex);
  const status: SealStatus = { current: ring.keyId, previous: ring.previousKeyIds, tables: {}, not_current: 0, unreadable: 0 };
  for (const spec of columns) {
    if (!(await store.exists(spec))) continue;
    const counts = await store.countByKeyId(spec);
    status.tables[`${spec.table}.${spec.column}`] = counts;
    for (const [keyId, count] of Object.entries(counts)) {
      if (keyId === ring.keyId) continue;
      status.not_current += count;
      if (!ring.opensKeyIds.includes(keyId)) status.unreadable += count;
    }
  }
  return status;
}
