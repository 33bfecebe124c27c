import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Configuration } from 'oidc-provider';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import {
  assertProductionProvider,
  ProductionConfigError,
  productionSettingProblems,
  providerConfigurationProblems,
} from '../../src/config/production-checks.ts';
import { buildProviderConfiguration } from '../../src/auth/provider-config.ts';
import type { AccountService } from '../../src/services/accounts.ts';
import type { Adapter } from '../../src/store/oidc-adapter.ts';
import { productionRefusal, spawnNode, waitForReady } from '../helpers/process.ts';
import { freePort, testConfigEnv } from '../helpers/servers.ts';

/**
 * T43: with NODE_ENV=production the server refuses to start on a development-grade
 * configuration, with one clear line; the provider configuration we build satisfies the
 * production invariants, and each invariant is enforced when broken.
 */
describe('T43 production assertions at boot', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(function () {
    dataDir = mkdtempSync(join(tmpdir(), 'portcullis-prod-'));
  });

  after(function () {
    rmSync(dataDir, { recursive: true, force: true });
  });

  const productionEnv = (overrides: Record<string, string | undefined> = {}): Record<string, string> => {
    const env: Record<string, string | undefined> = {
      ...testConfigEnv(),
      NODE_ENV: 'production',
      ISSUER: 'https://auth.example.test',
      API_URL: 'https://api.example.test',
      DATA_DIR: dataDir,
      AUTH_PORT: '0',
      API_PORT: '0',
      HOST: '127.0.0.1',
      ...overrides,
    };
    return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  };

  const runMain = (env: Record<string, string>) => productionRefusal([], env, 20_000);

  it('T43 refuses an http issuer in production: exit 1 and one line naming ISSUER', async function () {
    const result = await runMain(productionEnv({ ISSUER: 'http://auth.example.test' }));
    expect(result.code, result.output).to.equal(1);
    const { lines } = result;
    expect(lines, result.output).to.have.length(1);
    expect(lines[0]).to.include('ISSUER must be an https URL (got http://auth.example.test)');
  });

  it('T43 refuses the development master key (MASTER_KEY unset) and generates nothing into DATA_DIR', async function () {
    // Embedded mode (no DATABASE_URL) would otherwise generate DATA_DIR/master.key.
    const result = await runMain(productionEnv({ MASTER_KEY: undefined, DATABASE_URL: undefined, REDIS_URL: undefined }));
    expect(result.code, result.output).to.equal(1);
    const { lines } = result;
    expect(lines, result.output).to.have.length(1);
    expect(lines[0]).to.include('MASTER_KEY (or MASTER_KEY_FILE) must be set');
    expect(existsSync(join(dataDir, 'master.key')), 'no dev key generated').to.equal(false);
  });

  it('R8 refuses the development audit key (AUDIT_KEY unset) and generates nothing into DATA_DIR', async function () {
    const result = await runMain(productionEnv({ AUDIT_KEY: undefined, DATABASE_URL: undefined, REDIS_URL: undefined }));
    expect(result.code, result.output).to.equal(1);
    const { lines } = result;
    expect(lines, result.output).to.have.length(1);
    expect(lines[0]).to.include('AUDIT_KEY (or AUDIT_KEY_FILE) must be set');
    expect(existsSync(join(dataDir, 'audit.key')), 'no dev key generated').to.equal(false);
  });

  it('T43 refuses oidc-provider debug output (DEBUG) in production', async function () {
    const result = await runMain(productionEnv({ DEBUG: 'oidc-provider:*' }));
    expect(result.code).to.equal(1);
    expect(result.lines[0], result.output).to.include('DEBUG must not enable oidc-provider debug output');
  });

  it('T43 lists every problem on the same single line', async function () {
    const result = await runMain(productionEnv({ ISSUER: 'http://auth.example.test', MASTER_KEY: undefined }));
    expect(result.code, result.output).to.equal(1);
    const { lines } = result;
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include('ISSUER').and.to.include('MASTER_KEY');
  });

  it('T43 starts in production with an https issuer, MASTER_KEY and a database (the checks pass)', async function () {
    const port = await freePort();
    const spawned = spawnNode(['src/main.ts', '--only', 'auth'], productionEnv({ AUTH_PORT: String(port) }));
    try {
      await waitForReady(`http://127.0.0.1:${port}/healthz`, 30_000);
      expect(spawned.output()).not.to.include('refusing to start');
    } finally {
      spawned.child.kill('SIGTERM');
      await spawned.exited;
    }
  });

  it('R13 refuses TRUST_PROXY=true in production (any caller could choose its address); named proxies start', async function () {
    const result = await runMain(productionEnv({ TRUST_PROXY: 'true' }));
    expect(result.code, result.output).to.equal(1);
    const { lines } = result;
    expect(lines, result.output).to.have.length(1);
    expect(lines[0]).to.include('TRUST_PROXY=true trusts X-Forwarded-For from any caller').and.to.include('TRUST_PROXY=10.0.0.0/8');
    for (const named of ['10.0.0.0/8', '172.16.0.0/12,127.0.0.1', 'false']) {
      expect(productionSettingProblems(loadConfig(productionEnv({ TRUST_PROXY: named }))), named).to.deep.equal([]);
    }
  });

  it('T43 the settings checks apply to production only', function () {
    const development = loadConfig({ ...testConfigEnv(), NODE_ENV: 'development', ISSUER: 'http://localhost:3000', MASTER_KEY: '' });
    expect(productionSettingProblems(development, { DEBUG: 'oidc-provider:*' })).to.deep.equal([]);
  });

  describe('T43 provider configuration invariants (in process)', function () {
    let config: Config;
    before(function () {
      config = loadConfig(productionEnv());
    });
    const adapter = (() => ({}) as Adapter) as (model: string) => Adapter;
    const build = (): Configuration =>
      buildProviderConfiguration({
        config,
        accounts: {} as AccountService,
        adapter,
        jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd', kid: 'k' }] },
        cookieKeys: ['k'.repeat(32)],
      });

    it('T43 the configuration we build: devInteractions off, PKCE for every client, code flow only, durable adapter, keys', function () {
      const configuration = build();
      expect(configuration.features?.devInteractions?.enabled).to.equal(false);
      expect(configuration.responseTypes).to.deep.equal(['code', 'none']);
      const required = configuration.pkce?.required as (ctx: unknown, client: unknown) => boolean;
      expect(required({}, { clientAuthMethod: 'none' })).to.equal(true);
      expect(required({}, { clientAuthMethod: 'private_key_jwt' })).to.equal(true);
      expect(configuration.adapter).to.equal(adapter);
      expect(configuration.cookies?.keys).to.have.length(1);
      expect(providerConfigurationProblems(configuration)).to.deep.equal([]);
      expect(() => assertProductionProvider(config, configuration)).not.to.throw();
    });

    const broken: [string, (c: Configuration) => Configuration, string][] = [
      ['devInteractions enabled', (c) => ({ ...c, features: { ...c.features, devInteractions: { enabled: true } } }), 'devInteractions'],
      [
        'devInteractions left at the library default',
        (c) => ({ ...c, features: { ...c.features, devInteractions: {} } }),
        'devInteractions',
      ],
      ['no adapter (in-memory)', (c) => ({ ...c, adapter: undefined }), 'adapter'],
      ['no jwks (generated dev keys)', (c) => ({ ...c, jwks: undefined }), 'jwks'],
      ['no cookie keys', (c) => ({ ...c, cookies: { ...c.cookies, keys: [] } }), 'cookie keys'],
      ['PKCE only for public clients', (c) => ({ ...c, pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' } }), 'pkce'],
      ['PKCE left at the library default', (c) => ({ ...c, pkce: {} }), 'pkce'],
      ['implicit response type', (c) => ({ ...c, responseTypes: ['code', 'code id_token', 'none'] }), 'response types'],
      ['library default response types', (c) => ({ ...c, responseTypes: undefined }), 'response types'],
    ];
    for (const [name, mutate, expected] of broken) {
      it(`T43 refuses a provider configuration with ${name}`, function () {
        const configuration = mutate(build());
        expect(providerConfigurationProblems(configuration).join('; ')).to.include(expected);
        expect(() => assertProductionProvider(config, configuration)).to.throw(ProductionConfigError, expected);
      });
    }
  });
});
