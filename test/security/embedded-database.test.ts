import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';
import { productionRefusal, runNode, spawnNode, waitForReady, type Spawned } from '../helpers/process.ts';
import { freePort } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

/** The unprivileged OS account the probe runs as (created here when missing, removed after). */
const probeUser = 'portcullis-s1-probe';

/**
 * What an unprivileged local user would try against the embedded database, as a bash script run
 * under `runuser`: a loopback scan (every listening socket in /proc/net/tcp{,6}, each tried as a
 * Postgres server with user postgres and no password), every Unix socket under DATA_DIR, and the
 * files themselves. A hit prints "FOUND". The control line proves the probe works as that user:
 * it reads the test Postgres (trust on 127.0.0.1) with the same psql.
 */
const probeScript = `#!/bin/bash
data="$1"; marker="$2"; control_host="$3"; control_port="$4"
query="select 'FOUND' from users where email = '$marker'"
try() { timeout 5 psql -XAtq "$1 user=postgres dbname=postgres connect_timeout=3 sslmode=disable" -c "$query" 2>/dev/null | grep -q FOUND && echo "$2 FOUND"; }
timeout 5 psql -XAtq "host=$control_host port=$control_port user=postgres dbname=postgres connect_timeout=3" -c "select 'control-ok'" 2>/dev/null
listening() { tail -n +2 "$1" | while read -r _ local _ st _; do [ "$st" = 0A ] && echo $((16#\${local##*:})); done | sort -un; }
for port in $(listening /proc/net/tcp); do try "host=127.0.0.1 port=$port" "tcp 127.0.0.1:$port" & done
for port in $(listening /proc/net/tcp6); do try "host=::1 port=$port" "tcp [::1]:$port" & done
for sock in $(find "$data" -type s 2>/dev/null); do
  name=$(basename "$sock"); try "host=$(dirname "$sock") port=\${name##*.}" "socket $sock" &
done
for dir in "$data" "$data"/*/; do try "host=$dir port=5432" "socket dir $dir" & done
wait
for file in "$data/master.key" "$data/pgdata/PG_VERSION"; do cat "$file" >/dev/null 2>&1 && echo "file $file FOUND"; done
echo probe-done
`;

