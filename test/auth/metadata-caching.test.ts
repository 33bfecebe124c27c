import { expect } from 'chai';
import { createKeyRotation, rotationPolicyOf } from '../../src/services/key-rotation.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Discovery and the JWKS are fetched by every relying party and resource server: they carry
 * Cache-Control and a strong ETag computed once per key set, and answer 304 to If-None-Match.
 */
describe('discovery and JWKS cache headers', function () {
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  const documents = [
    { name: 'discovery', path: '/.well-known/openid-configuration', type: /^application\/json/ },
    { name: 'JWKS', path: '/jwks', type: /^application\/jwk-set\+json/ },
  ];

  for (const { name, path, type } of documents) {
    it(`${name}: Cache-Control, a stable ETag, and 304 on If-None-Match`, async function () {
      const first = await fetch(`${servers.issuer}${path}`);
      expect(first.status).to.equal(200);
      expect(first.headers.get('content-type')).to.match(type);
      expect(first.headers.get('cache-control')).to.equal('public, max-age=300');
      const etag = first.headers.get('etag');
      expect(etag).to.match(/^"[A-Za-z0-9_-]{27}"$/);
      const body = (await first.json()) as Record<string, unknown>;
      expect(body).to.have.property(name === 'JWKS' ? 'keys' : 'issuer');

      const again = await fetch(`${servers.issuer}${path}`);
      expect(again.headers.get('etag')).to.equal(etag);
      expect(again.headers.get('content-type')).to.match(type);
      expect(await again.json()).to.deep.equal(body);

      const conditional = await fetch(`${servers.issuer}${path}`, { headers: { 'If-None-Match': etag! } });
      expect(conditional.status).to.equal(304);
      expect(conditional.headers.get('etag')).to.equal(etag);
      expect(await conditional.text()).to.equal('');

      const stale = await fetch(`${servers.issuer}${path}`, { headers: { 'If-None-Match': '"something-else"' } });
      expect(stale.status).to.equal(200);
      expect(await stale.json()).to.deep.equal(body);
    });
  }

  it('JWKS: a key rotation changes the ETag, and the old one no longer gets 304', async function () {
    const before = await fetch(`${servers.issuer}/jwks`);
    const oldEtag = before.headers.get('etag')!;
    const oldKids = ((await before.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

    const rotation = createKeyRotation({
      store: servers.deps.stores.keys,
      box: servers.deps.box,
      policy: rotationPolicyOf(servers.config),
    });
    await rotation.rotate(['ES256']);
    await servers.running.authApp!.tick();

    const after = await fetch(`${servers.issuer}/jwks`, { headers: { 'If-None-Match': oldEtag } });
    expect(after.status).to.equal(200);
    expect(after.headers.get('etag')).to.be.a('string').and.not.equal(oldEtag);
    const newKids = ((await after.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    expect(newKids).to.include.members(oldKids);
    expect(newKids.length).to.be.greaterThan(oldKids.length);
  });
});
