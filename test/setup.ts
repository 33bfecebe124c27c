import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { migrateLatest } from '../src/store/migrate.ts';

/**
 * The test harness (loaded by .mocharc.json's `require`): every test FILE gets its own Postgres
 * database, its own Redis key prefix and its own MASTER/VAULT/AUDIT keys, so files never see each
 * other's users, rate limits, lockouts or audit chains, and `mocha --parallel` can run them side by
 * side. The servers are shared (TEST_DATABASE_URL, TEST_REDIS_URL).
 *
 * - Once per run, in the main mocha process (mochaGlobalSetup, both serial and parallel mode), one
 *   template database is migrated; its name reaches the parallel workers through the environment.
 * - Before the first suite of each file, it gets a copy of it (CREATE DATABASE … TEMPLATE: under a
 *   second, where migrating takes seconds; made ahead, while the file before it runs); when the
 *   file is done, the copy and the extra databases of createTestDatabase() are dropped and the
 *   file's Redis keys deleted, without waiting. mochaGlobalTeardown drops whatever is left of the
 *   run, and mochaGlobalSetup what runs that were killed left.
 *
 * A parallel worker runs several files one after another in one process, and a serial run loads
 * every file before running any: `testEnv` therefore holds no values, only getters onto the file
 * that is running now. Read it inside hooks and tests, never at module or describe level (a read
 * there throws, naming the property).
 */
const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const TEMPLATE_ENV = 'PORTCULLIS_TEST_TEMPLATE_DB';
const RUN_ENV = 'PORTCULLIS_TEST_RUN';
const NAME_PREFIXES = ['portcullis_test_', 'portcullis_tmpl_'];

type FileEnv = {
  file: string;
  databaseName: string;
  databaseUrl: string;
  redisKeyPrefix: string;
  masterKey: string;
  vaultKey: string;
  auditKey: string;
  extraDatabases: string[];
};

let current: FileEnv | undefined;

function active(property: string): FileEnv {
  if (!current)
    throw new Error(
      `testEnv.${property} was read outside a test file's hooks and tests (at module or describe level?): ` +
        'each file gets its own database and keys when its first suite starts, so read testEnv inside before()/it()',
    );
  return current;
}

/** This file's database, Redis prefix and keys (see the top of this module: read inside hooks and tests). */
export const testEnv: {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly redisKeyPrefix: string;
  readonly masterKey: string;
  readonly vaultKey: string;
  readonly auditKey: string;
} = {
  get databaseUrl() {
    return active('databaseUrl').databaseUrl;
  },
  redisUrl,
  get redisKeyPrefix() {
    return active('redisKeyPrefix').redisKeyPrefix;
  },
  get masterKey() {
    return active('masterKey').masterKey;
  },
  get vaultKey() {
    return active('vaultKey').vaultKey;
  },
  get auditKey() {
    return active('auditKey').auditKey;
  },
};

function urlOf(databaseName: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  return url.toString();
}