describe('S1 the embedded database is closed to other local users', function () {
  this.timeout(120_000);
  let root: string;
  let dataDir: string;
  let env: Record<string, string>;
  let issuer: string;
  let server: Spawned | undefined;
  let createdUser = false;

  before(async function () {
    if (process.getuid?.() !== 0) {
      this.skip(); // needs root to create the unprivileged account and run the probe as it (CI runs as root)
    }
    if (spawnSync('id', ['-u', probeUser]).status !== 0) {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', probeUser]);
      createdUser = true;
    }
    // A data directory as a checkout's ./data usually is: inside world-readable directories,
    // itself created 0755 before Portcullis ever ran. Only Portcullis' own modes protect it.
    root = await mkdtemp(join(tmpdir(), 'portcullis-s1-'));
    await chmod(root, 0o755);
    dataDir = join(root, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    const [authPort, apiPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${authPort}`;
    env = {
      DATA_DIR: dataDir,
      ISSUER: issuer,
      AUTH_PORT: String(authPort),
      API_URL: `http://127.0.0.1:${apiPort}`,
      API_PORT: String(apiPort),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ARGON2_MEMORY_KIB: '8192',
      ARGON2_TIME_COST: '1',
    };
    server = spawnNode(['src/main.ts'], env);
    await waitForReady(`${issuer}/readyz`, 60_000);
  });

  after(async function () {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    if (root) await rm(root, { recursive: true, force: true });
    if (createdUser) spawnSync('userdel', [probeUser]);
  });

  it('S1 an unprivileged local user can open the embedded database neither by a loopback scan nor by its socket, while the CLI still attaches', async function () {
    // The CLI (same OS user as the server) attaches to the running server's database and writes a marker.
    const marker = `s1-${randomBytes(6).toString('hex')}@example.test`;
    const created = await runNode(
      ['src/cli.ts', 'users', 'create', '--email', marker, '--password-stdin'],
      env,
      'a long enough passphrase\n',
    );
    expect(created.code, created.stderr).to.equal(0);

    const script = join(root, 'probe.sh');
    await writeFile(script, probeScript, { mode: 0o755 });
    const control = new URL(testEnv.databaseUrl);
    const runProbe = (): string[] => {
      const probe = spawnSync(
        'runuser',
        ['-u', probeUser, '--', 'bash', script, dataDir, marker, control.hostname, control.port || '5432'],
        {
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      const output = `${probe.stdout}${probe.stderr}`;
      expect(output, 'the probe runs and can reach a Postgres as that user').to.include('control-ok').and.include('probe-done');
      return output.split('\n').filter((line) => line.includes('FOUND'));
    };
    expect(runProbe()).to.deep.equal([]);

    // Portcullis tightened DATA_DIR to 0700 (it holds the master key and the socket directory).
    expect((await stat(dataDir)).mode & 0o777).to.equal(0o700);

    // What protects the socket is the directories' modes, whatever the umask gave the socket file:
    // a world-writable socket stays closed; with DATA_DIR and the socket directory opened up too,
    // the same probe gets in (so the probe's socket branch works).
    const socketDir = join(dataDir, 'socket');
    const socketPath = join(socketDir, '.s.PGSQL.5432');
    await chmod(socketPath, 0o777);
    expect(runProbe()).to.deep.equal([]);
    await chmod(dataDir, 0o755);
    await chmod(socketDir, 0o755);
    try {
      expect(runProbe()).to.have.members([`socket ${socketPath} FOUND`, `socket dir ${socketDir}/ FOUND`]);
    } finally {
      await chmod(socketDir, 0o700);
      await chmod(dataDir, 0o700);
    }
  });

  it('S1 refuses a data directory, or a socket directory inside it, that another OS user owns (they could swap the socket)', async function () {
    const probeUid = Number(execFileSync('id', ['-u', probeUser], { encoding: 'utf8' }).trim());
    const foreign = join(root, 'foreign');
    await mkdir(foreign, { mode: 0o755 });
    await chown(foreign, probeUid, probeUid);
    const planted = join(root, 'planted');
    await mkdir(join(planted, 'socket'), { recursive: true, mode: 0o755 });
    await chown(join(planted, 'socket'), probeUid, probeUid);
    for (const [dir, owned] of [
      [foreign, foreign],
      [planted, join(planted, 'socket')],
    ] as const) {
      const result = await runNode(['src/cli.ts', 'migrate'], { DATA_DIR: dir, LOG_LEVEL: 'warn' });
      expect(result.code, result.stderr).to.equal(1);
      expect(result.stderr)
        .to.include(`${owned} belongs to uid ${probeUid}`)
        .and.include('run Portcullis and its CLI as the OS user that owns DATA_DIR');
      expect(await readdir(dir)).to.not.include('pgdata');
    }
  });
});

describe('S1 embedded mode is for development and trials', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(async function () {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-s1-prod-'));
  });

  after(async function () {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('S1 production refuses to start without DATABASE_URL, naming it, before opening anything in DATA_DIR', async function () {
    const { code, output, lines } = await productionRefusal([], {
      NODE_ENV: 'production',
      ISSUER: 'https://auth.example.test',
      API_URL: 'https://api.example.test',
      MASTER_KEY: testEnv.masterKey,
      DATA_DIR: dataDir,
      AUTH_PORT: '0',
      API_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    });
    expect(code, output).to.equal(1);
    expect(lines, output).to.have.length(1);
    expect(lines[0]).to.include(
      'DATABASE_URL (or DATABASE_URL_FILE) must be set; the embedded PGlite database is for development and trials only',
    );
    expect(await readdir(dataDir)).to.deep.equal([]);
  });

  it('S1 outside production the embedded database is allowed (the check is production-only)', function () {
    const development = loadConfig({ NODE_ENV: 'development', ISSUER: 'http://localhost:3000', DATA_DIR: dataDir });
    expect(productionSettingProblems(development)).to.deep.equal([]);
    const production = loadConfig({
      NODE_ENV: 'production',
      ISSUER: 'https://auth.example.test',
      MASTER_KEY: testEnv.masterKey,
      VAULT_KEY: testEnv.vaultKey,
      AUDIT_KEY: testEnv.auditKey,
      DATA_DIR: dataDir,
      DATABASE_URL: testEnv.databaseUrl,
    });
    expect(productionSettingProblems(production)).to.deep.equal([]);
  });
});
