import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';
import { productionRefusal } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';

/**
 * S7: the API trusts whatever keys it fetches from JWKS_URL, so a plain-http fetch across a
 * network lets anyone on the path swap the keys and mint tokens the API accepts. In production a
 * JWKS_URL is https, or http to this very machine (loopback), nothing else.
 */
describe('S7 the API fetches JWKS over https or loopback only (production)', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(async function () {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-s7-'));
  });

  after(async function () {
    await rm(dataDir, { recursive: true, force: true });
  });

  const production = (jwksUrl: string) => ({
    ...testConfigEnv(),
    NODE_ENV: 'production',
    ISSUER: 'https://auth.example.test',
    API_URL: 'https://api.example.test',
    DATA_DIR: dataDir,
    JWKS_URL: jwksUrl,
  });

  it('S7 refuses to start with JWKS_URL=http://auth:3000/jwks, naming JWKS_URL', async function () {
    const { code, output, lines } = await productionRefusal(['--only', 'api'], {
      ...production('http://auth:3000/jwks'),
      API_PORT: '0',
      HOST: '127.0.0.1',
    });
    expect(code, output).to.equal(1);
    expect(lines, output).to.have.length(1);
    expect(lines[0]).to.include(
      'JWKS_URL must be https (or http on loopback): the API trusts the keys it fetches (got http://auth:3000/jwks)',
    );
  });

  it('S7 refuses http to any other host, however the address is spelled', function () {
    for (const url of [
      'http://auth:3000/jwks',
      'http://10.0.0.7/jwks',
      'http://127.0.0.1.nip.io/jwks',
      'http://[::ffff:10.0.0.7]/jwks',
      'http://localhost.example.test/jwks',
    ]) {
      const problems = productionSettingProblems(loadConfig(production(url)));
      expect(problems.join('; '), url).to.include('JWKS_URL must be https');
    }
  });

  it('S7 accepts https anywhere and http on loopback', function () {
    for (const url of [
      'https://auth:3443/jwks',
      'https://auth.example.test/jwks',
      'http://127.0.0.1:3000/jwks',
      'http://127.9.8.7:3000/jwks',
      'http://2130706433:3000/jwks',
      'http://localhost:3000/jwks',
      'http://[::1]:3000/jwks',
    ]) {
      expect(productionSettingProblems(loadConfig(production(url))), url).to.deep.equal([]);
    }
    // Unset, the API fetches ISSUER/jwks, and ISSUER must be https in production.
    const { JWKS_URL: _unset, ...withoutJwksUrl } = production('');
    expect(productionSettingProblems(loadConfig(withoutJwksUrl))).to.deep.equal([]);
  });
});
