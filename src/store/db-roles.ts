import type { Knex } from 'knex';

/**
 * The database roles of a split deployment (issue 20, S3): the auth server connects as one, the
 * resource API as the other, and each may touch only what its code touches. The tables are owned
 * by the role that runs `portcullis migrate` (and `backup`, `db roles`), which neither server uses.
 *
 * What the API may not read is the point: signing keys, cookie keys, client secrets and
 * metadata, TOTP seeds, recovery codes, passkeys, initial access tokens, oidc_payloads (sessions,
 * codes, tokens), lockout counters, password hashes. Even sealed, they are the identity
 * server's; with MASTER_KEY out of the API process too, a compromised API can neither read nor
 * open them. The auth server in turn cannot read record payloads or the data keys that open them.
 *
 * Every table of the schema is listed, for both roles (null: nothing), and a test checks the list
 * against the migrated schema, so a new table cannot be forgotten. Foreign-key checks and ON
 * DELETE CASCADE run with the table owner's rights, so deleting an account (API) takes its MFA
 * factors with it without the API holding any right on them.
 */
type ColumnList = 'all' | readonly string[];
export type TableGrant = { select?: ColumnList; insert?: true; update?: ColumnList; delete?: true };
type RoleKind = 'auth' | 'api';

export const TABLE_GRANTS: Readonly<Record<string, Readonly<Record<RoleKind, TableGrant | null>>>> = {
  // Identity: the auth server owns accounts; the API reads what its admin and GDPR routes show,
  // disables (sessions_not_before) and erases.
  users: {
    auth: { select: 'all', insert: true, update: 'all' },
    api: {
      select: [
        'id',
        'email',
        'email_normalized',
        'email_verified',
        'name',
        'disabled',
        'created_at',
        'updated_at',
        'sessions_not_before',
        'sessions_not_before_keep',
      ],
      update: ['disabled', 'sessions_not_before', 'sessions_not_before_keep', 'updated_at'],
      delete: true,
    },
  },
  roles: { auth: { select: 'all', update: ['requires_mfa', 'updated_at'] }, api: { select: ['name', 'requires_mfa'] } },
  permissions: { auth: { select: 'all' }, api: null },
  role_permissions: { auth: { select: 'all' }, api: { select: 'all' } },
  user_roles: { auth: { select: 'all', insert: true }, api: { select: 'all', insert: true, delete: true } },
  // The identity server's secrets and state: never the API's.
  signing_keys: { auth: { select: 'all', insert: true, update: 'all' }, api: null },
  // The roots of the oidc state's keys and the recovery-code pepper (S2, S6): created at the first start, re-sealed by `keys reseal`.
  server_secrets: { auth: { select: 'all', insert: true, update: 'all' }, api: null },
  cookie_keys: { auth: { select: 'all', insert: true, update: 'all' }, api: null },
  oauth_clients: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  initial_access_tokens: { auth: { select: 'all', insert: true, update: 'all' }, api: null },
  mfa_totp: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  mfa_recovery_codes: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  webauthn_credentials: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  webauthn_challenges: { auth: { select: 'all', insert: true, delete: true }, api: null },
  lockouts: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  oidc_payloads: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  // The account index: written by the auth server; read by the API for the GDPR export and to
  // queue an erased account's sessions and grants, which only the auth server ends.
  account_oidc_index: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: { select: 'all' } },
  oidc_state_revocations: { auth: { select: 'all', delete: true }, api: { insert: true } },
  // The mail outbox (issue 12): sealed under MASTER_KEY, so written and sent by the auth server only.
  outbox: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  // Mailed verification codes (issue 12): sign-ups, address verification and changes, all the auth server's.
  email_codes: { auth: { select: 'all', insert: true, update: 'all', delete: true }, api: null },
  // Replay caches without Redis (DPoP proofs at the API; assertion and challenge ids at auth).
  dpop_proof_jtis: {
    auth: { select: 'all', insert: true, update: 'all', delete: true },
    api: { select: 'all', insert: true, update: 'all', delete: true },
  },
  // The audit chain: both append (AUDIT_KEY); only an erasure (API) pseudonymises.
  audit_events: {
    auth: { select: 'all', insert: true },
    api: { select: 'all', insert: true, update: ['ip', 'user_agent', 'personal_nonce', 'pseudonymised_tag'] },
  },
  // ON CONFLICT (user_id) needs to read the conflict target.
  erasure_journal: { auth: null, api: { select: ['user_id'], insert: true } },
  // The records vault: the API's. The auth server's account page lists offers and shares
  // (record id, type, owner) and answers them, never reading a payload or a data key.
  records: {
    auth: { select: ['id', 'owner_id', 'type', 'created_at', 'updated_at'] },
    api: { select: 'all', insert: true, update: 'all', delete: true },
  },
  record_shares: { auth: { select: 'all', insert: true, delete: true }, api: { select: 'all', insert: true, delete: true } },
  record_share_offers: {
    auth: { select: 'all', update: ['state', 'decided_at'], delete: true },
    api: { select: 'all', insert: true, update: ['state', 'decided_at'], delete: true },
  },
  share_declines: {
    auth: { select: 'all', insert: true, update: ['declined_at'] },
    api: { select: 'all', insert: true, update: ['declined_at'] },
  },
  user_data_keys: { auth: null, api: { select: 'all', insert: true, update: ['key_wrapped', 'rewrapped_at'], delete: true } },
  // Readiness and start-up check that the schema matches the release.
  knex_migrations: { auth: { select: 'all' }, api: { select: 'all' } },
  knex_migrations_lock: { auth: { select: 'all' }, api: { select: 'all' } },
};

