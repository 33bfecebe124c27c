import type { Knex } from 'knex';
import { notFound, Problem, problemType } from '../shared/problem.ts';
import type { RoleStore } from '../store/roles.ts';
import type { DirectoryEntry, UserDirectory } from '../store/user-directory.ts';
import type { AuditService } from './audit.ts';
import type { RbacService } from './rbac.ts';
import type { Actor } from './records.ts';
import { decodeCursor, encodeCursor } from '../shared/cursor.ts';

export type AdminUserView = {
  id: string;
  email: string;
  email_verified: boolean;
  name: string | null;
  disabled: boolean;
  roles: string[];
  created_at: string;
  updated_at: string;
};

const present = (user: DirectoryEntry, roles: string[]): AdminUserView => ({
  id: user.id,
  email: user.email,
  email_verified: user.email_verified,
  name: user.name,
  disabled: user.disabled,
  roles,
  created_at: user.created_at.toISOString(),
  updated_at: user.updated_at.toISOString(),
});

const conflict = (detail: string): Problem => new Problem({ status: 409, type: problemType('conflict'), title: 'Conflict', detail });

/** Account administration: list, read, disable/enable, replace roles. Every change is audited. */
export function createUserAdminService(deps: {
  knex: Knex;
  directory: UserDirectory;
  roles: RoleStore;
  rbac: RbacService;
  audit: AuditService;
}) {
  const { knex, directory, roles, rbac, audit } = deps;

  async function get(id: string): Promise<AdminUserView> {
    const user = await directory.find(id);
    if (!user) throw notFound('No user with this id.');
    return present(user, await roles.rolesOf(id));
  }

  return {
    get,

    async list(options: { limit: number; cursor?: string | undefined; emailPrefix?: string | undefined }) {
      const after = options.cursor ? decodeCursor('users', options.cursor) : undefined;
      const rows = await directory.list({ limit: options.limit + 1, emailPrefix: options.emailPrefix, after });
      const page = rows.slice(0, options.limit);
      const last = page.at(-1);
      const roleMap = await directory.rolesOf(page.map((u) => u.id));
      return {
        items: page.map((u) => present(u, roleMap.get(u.id) ?? [])),
        next_cursor: rows.length > options.limit && last ? encodeCursor('users', { at: last.cursor_at, id: last.id }) : null,
      };
    },

    async update(actor: Actor, id: string, patch: { disabled?: boolean; roles?: string[] }): Promise<AdminUserView> {
      // An administrator cannot lock themselves out by accident.
      if (id === actor.userId && patch.disabled === true) throw conflict('You cannot disable your own account.');
      if (id === actor.userId && patch.roles && !patch.roles.includes('admin')) throw conflict('You cannot remove your own admin role.');
      const known = new Set(await roles.listNames());
      const unknown = patch.roles?.find((r) => !known.has(r));
      if (unknown !== undefined)
        throw new Problem({
          status: 422,
          type: problemType('unknown-role'),
          title: 'Unknown role',
          detail: `There is no role "${unknown}".`,
        });
      const previousRoles = await roles.rolesOf(id);
      const before = await knex.transaction(async (trx) => {
        const user = await directory.find(id, trx);
        if (!user) return undefined;
        if (patch.disabled !== undefined) await directory.setDisabled(id, patch.disabled, trx);
        // A role that makes the account need a second factor it did not need: every sign-in made
        // so far (perhaps with the password alone) ends, so none carries the new role's
        // permissions; the next one passes the second factor (R15).
        const raisesMfa =
          patch.roles !== undefined && !(await roles.anyRequiresMfa(previousRoles, trx)) && (await roles.anyRequiresMfa(patch.roles, trx));
        if (patch.roles) await directory.replaceRoles(id, [...new Set(patch.roles)], trx);
        if (raisesMfa && patch.disabled !== true) await directory.endSignIns(id, trx);
        return { user, roles: previousRoles, signedOut: raisesMfa };
      });
      if (!before) throw notFound('No user with this id.');
      rbac.invalidate(id);
      const after = await get(id);
      await audit.record({
        type: 'user.updated',
        actorId: actor.userId,
        clientId: actor.clientId,
        ip: actor.ip,
        data: {
          user_id: id,
          ...(patch.disabled !== undefined ? { disabled: { from: before.user.disabled, to: after.disabled } } : {}),
          ...(patch.roles ? { roles: { from: before.roles, to: after.roles } } : {}),
          ...(before.signedOut ? { signed_out: true } : {}),
        },
      });
      return after;
    },
  };
}

export type UserAdminService = ReturnType<typeof createUserAdminService>;
