import { expect } from 'chai';
import knexFactory from 'knex';
import { SEALED_COLUMNS } from '../../src/store/sealed-columns.ts';
import { testEnv } from '../setup.ts';

/**
 * `keys reseal` and `keys status` see only the columns SEALED_COLUMNS lists: a sealed column left
 * out would stay under the old master key and be lost with it (S2). Sealed columns are named
 * `*_sealed` or `*_wrapped`; record payloads are sealed under the owners' data keys, not the master key.
 */
describe('sealed columns', function () {
  it('S2 SEALED_COLUMNS names every column of the schema sealed under the master key', async function () {
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      const rows = await knex('information_schema.columns')
        .where({ table_schema: knex.raw('current_schema()') })
        .andWhere((q) => void q.where('column_name', 'like', '%\\_sealed').orWhere('column_name', 'like', '%\\_wrapped'))
        .select<{ table_name: string; column_name: string }[]>('table_name', 'column_name');
      const inSchema = rows.map((r) => `${r.table_name}.${r.column_name}`).filter((c) => c !== 'records.payload_sealed');
      expect(inSchema).to.have.members(SEALED_COLUMNS.map((s) => `${s.table}.${s.column}`));
    } finally {
      await knex.destroy();
    }
  });
});
