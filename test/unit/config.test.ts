import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config/load.ts';

function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('config loading', function () {
  const masterKey = randomBytes(32).toString('base64');
  let dir: string;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the documented defaults for an empty environment', function () {
    const config = loadConfig({});
    expect(config).to.include({
      issuer: 'http://localhost:3000',
      authPort: 3000,
      apiUrl: 'http://localhost:4000',
      apiPort: 4000,
      dataDir: './data',
      logLevel: 'info',
      nodeEnv: 'development',
    });
    expect(config.trustProxy).to.deep.equal(['false']);
    expect(config.corsOrigins).to.deep.equal([]);
    expect(config.ttl.authorizationCode).to.equal(60);
    expect(config.argon2).to.deep.equal({ memoryKiB: 19456, timeCost: 2, parallelism: 1 });
    for (const key of ['databaseUrl', 'redisUrl', 'masterKey', 'cookieKeys', 'jwksUrl'] as const) {
      expect(config, key).not.to.have.property(key);
    }
  });

  it('treats an empty variable as unset', function () {
    expect(loadConfig({ AUTH_PORT: '', DATABASE_URL: '', ISSUER: '' })).to.deep.equal(loadConfig({}));
  });

  it('applies environment overrides with type coercion', function () {
    const cookieKey = 'k'.repeat(32);
    const config = loadConfig({
      ISSUER: 'https://id.example.com',
      AUTH_PORT: '8443',
      API_PORT: '0',
      TRUST_PROXY: 'true',
      CORS_ORIGINS: 'https://a.example.com, https://b.example.com,,',
      COOKIE_KEYS: `${cookieKey}2,${cookieKey}1`,
      ACCESS_TOKEN_TTL: '300',
      ARGON2_MEMORY_KIB: '65536',
      DATABASE_URL: 'postgres://u:p@db:5432/portcullis',
      REDIS_URL: 'rediss://cache:6380/1',
      LOG_LEVEL: 'debug',
      NODE_ENV: 'production',
      MASTER_KEY: masterKey,
    });
    expect(config.issuer).to.equal('https://id.example.com');
    expect(config.authPort).to.equal(8443);
    expect(config.apiPort).to.equal(0);
    expect(config.trustProxy).to.deep.equal(['true']);
    expect(config.corsOrigins).to.deep.equal(['https://a.example.com', 'https://b.example.com']);
    expect(config.cookieKeys).to.deep.equal([`${cookieKey}2`, `${cookieKey}1`]);
    expect(config.ttl.accessToken).to.equal(300);
    expect(config.ttl.refreshToken).to.equal(1209600);
    expect(config.argon2).to.deep.equal({ memoryKiB: 65536, timeCost: 2, parallelism: 1 });
    expect(config).to.include({
      databaseUrl: 'postgres://u:p@db:5432/portcullis',
      redisUrl: 'rediss://cache:6380/1',
      logLevel: 'debug',
      nodeEnv: 'production',
      masterKey,
    });
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).to.deep.equal(['false']);
  });

  it('reports every bad value on its own line, naming the variable', function () {
    const error = configErrorOf({
      AUTH_PORT: 'abc',
      ISSUER: 'http://localhost:3000/',
      LOG_LEVEL: 'loud',
      MASTER_KEY: randomBytes(16).toString('base64'),
    });
    expect(error.problems).to.have.length(4);
    expect(error.message.split('\n').slice(1)).to.deep.equal(error.problems);
    const byVariable = new Map(error.problems.map((line) => [line.split(':')[0], line]));
    expect([...byVariable.keys()].sort()).to.deep.equal(['AUTH_PORT', 'ISSUER', 'LOG_LEVEL', 'MASTER_KEY']);
    expect(byVariable.get('ISSUER')).to.include('trailing slash');
    expect(byVariable.get('LOG_LEVEL')).to.include('must be one of').and.include('debug');
    expect(byVariable.get('MASTER_KEY')).to.include('32 bytes');
  });

  it('never echoes a secret value in its error', function () {
    const badSecret = 'mysql://admin:hunter2@db/portcullis';
    const error = configErrorOf({ DATABASE_URL: badSecret, MASTER_KEY: 'hunter2-not-base64' });
    expect(error.problems.map((l) => l.split(':')[0]).sort()).to.deep.equal(['DATABASE_URL', 'MASTER_KEY']);
    expect(error.message).not.to.include('hunter2');
  });

  for (const [name, value] of [
    ['AUTH_PORT', '70000'],
    ['API_PORT', '-1'],
    ['API_PORT', '80.5'],
    ['ISSUER', 'localhost:3000'],
    ['ISSUER', 'https://id.example.com?x=1'],
    ['API_URL', 'ftp://api.example.com'],
    ['TRUST_PROXY', 'maybe'],
    ['NODE_ENV', 'staging'],
    ['CORS_ORIGINS', 'https://ok.example.com,https://bad.example.com/path'],
    ['COOKIE_KEYS', 'short'],
    ['REDIS_URL', 'http://cache:6379'],
    ['AUTHORIZATION_CODE_TTL', '3600'],
    ['ARGON2_TIME_COST', '0'],
  ] as const) {
    it(`refuses ${name}=${value}`, function () {
      const error = configErrorOf({ [name]: value });
      expect(error.problems).to.have.length(1);
      expect(error.problems[0]).to.match(new RegExp(`^${name}: \\S`));
    });
  }

  // R13: the interaction and account routes are mounted at /interaction and /account, URLs are
  // built with new URL('/…', ISSUER) and oidc-provider's own URLs use an empty mount path, so an
  // issuer with a path would emit URLs outside it; the API's routes are /v1/… at its root.
  it('R13 refuses a path in ISSUER and API_URL, in one line naming the variable; an origin is accepted', function () {
    for (const [name, value] of [
      ['ISSUER', 'https://id.example.com/auth'],
      ['ISSUER', 'https://id.example.com/auth/'],
      ['ISSUER', 'http://localhost:3000/a/b'],
      ['ISSUER', 'https://id.example.com\\auth'],
      ['API_URL', 'https://api.example.com/v1'],
      ['API_URL', 'http://127.0.0.1:4000/api'],
    ] as const) {
      const error = configErrorOf({ [name]: value });
      expect(error.problems, `${name}=${value}`).to.have.length(1);
      expect(error.problems[0], `${name}=${value}`).to.match(new RegExp(`^${name}: .*without a path`));
      expect(error.problems[0]).not.to.include('\n');
    }
    expect(loadConfig({ ISSUER: 'https://id.example.com', API_URL: 'https://api.example.com:8443' })).to.include({
      issuer: 'https://id.example.com',
      apiUrl: 'https://api.example.com:8443',
    });
    expect(loadConfig({ ISSUER: 'http://[::1]:3000' }).issuer).to.equal('http://[::1]:3000');
  });

  it('R13 TRUST_PROXY takes false, true, or the proxies (addresses, CIDRs, loopback/linklocal/uniquelocal); anything else is refused naming it', function () {
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,fd00::/8,loopback' }).trustProxy).to.deep.equal([
      '10.0.0.0/8',
      '127.0.0.1',
      '::1',
      'fd00::/8',
      'loopback',
    ]);
    expect(loadConfig({ TRUST_PROXY: 'uniquelocal,linklocal' }).trustProxy).to.deep.equal(['uniquelocal', 'linklocal']);
    for (const value of ['maybe', '10.0.0.0/33', '10.0.0.300', 'true,10.0.0.0/8', 'false,127.0.0.1', '2', 'nginx', ',']) {
      const error = configErrorOf({ TRUST_PROXY: value });
      expect(error.problems, value).to.have.length(1);
      expect(error.problems[0], value).to.match(/^TRUST_PROXY: \S/);
    }
  });

  it('reads MASTER_KEY_FILE, trimming the trailing newline', function () {
    const file = join(dir, 'master-key');
    writeFileSync(file, `  ${masterKey}\n`);
    expect(loadConfig({ MASTER_KEY_FILE: file }).masterKey).to.equal(masterKey);
  });

  it('refuses MASTER_KEY together with MASTER_KEY_FILE, and an unreadable file', function () {
    const file = join(dir, 'master-key-both');
    writeFileSync(file, masterKey);
    const both = configErrorOf({ MASTER_KEY: masterKey, MASTER_KEY_FILE: file });
    expect(both.problems).to.have.length(1);
    expect(both.problems[0])
      .to.match(/^MASTER_KEY: /)
      .and.include('MASTER_KEY_FILE');

    const missing = configErrorOf({ MASTER_KEY_FILE: join(dir, 'does-not-exist') });
    expect(missing.problems).to.deep.equal([`MASTER_KEY_FILE: cannot read ${join(dir, 'does-not-exist')}`]);
  });

  it('validates what a *_FILE secret contains', function () {
    const file = join(dir, 'bad-key');
    writeFileSync(file, 'not-a-key\n');
    expect(configErrorOf({ MASTER_KEY_FILE: file }).problems)
      .to.have.length(1)
      .and.satisfy((p: string[]) => p[0]!.startsWith('MASTER_KEY'));
  });

  it('ignores *_FILE for non-secret settings', function () {
    const file = join(dir, 'port');
    writeFileSync(file, '9999');
    expect(loadConfig({ AUTH_PORT_FILE: file }).authPort).to.equal(3000);
  });

  it('returns a deeply frozen object', function () {
    const config = loadConfig({ CORS_ORIGINS: 'https://a.example.com' });
    expect(Object.isFrozen(config)).to.equal(true);
    expect(Object.isFrozen(config.ttl)).to.equal(true);
    expect(Object.isFrozen(config.argon2)).to.equal(true);
    expect(Object.isFrozen(config.corsOrigins)).to.equal(true);
    expect(() => {
      (config as { authPort: number }).authPort = 1;
    }).to.throw(TypeError);
    expect(() => {
      (config.ttl as { accessToken: number }).accessToken = 1;
    }).to.throw(TypeError);
    expect(() => (config.corsOrigins as string[]).push('https://evil.test')).to.throw(TypeError);
    // Each call builds its own object: the frozen defaults of one do not leak into the next.
    expect(loadConfig({ AUTH_PORT: '3001' }).authPort).to.equal(3001);
  });

  it('refuses a retired variable, naming its replacements (SESSION_TTL would otherwise be ignored)', function () {
    const error = configErrorOf({ SESSION_TTL: '1209600' });
    expect(error.problems).to.have.length(1);
    expect(error.problems[0])
      .to.match(/^SESSION_TTL: /)
      .and.include('SESSION_IDLE_SECONDS')
      .and.include('SESSION_MAX_SECONDS');
  });

  it('ignores unknown environment variables', function () {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', PORTCULLIS_UNKNOWN: 'x', ISSUER_URL: 'nonsense', authPort: 'abc' })).to.deep.equal(
      loadConfig({}),
    );
  });
});
