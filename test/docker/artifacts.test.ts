import { readFileSync } from 'node:fs';
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
};
type Compose = {
  services: Record<string, Service>;
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
