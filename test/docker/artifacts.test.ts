import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse } from 'yaml';
import { loadConfig, settings } from '../../src/config/load.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';
import { internalTlsOptions } from '../../src/shared/tls.ts';
import { apiAclRules } from '../../src/services/redis-acl.ts';
import { envExamplePath, renderEnvExample, renderMarkdown } from '../../scripts/env-example.ts';

/**
 * There is no Docker engine in CI, so the container artifacts are checked by parsing them: the
 * compose file's structure and secret handling, the Dockerfile's runtime conventions (ECOSYSTEM
 * §B.15), and that .env.example matches config/schema.json.
 */
const root = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

type Healthcheck = { test?: string | string[]; disable?: boolean };
type Service = {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  secrets?: (string | { source: string; target?: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  restart?: string;
  init?: boolean;
  ports?: (string | number | Record<string, unknown>)[];
  deploy?: { replicas?: number };
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
  volumes?: string[];
  profiles?: string[];
  stop_grace_period?: string;
};
type Compose = {
  services: Record<string, Service>;
  networks?: Record<string, { internal?: boolean; ipam?: { config?: Record<string, string>[] } } | null>;
  secrets?: Record<string, { file?: string; environment?: string; external?: boolean }>;
};

const asText = (value: string | string[] | undefined): string => (Array.isArray(value) ? value.join(' ') : (value ?? ''));

function environmentOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const at = entry.indexOf('=');
        return at === -1 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

const secretsOf = (service: Service): string[] => (service.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source));

function dependencyConditions(service: Service): Record<string, string> {
  const deps = service.depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, dep]) => [name, dep.condition ?? 'service_started']));
}

/** Variables whose value is a credential: every x-secret setting plus the usual suspects. */
const secretSettingNames = new Set(settings.filter((s) => s.secret).map((s) => s.env));
const looksSecret = (name: string): boolean =>
  secretSettingNames.has(name) || /(PASSWORD|PASSWD|SECRET|TOKEN|_KEY|_KEYS|CREDENTIALS?)$/.test(name);

