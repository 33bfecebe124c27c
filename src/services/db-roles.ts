import type { Knex } from 'knex';
import { applyDbRoles, DbRoleError, DEFAULT_ROLE_NAMES, type DbRolesReport, type RoleSpec } from '../store/db-roles.ts';

export { DbRoleError, DEFAULT_ROLE_NAMES };

/**
 * `portcullis db roles` (S3): the two roles of a split deployment with this release's grants
 * (src/store/db-roles.ts). Refused on the embedded database, which serves one process as its only
 * user.
 */
export async function setUpDbRoles(
  database: { knex: Knex; embedded: boolean },
  specs: { auth: RoleSpec; api: RoleSpec },
): Promise<DbRolesReport> {
  if (database.embedded)
    throw new DbRoleError(
      'the embedded database serves one process as its only user; database roles are for a Postgres server (DATABASE_URL)',
    );
  return applyDbRoles(database.knex, specs);
}
