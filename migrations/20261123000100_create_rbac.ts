import type { Knex } from 'knex';

const roles = [
  { name: 'user', description: 'Signed-in person: own profile and records.' },
  { name: 'auditor', description: 'Reads the audit log.' },
  { name: 'admin', description: 'Manages users, roles, clients and reads the audit log.' },
];

const permissions = [
  { name: 'profile:read', description: 'Read own profile.' },
  { name: 'records:read', description: 'Read own and shared records.' },
  { name: 'records:write', description: 'Create, change and delete own records.' },
  { name: 'records:share', description: 'Share own records with other users.' },
  { name: 'users:read', description: 'List and read user accounts.' },
  { name: 'users:write', description: 'Disable accounts and change roles.' },
  { name: 'audit:read', description: 'Read the audit log.' },
  { name: 'clients:manage', description: 'Register and change OAuth clients.' },
];

const grants: Record<string, string[]> = {
  user: ['profile:read', 'records:read', 'records:write', 'records:share'],
  auditor: ['profile:read', 'audit:read'],
  admin: permissions.map((p) => p.name),
};

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('roles', (t) => {
    t.text('name').primary();
    t.text('description').notNullable().defaultTo('');
    t.timestamps(true, true);
  });
  await knex.schema.createTable('permissions', (t) => {
    t.text('name').primary();
    t.text('description').notNullable().defaultTo('');
  });
  await knex.schema.createTable('role_permissions', (t) => {
    t.text('role').notNullable().references('roles.name').onDelete('CASCADE').onUpdate('CASCADE');
    t.text('permission').notNullable().references('permissions.name').onDelete('CASCADE');
    t.primary(['role', 'permission']);
  });
  await knex.schema.createTable('user_roles', (t) => {
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('role').notNullable().references('roles.name').onDelete('CASCADE').onUpdate('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'role']);
  });
  await knex('roles').insert(roles);
  await knex('permissions').insert(permissions);
  await knex('role_permissions').insert(
    Object.entries(grants).flatMap(([role, names]) => names.map((permission) => ({ role, permission }))),
  );
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['user_roles', 'role_permissions', 'permissions', 'roles']) await knex.schema.dropTable(table);
}
