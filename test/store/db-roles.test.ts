import { expect } from 'chai';
import knexFactory from 'knex';
import { SEQUENCE_GRANTS, TABLE_GRANTS } from '../../src/store/db-roles.ts';
import { testEnv } from '../setup.ts';

/**
 * The grants of the two roles (S3) name every table of the migrated schema, for both roles, so a
 * table added by a migration cannot be forgotten (it would be refused to both servers, or worse,
 * granted by hand), and every column and sequence they name exists.
 */
describe('database roles (src/store/db-roles.ts)', function () {
  it('S3 every table of the schema is classified for both roles, and every granted column exists', async function () {
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      const columns = await knex('information_schema.columns')
        .where({ table_schema: knex.raw('current_schema()') })
        .select<{ table_name: string; column_name: string }[]>('table_name', 'column_name');
      const tables = await knex('information_schema.tables')
        .where({ table_schema: knex.raw('current_schema()'), table_type: 'BASE TABLE' })
        .pluck<string[]>('table_name');
      expect(Object.keys(TABLE_GRANTS).sort()).to.deep.equal([...tables].sort());
      for (const [table, roles] of Object.entries(TABLE_GRANTS)) {
        const existing = new Set(columns.filter((c) => c.table_name === table).map((c) => c.column_name));
        for (const grant of Object.values(roles)) {
          for (const list of [grant?.select, grant?.update]) {
            if (list === undefined || list === 'all') continue;
            for (const column of list) expect(existing.has(column), `${table}.${column}`).to.equal(true);
          }
        }
      }
      const sequences = await knex('information_schema.sequences')
        .where({ sequence_schema: knex.raw('current_schema()') })
        .pluck<string[]>('sequence_name');
      for (const sequence of Object.keys(SEQUENCE_GRANTS)) expect(sequences, sequence).to.include(sequence);
      // The identity server's secrets are never the API's.
      for (const table of [
        'signing_keys',
        'cookie_keys',
        'oauth_clients',
        'initial_access_tokens',
        'mfa_totp',
        'mfa_recovery_codes',
        'webauthn_credentials',
        'oidc_payloads',
      ])
        expect(TABLE_GRANTS[table]?.api, table).to.equal(null);
    } finally {
      await knex.destroy();
    }
  });
});
