import type { Knex } from 'knex';

export class UnknownRoleError extends Error {
  constructor(role: string) {
    super(`unknown role: ${role}`);
    this.name = 'UnknownRoleError';
  }
}

export function createRoleStore(knex: Knex) {
  return {
    async rolesOf(userId: string): Promise<string[]> {
      const rows = await knex('user_roles').where({ user_id: userId }).orderBy('role').select<{ role: string }[]>('role');
      return rows.map((r) => r.role);
    },

    /** Whether any of the user's roles requires a second factor (R15: the API's step-up check). */
    async requiresMfa(userId: string): Promise<boolean> {
      const row: unknown = await knex('user_roles as ur')
        .join('roles as r', 'r.name', 'ur.role')
        .where({ 'ur.user_id': userId, 'r.requires_mfa': true })
        .first(knex.raw('1'));
      return row !== undefined;
    },

    /** Whether any of these roles requires a second factor. */
    async anyRequiresMfa(roleNames: readonly string[], trx: Knex = knex): Promise<boolean> {
      if (roleNames.length === 0) return false;
      const row: unknown = await trx('roles').whereIn('name', roleNames).where({ requires_mfa: true }).first(trx.raw('1'));
      return row !== undefined;
    },

    async permissionsOf(userId: string): Promise<string[]> {
      const rows = await knex('user_roles as ur')
        .join('role_permissions as rp', 'rp.role', 'ur.role')
        .where('ur.user_id', userId)
        .distinct('rp.permission')
        .orderBy('rp.permission')
        .select<{ permission: string }[]>();
      return rows.map((r) => r.permission);
    },

    async listNames(): Promise<string[]> {
      const rows = await knex('roles').orderBy('name').select<{ name: string }[]>('name');
      return rows.map((r) => r.name);
    },

    async assign(userId: string, roles: readonly string[], trx: Knex = knex): Promise<void> {
      if (roles.length === 0) return;
      const known = new Set((await trx('roles').whereIn('name', roles).select<{ name: string }[]>('name')).map((r) => r.name));
      const unknown = roles.find((r) => !known.has(r));
      if (unknown) throw new UnknownRoleError(unknown);
      await trx('user_roles')
        .insert(roles.map((role) => ({ user_id: userId, role })))
        .onConflict(['user_id', 'role'])
        .ignore();
    },
  };
}

export type RoleStore = ReturnType<typeof createRoleStore>;