/** Sequences behind the inserts each role makes. */
export const SEQUENCE_GRANTS: Readonly<Record<string, readonly RoleKind[]>> = {
  audit_events_id_seq: ['auth', 'api'],
  cookie_keys_id_seq: ['auth'],
  mfa_recovery_codes_id_seq: ['auth'],
};

/**
 * Session defaults set on each role: a lock held elsewhere (the audit chain's advisory lock, a
 * row) makes a statement fail after 5 s instead of hanging, and a transaction left idle is ended
 * after a minute, so a process holding a lock cannot stall the other for long. The servers also set
 * lock_timeout on every connection (DB_LOCK_TIMEOUT_MS).
 */
export const ROLE_SETTINGS = { lock_timeout: '5s', idle_in_transaction_session_timeout: '60s' } as const;

export const DEFAULT_ROLE_NAMES: Readonly<Record<RoleKind, string>> = { auth: 'portcullis_auth', api: 'portcullis_api' };

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export class DbRoleError extends Error {}

export type RoleSpec = { name: string; password?: string | undefined };
export type DbRolesReport = Record<RoleKind, { role: string; created: boolean; password_set: boolean }> & {
  tables: number;
  schema: string;
};

/** `"name"`: role, table and column names are checked against ROLE_NAME or come from TABLE_GRANTS. */
const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;

function columnClause(privilege: string, columns: ColumnList): string {
  return columns === 'all' ? privilege : `${privilege} (${columns.map(ident).join(', ')})`;
}

/** The GRANT statements of one role on the tables that exist (a table a later migration adds is granted by the next run). */
export function grantStatements(role: string, kind: RoleKind, schema: string, tables: ReadonlySet<string>): string[] {
  const statements: string[] = [];
  for (const [table, grants] of Object.entries(TABLE_GRANTS)) {
    // eslint-disable-next-line security/detect-object-injection -- kind is 'auth' or 'api'
    const grant = grants[kind];
    if (!grant || !tables.has(table)) continue;
    const privileges = [
      ...(grant.select ? [columnClause('SELECT', grant.select)] : []),
      ...(grant.insert ? ['INSERT'] : []),
      ...(grant.update ? [columnClause('UPDATE', grant.update)] : []),
      ...(grant.delete ? ['DELETE'] : []),
    ];
    statements.push(`GRANT ${privileges.join(', ')} ON ${ident(schema)}.${ident(table)} TO ${ident(role)}`);
  }
  for (const [sequence, roles] of Object.entries(SEQUENCE_GRANTS)) {
    if (roles.includes(kind)) statements.push(`GRANT USAGE ON SEQUENCE ${ident(schema)}.${ident(sequence)} TO ${ident(role)}`);
  }
  return statements;
}

