import type { Knex } from 'knex';
import type { Config } from '../config/types.ts';
import type { AuditLogDeps, Deps } from '../deps.ts';

/**
 * What src/cli.ts hands every command group: how to reach storage (the composition is
 * src/deps.ts) and how to print. Each group registers its commands with the part it needs.
 */

/** The auth server's dependencies (MASTER_KEY; VAULT_KEY when set), closed after `fn`. */
export type WithDeps = <T>(fn: (deps: Deps) => Promise<T>) => Promise<T>;

/** The database alone (migrations, roles, vault rewraps): `embedded` says whether it is PGlite in DATA_DIR. */
export type CliDatabase = { knex: Knex; embedded: boolean };
export type WithDatabase = <T>(fn: (database: CliDatabase, config: Config) => Promise<T>) => Promise<T>;

/** The database and its audit log under AUDIT_KEY, without MASTER_KEY (backups). */
export type WithAuditLog = <T>(fn: (deps: AuditLogDeps) => Promise<T>) => Promise<T>;

/** Prints a command's result as JSON on stdout. */
export type Print = (value: unknown) => void;

/** A failure the operator acts on: one line on stderr, exit code 1. */
export class CliError extends Error {}
