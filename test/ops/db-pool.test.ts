import { expect } from 'chai';
import { createKnex } from '../../src/store/db.ts';
import { testEnv } from '../setup.ts';

/** docs/security.md: bounded pool, acquire timeout and statement timeout from the configuration. */
describe('database pool limits', function () {
  it('cancels statements over DB_STATEMENT_TIMEOUT_MS and fails acquisitions over DB_ACQUIRE_TIMEOUT_MS', async function () {
    const knex = createKnex(testEnv.databaseUrl, { poolMax: 1, acquireTimeoutMs: 300, statementTimeoutMs: 200 });
    try {
      const slow = await knex.raw('SELECT pg_sleep(2)').then(
        () => undefined,
        (error: unknown) => error as { code?: string },
      );
      expect(slow?.code).to.equal('57014'); // query_canceled

      // The only connection is busy: the next query gives up after the acquire timeout.
      let inside: () => void = () => undefined;
      const entered = new Promise<void>((resolve) => (inside = resolve));
      const holder = knex.transaction(async (trx) => {
        inside();
        await trx.raw('SELECT pg_sleep(0.15)');
        await trx.raw('SELECT pg_sleep(0.15)');
        await trx.raw('SELECT pg_sleep(0.15)');
      });
      await entered;
      const started = Date.now();
      const starved = await knex.raw('SELECT 1').then(
        () => undefined,
        (error: unknown) => error as Error,
      );
      expect(starved?.name).to.equal('KnexTimeoutError');
      expect(Date.now() - started).to.be.within(250, 1000);
      await holder;
    } finally {
      await knex.destroy();
    }
  });
});
