import type { Knex } from 'knex';

/**
 * R7: one normalised email (NFKC, trim, lower case) identifies an account, for storage, lookup
 * and the lockout key. Before, uniqueness and lookup used Postgres lower(), which differs from
 * JavaScript's (e.g. İ) and ignores compatibility forms (full-width letters).
 *
 * The normalisation is copied here rather than imported from src/shared/email.ts: a migration
 * must keep doing what it did when it first ran.
 *
 * Accounts whose addresses become equal after normalisation are never merged: the migration
 * stops (rolled back, nothing changed) and names them, so that an operator decides.
 */
const normalise = (email: string): string => email.normalize('NFKC').trim().toLowerCase();

export async function up(knex: Knex): Promise<void> {
  const rows = await knex('users')
    .select<{ id: string; email: string }[]>('id', 'email')
    .orderBy([{ column: 'created_at' }, { column: 'id' }]);
  const byAddress = new Map<string, { id: string; email: string }[]>();
  for (const row of rows) {
    const key = normalise(row.email);
    byAddress.set(key, [...(byAddress.get(key) ?? []), row]);
  }
  const collisions = [...byAddress.entries()].filter(([, accounts]) => accounts.length > 1);
  if (collisions.length > 0) {
    const lines = collisions.map(
      ([address, accounts]) => `  ${address}: ${accounts.map((a) => `${a.id} (${JSON.stringify(a.email)})`).join(', ')}`,
    );
    throw new Error(
      `Cannot normalise email addresses: these accounts would share one address. Change the email of all but one of each group ` +
        `(or erase the duplicates), then run the migration again. Nothing was changed.\n${lines.join('\n')}`,
    );
  }
  await knex.schema.alterTable('users', (t) => {
    t.text('email_normalized');
  });
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await knex.raw(
      `UPDATE users SET email_normalized = v.address FROM (VALUES ${chunk.map(() => '(?::uuid, ?)').join(', ')}) AS v(id, address) WHERE users.id = v.id`,
      chunk.flatMap((row) => [row.id, normalise(row.email)]),
    );
  }
  await knex.raw('ALTER TABLE users ALTER COLUMN email_normalized SET NOT NULL');
  await knex.raw('CREATE UNIQUE INDEX users_email_normalized_unique ON users (email_normalized)');
  // lower(email) was the old identity; keeping its index would refuse addresses that are
  // different under the one normalisation (and differently per database locale).
  await knex.raw('DROP INDEX users_email_lower_unique');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX users_email_normalized_unique');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('email_normalized');
  });
  await knex.raw('CREATE UNIQUE INDEX users_email_lower_unique ON users (lower(email))');
}