async function withAdmin<T>(fn: (knex: knexFactory.Knex) => Promise<T>): Promise<T> {
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

function templateName(): string {
  const name = process.env[TEMPLATE_ENV];
  if (!name) throw new Error(`${TEMPLATE_ENV} is unset: test/setup.ts's mochaGlobalSetup did not run (load it with mocha's --require)`);
  return name;
}

export type TestDatabase = { name: string; url: string; drop(): Promise<void> };

/**
 * Another database for this file (a backup's source or restore target, a second deployment): a
 * migrated copy of the template, or an empty one with `{ empty: true }`. It is dropped with the
 * file's own, or earlier by `drop()` (a fresh one per test). `label` becomes part of the name
 * (lower case, digits, underscores) and is unique among the file's open databases.
 */
export async function createTestDatabase(label: string, options: { empty?: boolean } = {}): Promise<TestDatabase> {
  if (!/^[a-z0-9_]{1,24}$/.test(label)) throw new Error(`createTestDatabase: label ${JSON.stringify(label)} is not [a-z0-9_]{1,24}`);
  const env = active('createTestDatabase');
  const name = `${env.databaseName}_${label}`;
  if (env.extraDatabases.includes(name)) throw new Error(`createTestDatabase: ${label} is already open for this file`);
  await withAdmin((admin) => admin.raw(`CREATE DATABASE "${name}" TEMPLATE "${options.empty ? 'template0' : templateName()}"`));
  env.extraDatabases.push(name);
  return {
    name,
    url: urlOf(name),
    async drop() {
      await withAdmin((admin) => admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
      env.extraDatabases = env.extraDatabases.filter((open) => open !== name);
    },
  };
}

/**
 * PORTCULLIS_TEST_TIMES=<file>: a line per file opened and closed (milliseconds, event, process,
 * file), to find the slow files and to choose `--jobs` by measuring.
 */
function logTime(event: 'open' | 'close', file: string): void {
  const log = process.env.PORTCULLIS_TEST_TIMES;
  if (log) appendFileSync(log, `${Date.now()} ${event} ${process.pid} ${file}\n`);
}

function runName(): string {
  const name = process.env[RUN_ENV];
  if (!name) throw new Error(`${RUN_ENV} is unset: test/setup.ts's mochaGlobalSetup did not run (load it with mocha's --require)`);
  return name;
}

async function copyTemplate(): Promise<string> {
  const name = `${runName()}_${randomBytes(3).toString('hex')}`;
  await withAdmin((admin) => admin.raw(`CREATE DATABASE "${name}" TEMPLATE "${templateName()}"`));
  return name;
}

/**
 * The copy for the next file this process runs, made while the current file runs; and the drops
 * of finished files, not waited for. What a process leaves (the last spare, a drop cut short when
 * a parallel worker ends) goes in mochaGlobalTeardown, which drops everything named after the run.
 */
let spare: Promise<string | undefined> | undefined;
const pending = new Set<Promise<void>>();

function inBackground(work: () => Promise<void>): void {
  const done: Promise<void> = work().then(
    () => undefined,
    (error: unknown) => console.warn(`test/setup.ts: ${String(error)}`),
  );
  pending.add(done);
  void done.finally(() => pending.delete(done));
}

async function openFile(file: string): Promise<void> {
  const databaseName = (await spare) ?? (await copyTemplate());
  spare = copyTemplate().catch(() => undefined);
  current = {
    file,
    databaseName,
    databaseUrl: urlOf(databaseName),
    redisKeyPrefix: `test:${databaseName}:`,
    masterKey: randomBytes(32).toString('base64'),
    vaultKey: randomBytes(32).toString('base64'),
    auditKey: randomBytes(32).toString('base64'),
    extraDatabases: [],
  };
}

function closeFile(): void {
  const env = current;
  if (!env) return;
  logTime('close', env.file);
  current = undefined;
  inBackground(async () => {
    await dropDatabases([...env.extraDatabases, env.databaseName]);
    await deleteRedisKeys(`${env.redisKeyPrefix}*`);
  });
}

async function dropDatabases(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await withAdmin(async (admin) => {
    for (const name of names) await admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}

async function deleteRedisKeys(pattern: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Databases of earlier runs that were killed (their mocha process is gone) are dropped. */
async function dropLeftovers(admin: knexFactory.Knex): Promise<void> {
  const names = await admin('pg_database').where('datname', 'like', 'portcullis\\_t%').pluck<string[]>('datname');
  for (const name of names) {
    const prefix = NAME_PREFIXES.find((p) => name.startsWith(p));
    const pid = Number(prefix ? name.slice(prefix.length).split('_')[0] : NaN);
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    await admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Once per run, in the main process: the migrated template every file's database is copied from. */
export async function mochaGlobalSetup(): Promise<void> {
  const run = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const template = `portcullis_tmpl_${run}`;
  await withAdmin(async (admin) => {
    await dropLeftovers(admin);
    await admin.raw(`CREATE DATABASE "${template}"`);
  });
  const knex = knexFactory({ client: 'pg', connection: urlOf(template), pool: { min: 0, max: 1 } });
  try {
    await migrateLatest(knex);
  } finally {
    await knex.destroy();
  }
  // Forked workers inherit the environment; the pool is made after global setup.
  process.env[TEMPLATE_ENV] = template;
  process.env[RUN_ENV] = `portcullis_test_${run}`;
}

/** Once per run, in the main process: the template, and whatever the files' processes left of the run. */
export async function mochaGlobalTeardown(): Promise<void> {
  const template = process.env[TEMPLATE_ENV];
  const run = process.env[RUN_ENV];
  if (!template || !run) return;
  // A serial run's own work (in a parallel run, the workers have ended).
  await Promise.all(pending);
  await spare;
  const names = await withAdmin((admin) =>
    admin('pg_database')
      .where('datname', 'like', `${run.replaceAll('_', '\\_')}\\_%`)
      .pluck<string[]>('datname'),
  );
  await dropDatabases([...names, template]);
  await deleteRedisKeys(`test:${run}_*`);
}

const beforeAllHooksOf = (suite: Mocha.Suite): Mocha.Hook[] => {
  const list = (suite as unknown as { _beforeAll?: unknown })._beforeAll;
  if (!Array.isArray(list)) throw new Error("test/setup.ts: mocha's Suite._beforeAll is gone; the per-file hook needs another place");
  return list as Mocha.Hook[];
};

/** Makes `file` the open one: closes the file before it (a serial run), opens this one unless open. */
async function enterFile(file: string): Promise<void> {
  if (current?.file === file) return;
  closeFile();
  await openFile(file);
  logTime('open', file);
}

export const mochaHooks = {
  /**
   * The root suite holds the top-level suites of every file of this run (one file in a parallel
   * worker, all of them in a serial run). Each gets a first hook, before its own, that opens its
   * file's database unless open; the file before it is closed then, and the last at the end of the
   * run (a parallel worker's run is one file). Mocha has no public "before this file" hook, so the
   * hook is put first in the suite's list.
   */
  beforeAll(this: Mocha.Context) {
    const root = this.test?.parent;
    if (!root) throw new Error('test/setup.ts: the root hook has no suite');
    for (const suite of root.suites) {
      const file = suite.file ?? '(no file)';
      const hooks = beforeAllHooksOf(suite);
      const before = hooks.length;
      suite.beforeAll(`test/setup.ts: a database, Redis prefix and keys for ${basename(file)}`, async function () {
        this.timeout(60_000);
        await enterFile(file);
      });
      // A pending suite (describe.skip) takes no hooks.
      if (hooks.length > before) hooks.unshift(...hooks.splice(hooks.length - 1, 1));
    }
  },
  afterAll() {
    const last = current?.file;
    closeFile();
    reportLeaks(last);
  },
};

/**
 * Mocha runs with `exit: true`, so a test that leaves a server listening or a child running no
 * longer hangs the run; it is named here instead, to be fixed. A parallel worker runs one file
 * per root suite; a serial run's leak may come from any file.
 */
function reportLeaks(lastFile: string | undefined): void {
  const leaked = process.getActiveResourcesInfo().filter((kind) => kind === 'TCPServerWrap' || kind === 'ProcessWrap');
  const where = lastFile ? ` (by ${basename(lastFile)} or a file this process ran before it)` : '';
  if (leaked.length > 0) console.warn(`test run left open: ${leaked.join(', ')}${where}`);
}