describe('docker/compose.yaml', function () {
  const compose = parse(read('docker/compose.yaml'), { merge: true }) as Compose;
  const { services } = compose;
  const appServices = ['auth', 'api'] as const;
  const imageServices = ['migrate', 'auth', 'api'] as const;

  it('defines postgres, redis, the one-shot migrate and both app services', function () {
    expect(Object.keys(services)).to.include.members(['postgres', 'redis', 'migrate', 'auth', 'api']);
  });

  it('pins every image to a major version (no latest, no bare name)', function () {
    expect(services.postgres?.image).to.equal('postgres:17-alpine');
    expect(services.redis?.image).to.equal('redis:7-alpine');
    for (const [name, service] of Object.entries(services)) {
      if (service.build) {
        expect(service.build.dockerfile, `${name} builds docker/Dockerfile`).to.equal('docker/Dockerfile');
        continue;
      }
      expect(service.image, `${name}.image`).to.match(/^[\w./-]+:\d+(\.\d+)*(-[\w.]+)?$/);
    }
    const from = [...read('docker/Dockerfile').matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]);
    expect(from).to.have.length.greaterThan(1, 'multi-stage build');
    for (const image of from) expect(image).to.equal('node:24-bookworm-slim');
  });

  it('gives postgres, redis and both app services a healthcheck', function () {
    expect(asText(services.postgres?.healthcheck?.test)).to.include('pg_isready');
    expect(asText(services.redis?.healthcheck?.test)).to.match(/redis-cli .*ping/);
    // HTTPS inside (S7), checked against the internal CA.
    expect(asText(services.auth?.healthcheck?.test)).to.include('https://127.0.0.1:3000/healthz');
    // --only api listens on the API port only, so the image's default (port 3000) must be overridden.
    expect(asText(services.api?.healthcheck?.test)).to.include('https://127.0.0.1:4000/healthz');
    for (const name of ['postgres', 'redis', ...appServices]) {
      expect(services[name]?.healthcheck?.disable, name).to.not.equal(true);
      expect(asText(services[name]?.healthcheck?.test), name).to.not.match(/\b(curl|wget)\b/);
    }
  });

  it('runs redis with an append-only file and the noeviction policy', function () {
    const redis = `${asText(services.redis?.entrypoint)} ${asText(services.redis?.command)}`;
    expect(redis).to.match(/--appendonly yes\b/);
    expect(redis).to.match(/--maxmemory-policy noeviction\b/);
  });

  it('migrates once before the app services start', function () {
    const migrate = services.migrate as Service;
    // Then sets up the two database roles for this release's tables (S3).
    expect(asText(migrate.command)).to.match(/^\/bin\/sh -c node src\/cli\.ts migrate && exec node src\/cli\.ts db roles /);
    expect(migrate.restart ?? 'no').to.equal('no');
    expect(dependencyConditions(migrate)).to.include({ postgres: 'service_healthy' });
    for (const name of appServices) {
      expect(dependencyConditions(services[name] as Service), name).to.include({
        migrate: 'service_completed_successfully',
        postgres: 'service_healthy',
        redis: 'service_healthy',
      });
    }
  });

  it('starts the auth and api roles from the same image with node, never npm', function () {
    expect(services.auth?.command).to.deep.equal(['node', 'src/main.ts', '--only', 'auth']);
    expect(services.api?.command).to.deep.equal(['node', 'src/main.ts', '--only', 'api']);
    for (const name of imageServices) {
      const service = services[name] as Service;
      expect(service.build?.context, name).to.equal('..');
      expect(service.image, name).to.equal(services.auth?.image);
      expect(service.init, `${name} runs under an init process`).to.equal(true);
      expect(`${asText(service.entrypoint)} ${asText(service.command)}`, name).to.not.match(/\bnpm\b/);
    }
    expect(environmentOf(services.api as Service).JWKS_URL).to.equal('https://auth:3443/jwks');
  });

  it('passes the app its credentials as *_FILE secrets', function () {
    const credentials = {
      auth: ['MASTER_KEY', 'AUDIT_KEY', 'DATABASE_URL', 'REDIS_URL'],
      api: ['VAULT_KEY', 'AUDIT_KEY', 'DATABASE_URL', 'REDIS_URL'],
    };
    for (const name of appServices) {
      const service = services[name] as Service;
      const env = environmentOf(service);
      for (const variable of credentials[name]) {
        expect(env, `${name} ${variable}`).to.have.property(`${variable}_FILE`);
        expect(env, `${name} ${variable}`).to.not.have.property(variable);
      }
    }
    expect(environmentOf(services.migrate as Service)).to.have.property('DATABASE_URL_FILE');
    expect(environmentOf(services.postgres as Service)).to.have.property('POSTGRES_PASSWORD_FILE');
  });

  it('commits no secret value: secret-like variables are *_FILE paths into mounted secrets', function () {
    const declared = compose.secrets ?? {};
    for (const [name, secret] of Object.entries(declared)) {
      expect(secret.file, `secret ${name} comes from a file`).to.match(/^\.\/secrets\/[\w.-]+$/);
      expect(secret, `secret ${name}`).to.not.have.property('environment');
    }
    for (const [serviceName, service] of Object.entries(services)) {
      const mounted = secretsOf(service);
      for (const secret of mounted) expect(declared, `${serviceName} mounts ${secret}`).to.have.property(secret);
      for (const [variable, value] of Object.entries(environmentOf(service))) {
        const where = `${serviceName}.environment.${variable}`;
        expect(looksSecret(variable), `${where} must be given as ${variable}_FILE`).to.equal(false);
        expect(value, `${where} embeds credentials in a URL`).to.not.match(/:\/\/[^/\s@]*:[^/\s@]+@/);
        if (variable.endsWith('_FILE')) {
          const match = /^\/run\/secrets\/([\w.-]+)$/.exec(value);
          expect(match, `${where} points into /run/secrets`).to.not.equal(null);
          expect(mounted, `${serviceName} mounts the secret ${where} names`).to.include(match?.[1]);
        }
      }
    }
  });

  it('runs two auth replicas and the API behind nginx, the only service publishing ports', function () {
    expect(services.auth?.deploy?.replicas).to.equal(2);
    expect(services.nginx?.image).to.match(/^nginx:\d/);
    expect(services.nginx?.ports).to.have.members(['8443:8443', '9443:9443']);
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'nginx') expect(service.ports, `${name} publishes no port`).to.equal(undefined);
    }
    expect(dependencyConditions(services.nginx as Service)).to.include({
      auth: 'service_healthy',
      api: 'service_healthy',
      'tls-cert': 'service_completed_successfully',
    });
    // nginx reaches the app only; Postgres and Redis sit on an internal network with the app.
    // nginx has a fixed address on the edge network, the only one TRUST_PROXY names (R13).
    expect(services.nginx?.networks).to.deep.equal({ edge: { ipv4_address: '${PORTCULLIS_NGINX_ADDRESS:-172.30.250.250}' } });
    const edge = compose.networks?.edge?.ipam?.config?.[0];
    expect(edge).to.deep.equal({
      subnet: '${PORTCULLIS_EDGE_SUBNET:-172.30.250.0/24}',
      ip_range: '${PORTCULLIS_EDGE_DYNAMIC_RANGE:-172.30.250.0/25}',
    });
    for (const name of ['postgres', 'redis']) expect(services[name]?.networks, name).to.deep.equal(['backend']);
    for (const name of appServices) expect(services[name]?.networks, name).to.have.members(['edge', 'backend']);
    expect(compose.networks?.backend?.internal).to.equal(true);
  });

  it('terminates TLS in nginx with a self-signed certificate generated at start into a volume', function () {
    const init = services['tls-cert'] as Service;
    expect(asText(init.entrypoint))
      .to.match(/test -s \/certs\/tls\.crt \|\|/)
      .and.match(/openssl req -x509 .*-subj \/CN=localhost .*subjectAltName=DNS:localhost/);
    expect(init.restart).to.equal('no');
    expect(init.volumes).to.include('tls-certs:/certs');
    expect(services.nginx?.volumes).to.include.members([
      'tls-certs:/etc/nginx/certs:ro',
      './nginx.conf:/etc/nginx/portcullis/nginx.conf:ro',
    ]);
    const nginx = read('docker/nginx.conf');
    expect(nginx).to.include('ssl_certificate /etc/nginx/certs/tls.crt;').and.include('ssl_certificate_key /etc/nginx/certs/tls.key;');
    expect(nginx)
      .to.match(/listen 8443 ssl;[\s\S]*proxy_pass https:\/\/portcullis_auth;/)
      .and.match(/listen 9443 ssl;[\s\S]*proxy_pass https:\/\/portcullis_api;/);
    expect(nginx)
      .to.match(/server auth:3000\b/)
      .and.match(/server api:4000\b/);
    // With TRUST_PROXY the app keys rate limits on X-Forwarded-For: nginx must overwrite it, not append (T34).
    expect(nginx).to.include('proxy_set_header X-Forwarded-For $remote_addr;').and.include('proxy_set_header X-Forwarded-Proto https;');
    expect(nginx).to.not.include('$proxy_add_x_forwarded_for');
    expect(nginx).to.not.match(/BEGIN [A-Z ]*PRIVATE KEY/);
  });

  it('configures the operational settings with names config/schema.json knows', function () {
    const known = new Set(settings.flatMap((s) => (s.secret ? [s.env, `${s.env}_FILE`] : [s.env])));
    for (const name of [...imageServices, 'backup', 'rewrap-vault']) {
      for (const variable of Object.keys(environmentOf(services[name] as Service)))
        expect(known, `${name}: ${variable}`).to.include(variable);
    }
    for (const name of appServices) {
      const env = environmentOf(services[name] as Service);
      expect(env, name).to.include({ TRUST_PROXY: '${PORTCULLIS_NGINX_ADDRESS:-172.30.250.250}', METRICS_PORT: '9464' });
      expect(env.ISSUER, name).to.match(/^\$\{PORTCULLIS_ISSUER:-https:\/\//);
      // Docker's stop timeout must cover the app's own drain deadline (delay + timeout + 5 s).
      const budget = Number(env.SHUTDOWN_DELAY) + Number(env.SHUTDOWN_TIMEOUT) + 5;
      expect(Number.parseInt(services[name]?.stop_grace_period ?? '10', 10), name).to.be.above(budget);
    }
  });

  it('runs redis with AOF and noeviction, and backups with a key only the backup service holds', function () {
    const backup = services.backup as Service;
    expect(backup.profiles).to.deep.equal(['tools']);
    expect(asText(backup.command)).to.match(/node src\/cli\.ts backup create --out /);
    expect(environmentOf(backup).BACKUP_KEY_FILE).to.equal('/run/secrets/backup_key');
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'backup') expect(secretsOf(service), name).to.not.include('backup_key');
    }
  });

  it('S8 keeps the backups apart from MASTER_KEY: the backup service has BACKUP_KEY and the database URL only, and no other service mounts the backups', function () {
    const backup = services.backup as Service;
    // (and AUDIT_KEY: `backup create` records the file in the keyed audit chain, R8)
    expect(secretsOf(backup).sort()).to.deep.equal(['audit_key', 'backup_key', 'database_url']);
    expect(
      Object.keys(environmentOf(backup))
        .filter((name) => looksSecret(name.replace(/_FILE$/, '')))
        .sort(),
    ).to.deep.equal(['AUDIT_KEY_FILE', 'BACKUP_KEY_FILE', 'DATABASE_URL_FILE']);
    const backupVolume = (backup.volumes ?? []).map((volume) => volume.split(':')[0]);
    expect(backupVolume).to.deep.equal(['backups']);
    for (const [name, service] of Object.entries(services)) {
      if (name === 'backup') continue;
      expect(
        (service.volumes ?? []).map((volume) => volume.split(':')[0]),
        name,
      ).to.not.include('backups');
      // Whoever holds MASTER_KEY holds neither the backup key nor the backups.
      if (secretsOf(service).includes('master_key')) expect(secretsOf(service), name).to.not.include('backup_key');
    }
  });

  it('S2 the MASTER_KEY rotation override gives every service holding master_key the previous key as MASTER_KEY_PREVIOUS_FILE, and nothing else', function () {
    const override = parse(read('docker/compose.rotate-master.yaml')) as Compose;
    expect(override.secrets).to.deep.equal({ master_key_previous: { file: './secrets/master_key_previous' } });
    const holders = Object.entries(services)
      .filter(([, service]) => secretsOf(service).includes('master_key'))
      .map(([name]) => name);
    expect(Object.keys(override.services).sort()).to.deep.equal(holders.sort());
    for (const [name, service] of Object.entries(override.services)) {
      expect(environmentOf(service), name).to.deep.equal({ MASTER_KEY_PREVIOUS_FILE: '/run/secrets/master_key_previous' });
      expect(secretsOf(service), name).to.deep.equal(['master_key_previous']);
      expect(Object.keys(service).sort(), name).to.deep.equal(['environment', 'secrets']);
    }
    expect(read('docker/README.md')).to.include('compose.rotate-master.yaml');
  });

  it('S3 the VAULT_KEY rotation override gives every service holding vault_key the other key as VAULT_KEY_PREVIOUS_FILE, and nothing else', function () {
    const override = parse(read('docker/compose.rotate-vault.yaml')) as Compose;
    expect(override.secrets).to.deep.equal({ vault_key_previous: { file: './secrets/vault_key_previous' } });
    const holders = Object.entries(services)
      .filter(([, service]) => secretsOf(service).includes('vault_key'))
      .map(([name]) => name);
    expect(Object.keys(override.services).sort()).to.deep.equal(holders.sort());
    for (const [name, service] of Object.entries(override.services)) {
      expect(environmentOf(service), name).to.deep.equal({ VAULT_KEY_PREVIOUS_FILE: '/run/secrets/vault_key_previous' });
      expect(secretsOf(service), name).to.deep.equal(['vault_key_previous']);
    }
    expect(read('docs/operations.md')).to.include('compose.rotate-vault.yaml');
  });

  it('S3 gives MASTER_KEY to auth only and VAULT_KEY to the API only; each connects as its own database role and Redis user, which migrate and redis set up', function () {
    const auth = services.auth as Service;
    const api = services.api as Service;
    expect(secretsOf(auth)).to.include('master_key').and.not.include('vault_key');
    expect(secretsOf(api)).to.include('vault_key').and.not.include('master_key');
    expect(environmentOf(api)).to.not.have.any.keys('MASTER_KEY', 'MASTER_KEY_FILE');
    expect(environmentOf(auth)).to.not.have.any.keys('VAULT_KEY', 'VAULT_KEY_FILE');
    expect(environmentOf(auth).DATABASE_URL_FILE).to.equal('/run/secrets/auth_database_url');
    expect(environmentOf(api).DATABASE_URL_FILE).to.equal('/run/secrets/api_database_url');
    expect(environmentOf(api).REDIS_URL_FILE).to.equal('/run/secrets/api_redis_url');
    // The tables' owner: migrate and backup only. Both keys together: the manual upgrade tool only.
    for (const [name, service] of Object.entries(services)) {
      if (secretsOf(service).includes('database_url')) expect(['migrate', 'backup'], name).to.include(name);
      if (secretsOf(service).includes('master_key') && secretsOf(service).includes('vault_key')) {
        expect(name).to.equal('rewrap-vault');
        expect(service.profiles).to.deep.equal(['tools']);
      }
    }
    const rewrap = services['rewrap-vault'] as Service;
    expect(rewrap.command).to.deep.equal(['node', 'src/cli.ts', 'keys', 'rewrap-vault']);
    expect(environmentOf(rewrap).DATABASE_URL_FILE).to.equal('/run/secrets/api_database_url');
    // migrate gives the two roles their passwords and this release's grants.
    const migrate = services.migrate as Service;
    expect(asText(migrate.command)).to.include(
      'db roles --auth-password-file /run/secrets/auth_db_password --api-password-file /run/secrets/api_db_password',
    );
    expect(secretsOf(migrate).sort()).to.deep.equal(['api_db_password', 'auth_db_password', 'database_url']);
    // Redis creates the API's user at every start with exactly the rules `portcullis redis acl` prints.
    const redisArgs = asText(services.redis?.entrypoint).replace(/\s+/g, ' ');
    const userArgs = /--user (.*)$/.exec(redisArgs)?.[1] ?? '';
    // Shell words: "quoted" ones whole, \| as |.
    const tokens = [...userArgs.matchAll(/"[^"]*"|\S+/g)].map(([token]) => token.replace(/^"(.*)"$/, '$1').replace(/\\\|/g, '|'));
    const expected = apiAclRules('portcullis_api', 'portcullis:', 'x');
    expect(tokens.filter((t) => !t.startsWith('>'))).to.deep.equal(expected.filter((t) => !t.startsWith('#')));
    expect(tokens.find((t) => t.startsWith('>'))).to.equal('>$$(cat /run/secrets/api_redis_password)');
    expect(secretsOf(services.redis as Service)).to.include('api_redis_password');
    // Production accepts each service's keys for its role.
    const base = {
      NODE_ENV: 'production',
      ISSUER: 'https://localhost:8443',
      API_URL: 'https://localhost:9443',
      DATABASE_URL: 'postgres://db/x',
      TRUST_PROXY: '172.30.250.250',
    };
    const keysOf = (service: Service) =>
      Object.fromEntries(
        Object.keys(environmentOf(service))
          .filter((v) => /_KEY_FILE$/.test(v))
          .map((v) => [v.replace(/_FILE$/, ''), `${'A'.repeat(43)}=`]),
      );
    expect(productionSettingProblems(loadConfig({ ...base, ...keysOf(auth) }), {}, ['auth'])).to.deep.equal([]);
    expect(productionSettingProblems(loadConfig({ ...base, ...keysOf(api) }), {}, ['api'])).to.deep.equal([]);
  });

  it('keeps the secret files out of git', function () {
    expect(read('docker/secrets/.gitignore').split('\n')).to.include.members(['*', '!.gitignore']);
  });

  it('documents every secret file in docker/README.md', function () {
    const readme = read('docker/README.md');
    for (const name of Object.keys(compose.secrets ?? {})) expect(readme, name).to.include(name);
    expect(readme).to.include('users create');
  });
});