/**
 * Creates the two roles if missing (LOGIN, no other attribute; with the password when given, else
 * none, for certificate or peer authentication), sets their session defaults, and replaces their
 * rights in this database and schema by exactly TABLE_GRANTS: everything is revoked first, in
 * the same transaction. Idempotent: run it after every `portcullis migrate`. Needs a role that
 * owns the tables and may create roles (CREATEROLE), as the migrations' role usually does.
 */
export async function applyDbRoles(knex: Knex, specs: Record<RoleKind, RoleSpec>): Promise<DbRolesReport> {
  for (const spec of Object.values(specs)) {
    if (!ROLE_NAME.test(spec.name))
      throw new DbRoleError(`role name ${JSON.stringify(spec.name)}: use lower-case letters, digits and _ (at most 63)`);
  }
  if (specs.auth.name === specs.api.name) throw new DbRoleError('the auth server and the API need two different roles');
  return knex.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { schema: string; database: string }[] }>(
      'SELECT current_schema() AS schema, current_database() AS database',
    );
    const { schema, database } = rows[0] ?? { schema: 'public', database: '' };
    const tables = new Set(
      (
        await trx('information_schema.tables')
          .where({ table_schema: schema, table_type: 'BASE TABLE' })
          .select<{ table_name: string }[]>('table_name')
      ).map((r) => r.table_name),
    );
    const report = { tables: tables.size, schema } as DbRolesReport;
    for (const kind of ['auth', 'api'] as const) {
      // eslint-disable-next-line security/detect-object-injection -- kind is 'auth' or 'api'
      const { name, password } = specs[kind];
      const existing: { rolsuper: boolean; rolcreaterole: boolean; rolbypassrls: boolean } | undefined = await trx('pg_roles')
        .where({ rolname: name })
        .first('rolsuper', 'rolcreaterole', 'rolbypassrls');
      const exists = existing !== undefined;
      // A role that can do more than log in (a superuser, say) is not the one this sets up.
      if (existing && (existing.rolsuper || existing.rolcreaterole || existing.rolbypassrls))
        throw new DbRoleError(
          `role ${name} exists with SUPERUSER, CREATEROLE or BYPASSRLS; it would not be limited by grants: use another name`,
        );
      const verb = exists ? 'ALTER' : 'CREATE';
      // The password as a literal (DDL takes no parameters), quoted by Postgres itself.
      const literal =
        password === undefined
          ? undefined
          : (await trx.raw<{ rows: { q: string }[] }>('SELECT quote_literal(?::text) AS q', [password])).rows[0]?.q;
      await trx.raw(
        `${verb} ROLE ${ident(name)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION${literal ? ` PASSWORD ${literal}` : ''}`,
      );
      for (const [setting, value] of Object.entries(ROLE_SETTINGS)) await trx.raw(`ALTER ROLE ${ident(name)} SET ${setting} = '${value}'`);
      await trx.raw(`REVOKE ALL ON ALL TABLES IN SCHEMA ${ident(schema)} FROM ${ident(name)}`);
      await trx.raw(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${ident(schema)} FROM ${ident(name)}`);
      await trx.raw(`GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(name)}`);
      await trx.raw(`GRANT USAGE ON SCHEMA ${ident(schema)} TO ${ident(name)}`);
      for (const statement of grantStatements(name, kind, schema, tables)) await trx.raw(statement);
      // eslint-disable-next-line security/detect-object-injection -- kind is 'auth' or 'api'
      report[kind] = { role: name, created: !exists, password_set: literal !== undefined };
    }
    return report;
  });
}
