import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { settings } from '../../src/config/load.ts';
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
  networks?: string[];
  volumes?: string[];
  profiles?: string[];
  stop_grace_period?: string;
};
type Compose = {
  services: Record<string, Service>;
  networks?: Record<string, { internal?: boolean } | null>;
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
    expect(asText(services.auth?.healthcheck?.test)).to.include('http://127.0.0.1:3000/healthz');
    // --only api listens on the API port only, so the image's default (port 3000) must be overridden.
    expect(asText(services.api?.healthcheck?.test)).to.include('http://127.0.0.1:4000/healthz');
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
    expect(migrate.command).to.deep.equal(['node', 'src/cli.ts', 'migrate']);
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
    expect(environmentOf(services.api as Service).JWKS_URL).to.equal('http://auth:3000/jwks');
  });

  it('passes the app its credentials as *_FILE secrets', function () {
    for (const name of appServices) {
      const service = services[name] as Service;
      const env = environmentOf(service);
      for (const variable of ['MASTER_KEY', 'DATABASE_URL', 'REDIS_URL']) {
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
    expect(dependencyConditions(services.nginx as Service)).to.include({ auth: 'service_healthy', api: 'service_healthy', 'tls-cert': 'service_completed_successfully' });
    // nginx reaches the app only; Postgres and Redis sit on an internal network with the app.
    expect(services.nginx?.networks).to.deep.equal(['edge']);
    for (const name of ['postgres', 'redis']) expect(services[name]?.networks, name).to.deep.equal(['backend']);
    for (const name of appServices) expect(services[name]?.networks, name).to.have.members(['edge', 'backend']);
    expect(compose.networks?.backend?.internal).to.equal(true);
  });

  it('terminates TLS in nginx with a self-signed certificate generated at start into a volume', function () {
    const init = services['tls-cert'] as Service;
    expect(asText(init.entrypoint)).to.match(/test -s \/certs\/tls\.crt \|\|/).and.match(/openssl req -x509 .*-subj \/CN=localhost .*subjectAltName=DNS:localhost/);
    expect(init.restart).to.equal('no');
    expect(init.volumes).to.include('tls-certs:/certs');
    expect(services.nginx?.volumes).to.include.members(['tls-certs:/etc/nginx/certs:ro', './nginx.conf:/etc/nginx/nginx.conf:ro']);
    const nginx = read('docker/nginx.conf');
    expect(nginx).to.include('ssl_certificate /etc/nginx/certs/tls.crt;').and.include('ssl_certificate_key /etc/nginx/certs/tls.key;');
    expect(nginx).to.match(/listen 8443 ssl;[\s\S]*proxy_pass http:\/\/portcullis_auth;/).and.match(/listen 9443 ssl;[\s\S]*proxy_pass http:\/\/portcullis_api;/);
    expect(nginx).to.match(/server auth:3000\b/).and.match(/server api:4000\b/);
    // With TRUST_PROXY the app keys rate limits on X-Forwarded-For: nginx must overwrite it, not append (T34).
    expect(nginx).to.include('proxy_set_header X-Forwarded-For $remote_addr;').and.include('proxy_set_header X-Forwarded-Proto https;');
    expect(nginx).to.not.include('$proxy_add_x_forwarded_for');
    expect(nginx).to.not.match(/BEGIN [A-Z ]*PRIVATE KEY/);
  });

  it('configures the operational settings with names config/schema.json knows', function () {
    const known = new Set(settings.flatMap((s) => (s.secret ? [s.env, `${s.env}_FILE`] : [s.env])));
    for (const name of [...imageServices, 'backup']) {
      for (const variable of Object.keys(environmentOf(services[name] as Service))) expect(known, `${name}: ${variable}`).to.include(variable);
    }
    for (const name of appServices) {
      const env = environmentOf(services[name] as Service);
      expect(env, name).to.include({ TRUST_PROXY: 'true', METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' });
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
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=auth.example.test'], { stdio: 'ignore' });
      const tlsOptions = { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) };
      const probe = async (server: Server, env: Record<string, string>): Promise<number> => {
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const port = (server.address() as AddressInfo).port;
        try {
          const child = spawn(process.execPath, [...cmd.slice(1, cmd.indexOf('-e')), '-e', script.replace('127.0.0.1:3000', `127.0.0.1:${port}`)], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
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