describe('docker/Dockerfile', function () {
  // Instructions with line continuations joined and comments dropped.
  const instructions = read('docker/Dockerfile')
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
  const code = instructions.map((i) => `${i.keyword} ${i.args}`).join('\n');
  const lastFrom = instructions.findLastIndex((i) => i.keyword === 'FROM');
  const finalStage = instructions.slice(lastFrom);
  const argsOf = (keyword: string) => finalStage.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('installs production dependencies with npm ci in a separate stage', function () {
    expect(instructions[0]).to.deep.equal({ keyword: 'FROM', args: 'node:24-bookworm-slim AS deps' });
    const deps = instructions.slice(0, lastFrom);
    expect(deps.some((i) => i.keyword === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(i.args))).to.equal(true);
    expect(argsOf('COPY')).to.include('--from=deps /app/node_modules ./node_modules');
  });

  it('copies only the runtime directories into the final stage', function () {
    const sources = argsOf('COPY')
      .filter((args) => !args.startsWith('--from='))
      .flatMap((args) =>
        args
          .split(/\s+/)
          .filter((word) => !word.startsWith('--'))
          .slice(0, -1),
      );
    expect(sources.sort()).to.deep.equal(['config', 'migrations', 'package-lock.json', 'package.json', 'src', 'views']);
    expect(finalStage.some((i) => i.keyword === 'ADD')).to.equal(false);
  });

  it('sets production defaults and runs as the node user', function () {
    const env = argsOf('ENV').join(' ');
    expect(env).to.match(/\bNODE_ENV=production\b/);
    expect(env).to.match(/\bHOST=0\.0\.0\.0\b/);
    expect(argsOf('USER').at(-1)).to.equal('node');
    expect(argsOf('EXPOSE').join(' ').split(/\s+/)).to.include.members(['3000', '4000']);
  });

  it('checks health with node fetch, not curl or wget', function () {
    const [healthcheck, ...more] = argsOf('HEALTHCHECK');
    expect(more).to.have.length(0);
    expect(healthcheck).to.include('http://127.0.0.1:3000/healthz').and.include('fetch(');
    expect(code).to.not.match(/\b(curl|wget)\b/);
  });

  it('probes over https when TLS_CERT_FILE is set, and over http otherwise', async function () {
    const cmd = JSON.parse(/\bCMD (\[.*\])$/.exec(argsOf('HEALTHCHECK')[0] ?? '')?.[1] ?? '[]') as string[];
    const script = cmd[cmd.indexOf('-e') + 1]!;
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-healthcheck-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=auth.example.test',
        ],
        { stdio: 'ignore' },
      );
      const tlsOptions = { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) };
      const probe = async (server: Server, env: Record<string, string>): Promise<number> => {
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const port = (server.address() as AddressInfo).port;
        try {
          const child = spawn(
            process.execPath,
            [...cmd.slice(1, cmd.indexOf('-e')), '-e', script.replace('127.0.0.1:3000', `127.0.0.1:${port}`)],
            { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' },
          );
          const [code] = (await once(child, 'exit')) as [number];
          return code;
        } finally {
          server.close();
        }
      };
      const ok = (_req: IncomingMessage, res: ServerResponse) => res.end('ok');
      expect(await probe(createHttpsServer(tlsOptions, ok), { TLS_CERT_FILE: join(dir, 'cert.pem') })).to.equal(0);
      expect(await probe(createHttpsServer(tlsOptions, ok), {})).to.equal(1);
      expect(await probe(createServer(ok), {})).to.equal(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('starts with node src/main.ts in exec form, never npm start', function () {
    const cmd = argsOf('CMD');
    expect(cmd).to.have.length(1);
    expect(JSON.parse(cmd[0] as string)).to.deep.equal(['node', 'src/main.ts']);
    expect(argsOf('ENTRYPOINT')).to.have.length(0);
    expect(code).to.not.match(/npm\s+(run\s+)?start/);
  });
});

describe('.env.example', function () {
  it('is up to date with config/schema.json (npm run config:docs)', function () {
    expect(readFileSync(envExamplePath, 'utf8')).to.equal(renderEnvExample());
  });

  it('lists every setting, secrets commented out with their *_FILE form', function () {
    const text = readFileSync(envExamplePath, 'utf8');
    for (const setting of settings) {
      if (setting.secret) {
        expect(text).to.match(new RegExp(`^# ${setting.env}=$`, 'm'));
        expect(text).to.match(new RegExp(`^# ${setting.env}_FILE=`, 'm'));
        expect(text).to.not.match(new RegExp(`^${setting.env}=`, 'm'));
      } else {
        expect(text).to.match(new RegExp(`^(# )?${setting.env}=`, 'm'));
      }
    }
  });

  it('renders the Markdown configuration table with one row per setting', function () {
    const lines = renderMarkdown().trimEnd().split('\n');
    expect(lines[0]).to.equal('| Variable | Default | Description |');
    expect(lines).to.have.length(settings.length + 2);
    const masterKey = lines.find((line) => line.startsWith('| `MASTER_KEY` |'));
    expect(masterKey).to.include('secret: env or `MASTER_KEY_FILE`');
  });
});

describe('docker/nginx.conf and the internal network (S7, S9, R2)', function () {
  this.timeout(60_000);
  const compose = parse(read('docker/compose.yaml'), { merge: true }) as Compose;
  const { services } = compose;
  const nginxEnv = environmentOf(services.nginx as Service);
  /** `${NAME:-default}` as compose resolves it with NAME unset. */
  const withDefaults = (value: string): string => value.replace(/\$\{\w+:-([^}]*)\}/g, '$1');

  /** docker/nginx-entrypoint.sh --render-only, as the nginx container runs it. */
  function renderNginx(issuer: string, apiUrl: string): { code: number | null; conf: string; stderr: string } {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-nginx-'));
    try {
      const conf = join(dir, 'nginx.conf');
      const result = spawnSync('sh', [fileURLToPath(new URL('docker/nginx-entrypoint.sh', root)), '--render-only'], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          PORTCULLIS_ISSUER: issuer,
          PORTCULLIS_API_URL: apiUrl,
          NGINX_TEMPLATE: fileURLToPath(new URL('docker/nginx.conf', root)),
          NGINX_CONF: conf,
        },
      });
      return { code: result.status, stderr: result.stderr, conf: result.status === 0 ? readFileSync(conf, 'utf8') : '' };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The config without comments, and its top-level `server { … }` blocks. */
  const uncommented = (conf: string): string => conf.replace(/(^|\s)#.*$/gm, '$1');
  function serverBlocks(conf: string): string[] {
    const text = uncommented(conf);
    const found: string[] = [];
    for (const match of text.matchAll(/\bserver\s*\{/g)) {
      let depth = 0;
      for (let i = match.index + match[0].length - 1; i < text.length; i += 1) {
        if (text[i] === '{') depth += 1;
        if (text[i] === '}') depth -= 1;
        if (depth === 0) {
          found.push(text.slice(match.index, i + 1));
          break;
        }
      }
    }
    return found;
  }
  const rendered = renderNginx(withDefaults(nginxEnv.PORTCULLIS_ISSUER ?? ''), withDefaults(nginxEnv.PORTCULLIS_API_URL ?? ''));
  const servers = serverBlocks(rendered.conf);
  const appServer = (upstream: string): string => {
    const found = servers.find((block) => block.includes(`proxy_pass https://${upstream};`));
    if (!found) throw new Error(`no server proxies to ${upstream}`);
    return found;
  };

  it('R2 answers only the public hosts, refuses any other Host with 421, and forwards the public host as Host', function () {
    // nginx and the app read the same variables with the same defaults: one setting, two consistent readers.
    expect(nginxEnv.PORTCULLIS_ISSUER).to.equal(environmentOf(services.auth as Service).ISSUER);
    expect(nginxEnv.PORTCULLIS_API_URL).to.equal(environmentOf(services.api as Service).API_URL);
    expect(rendered.code, rendered.stderr).to.equal(0);
    expect(servers).to.have.length(3);
    const fallback = servers.find((block) => block.includes('default_server'));
    expect(fallback)
      .to.match(/listen 8443 ssl default_server;/)
      .and.match(/listen 9443 ssl default_server;/)
      .and.match(/return 421;/);
    expect(fallback).to.not.include('proxy_pass');
    expect(appServer('portcullis_auth'))
      .to.match(/server_name localhost;/)
      .and.include('set $public_host localhost:8443;');
    expect(appServer('portcullis_api'))
      .to.match(/server_name localhost;/)
      .and.include('set $public_host localhost:9443;');
    const conf = uncommented(rendered.conf);
    expect(conf).to.include('proxy_set_header Host $public_host;').and.include('proxy_set_header X-Forwarded-Host $public_host;');
    expect(conf).to.include('proxy_set_header X-Forwarded-For $remote_addr;').and.include('proxy_set_header X-Forwarded-Proto https;');
    expect(conf, 'the client-sent Host never travels on').to.not.include('$http_host');
    expect(conf).to.not.match(/\$\{PORTCULLIS_/);

    // Another issuer: its host (lower-cased, default port dropped) is the only one answered.
    const custom = renderNginx('https://ID.Example.com:443/', 'https://api.example.com:8444');
    expect(custom.code, custom.stderr).to.equal(0);
    expect(custom.conf).to.include('server_name id.example.com;').and.include('set $public_host id.example.com;');
    expect(custom.conf).to.include('server_name api.example.com;').and.include('set $public_host api.example.com:8444;');
    const plain = renderNginx('http://id.example.com', 'https://api.example.com');
    expect(plain.code).to.equal(1);
    expect(plain.stderr).to.include('http://id.example.com is not an https URL');
  });

  it('S9 nginx logs requests without query strings or Referer', function () {
    const conf = uncommented(rendered.conf);
    const formats = new Map([...conf.matchAll(/log_format\s+(\w+)\s+((?:'[^']*'\s*)+);/g)].map((m) => [m[1], m[2]]));
    const logs = [...conf.matchAll(/access_log\s+([^;]+);/g)].map((m) => (m[1] ?? '').trim().split(/\s+/));
    expect(logs).to.not.be.empty;
    for (const [target, format] of logs) {
      if (target === 'off') continue;
      expect(format, `access_log ${target} names its own format (nginx's default "combined" logs the query string)`).to.be.a('string');
      const definition = formats.get(format ?? '') ?? '';
      expect(definition).to.include('$uri');
      for (const leak of ['$request ', '$request"', '$request_uri', '$args', '$query_string', '$is_args', '$arg_', '$http_referer']) {
        expect(definition, `${format} logs ${leak}`).to.not.include(leak);
      }
    }
  });

  it('S9 nginx keeps /readyz and /metrics off the public edge (probes reach the containers directly)', function () {
    for (const upstream of ['portcullis_auth', 'portcullis_api']) {
      const block = appServer(upstream);
      const blocked = [...block.matchAll(/location\s+~\*\s+(\S+)\s*\{\s*return 404;\s*\}/g)].map((m) => new RegExp(m[1] ?? '', 'i'));
      expect(blocked, upstream).to.have.length(1);
      const [regex] = blocked as [RegExp];
      // nginx matches locations on the decoded path with slashes merged: /%72eadyz arrives as /readyz.
      for (const path of ['/readyz', '/READYZ', '/readyz/', '//readyz', '/metrics', '/Metrics/x'])
        expect(regex.test(path), `${upstream} ${path}`).to.equal(true);
      for (const path of ['/healthz', '/readyzz', '/.well-known/openid-configuration', '/v1/me'])
        expect(regex.test(path), `${upstream} ${path}`).to.equal(false);
      expect([...block.matchAll(/proxy_pass/g)], 'one proxied location').to.have.length(1);
    }
  });

  it("S9 compose binds the metrics listener to each container's loopback only", function () {
    for (const name of ['auth', 'api']) {
      const env = environmentOf(services[name] as Service);
      expect(env.METRICS_PORT, name).to.equal('9464');
      expect(env.METRICS_HOST, name).to.equal('127.0.0.1');
    }
  });

  it('S7 every internal hop is TLS: nginx verifies the app certificates, the API fetches the JWKS over mTLS with its certificate', async function () {
    const auth = environmentOf(services.auth as Service);
    const api = environmentOf(services.api as Service);
    expect(auth).to.include({
      TLS_CERT_FILE: '/run/secrets/auth_tls_cert',
      TLS_KEY_FILE: '/run/secrets/auth_tls_key',
      TLS_CLIENT_CA_FILE: '/run/secrets/internal_ca',
      AUTH_INTERNAL_PORT: '3443',
    });
    expect(api).to.include({
      JWKS_URL: 'https://auth:3443/jwks',
      API_CA_FILE: '/run/secrets/internal_ca',
      API_CLIENT_CERT_FILE: '/run/secrets/api_tls_cert',
      API_CLIENT_KEY_FILE: '/run/secrets/api_tls_key',
      TLS_CERT_FILE: '/run/secrets/api_tls_cert',
      TLS_KEY_FILE: '/run/secrets/api_tls_key',
    });
    // The production checks accept compose's API settings and refuse the old plain-http URL.
    const production = {
      NODE_ENV: 'production',
      ISSUER: 'https://localhost:8443',
      API_URL: 'https://localhost:9443',
      VAULT_KEY: 'A'.repeat(43) + '=',
      AUDIT_KEY: 'B'.repeat(43) + '=',
      DATABASE_URL: 'postgres://db/x',
    };
    expect(productionSettingProblems(loadConfig({ ...production, JWKS_URL: api.JWKS_URL }), {}, ['api'])).to.deep.equal([]);
    expect(productionSettingProblems(loadConfig({ ...production, JWKS_URL: 'http://auth:3000/jwks' }), {}, ['api']).join()).to.include(
      'JWKS_URL',
    );
    const conf = uncommented(rendered.conf);
    expect(conf).to.include('proxy_ssl_verify on;').and.include('proxy_ssl_trusted_certificate /run/secrets/internal_ca;');
    expect(secretsOf(services.nginx as Service)).to.include('internal_ca');
    expect(appServer('portcullis_auth')).to.include('proxy_ssl_name auth;');
    expect(appServer('portcullis_api')).to.include('proxy_ssl_name api;');
    expect(conf).to.not.match(/proxy_pass http:/);

    // The certificates docker/internal-pki.sh makes work for exactly these names and roles.
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'));
    try {
      execFileSync('sh', [fileURLToPath(new URL('docker/internal-pki.sh', root)), dir], { stdio: 'pipe' });
      const file = (name: string) => readFileSync(join(dir, name));
      for (const name of ['internal_ca', 'auth_tls_cert', 'auth_tls_key', 'api_tls_cert', 'api_tls_key'])
        expect(compose.secrets, name).to.have.property(name);
      const ca = file('internal_ca');
      // The auth server's internal listener as src/shared/tls.ts builds it: the API's certificate gets in.
      const listener = internalTlsOptions({
        tlsCertFile: join(dir, 'auth_tls_cert'),
        tlsKeyFile: join(dir, 'auth_tls_key'),
        tlsClientCaFile: join(dir, 'internal_ca'),
      });
      if (!listener) throw new Error('no internal listener options');
      const server = createTlsServer(listener, (socket) => socket.end('ok'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      const handshake = (options: ConnectionOptions): Promise<string> =>
        new Promise((resolve) => {
          const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'auth', ca, ...options }, () => undefined);
          let data = '';
          socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
          socket.on('end', () => resolve(data === 'ok' ? 'ok' : 'refused'));
          socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        });
      try {
        expect(await handshake({ cert: file('api_tls_cert'), key: file('api_tls_key') }), 'the API certificate').to.equal('ok');
        expect(await handshake({}), 'no client certificate').to.not.equal('ok');
        expect(
          await handshake({ cert: file('auth_tls_cert'), key: file('auth_tls_key') }),
          'a server-only certificate as client',
        ).to.not.equal('ok');
        expect(
          await handshake({ servername: 'api', cert: file('api_tls_cert'), key: file('api_tls_key') }),
          'the auth certificate does not name api',
        ).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
      } finally {
        server.close();
      }
      // What nginx checks: each server certificate chains to the CA and names its upstream.
      const caCert = new X509Certificate(ca);
      for (const [name, host] of [
        ['auth_tls_cert', 'auth'],
        ['api_tls_cert', 'api'],
      ] as const) {
        const cert = new X509Certificate(file(name));
        expect(cert.verify(caCert.publicKey), name).to.equal(true);
        expect(cert.checkHost(host), name).to.equal(host);
        expect(cert.keyUsage, name).to.include('1.3.6.1.5.5.7.3.1'); // serverAuth
      }
      expect(new X509Certificate(file('auth_tls_cert')).keyUsage).to.not.include('1.3.6.1.5.5.7.3.2'); // no clientAuth
      expect(statSync(join(dir, 'api_tls_key')).mode & 0o777).to.equal(0o644);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
