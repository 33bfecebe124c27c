import type { Knex } from 'knex';

/**
 * Every change to a client that matters to its use (metadata, secret, disabled), made by any
 * process or by hand in SQL, notifies the channel `portcullis_client_changed` with the client id
 * when it commits. Each auth instance listens and drops the client from its in-memory cache
 * (src/store/client-changes.ts), so `portcullis clients disable` takes effect everywhere at once.
 * The hourly last-use stamp does not notify.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION portcullis_notify_client_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('portcullis_client_changed', CASE WHEN TG_OP = 'DELETE' THEN OLD.client_id ELSE NEW.client_id END);
      RETURN NULL;
    END
    $$`);
  await knex.raw(`
    CREATE TRIGGER oauth_clients_notify_change
    AFTER INSERT OR DELETE OR UPDATE OF metadata, secret_sealed, secret_hash, disabled ON oauth_clients
    FOR EACH ROW EXECUTE FUNCTION portcullis_notify_client_change()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER IF EXISTS oauth_clients_notify_change ON oauth_clients');
  await knex.raw('DROP FUNCTION IF EXISTS portcullis_notify_client_change()');
}
