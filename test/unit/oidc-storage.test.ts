import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import knexFactory from 'knex';
import Provider from 'oidc-provider';
import { createOidcStorage, OIDC_STORAGE, type OidcStorageDeps } from '../../src/auth/oidc-storage.ts';
import { NO_GRACE, type Adapter } from '../../src/store/oidc-adapter.ts';

/**
 * The models oidc-provider asks its adapter factory for: every model class the provider exposes
 * (its getters on Provider.prototype), each asked for its adapter once. BaseToken is abstract: the
 * token classes extending it are the stored models.
 */
function providerModels(): string[] {
  const asked = new Set<string>();
  const recording = (name: string): Adapter => {
    asked.add(name);
    return {} as Adapter;
  };
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const provider = new Provider('http://127.0.0.1', {
    adapter: recording,
    jwks: { keys: [key] },
    features: { devInteractions: { enabled: false } },
  });
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(Provider.prototype))) {
    // Model classes are the capitalised getters (others: app, proxy …).
    if (!descriptor.get || !/^[A-Z]/.test(name) || name === 'BaseToken') continue;
    const model: unknown = Reflect.get(provider, name);
    if (typeof model === 'function' && 'adapter' in model) Reflect.get(model, 'adapter');
  }
  return [...asked].sort();
}

describe('oidc-provider storage table (src/auth/oidc-storage.ts)', function () {
  it('lists every model oidc-provider stores, and no other', function () {
    const models = providerModels();
    // The reading above must see the provider's models at all (a renamed internal would empty it).
    expect(models).to.include.members(['Session', 'Grant', 'AccessToken', 'RefreshToken', 'Client', 'ReplayDetection']);
    expect(Object.keys(OIDC_STORAGE).sort()).to.deep.equal(models);
  });

  it('builds every listed model, and refuses one the table does not list instead of storing it by default', async function () {
    // Nothing is queried: the stores are only built.
    const knex = knexFactory({ client: 'pg' });
    try {
      const deps = {
        config: { refreshReuseGrace: NO_GRACE, clients: { idleDisableDays: 0 } },
        knex,
        redis: undefined,
        keys: {},
        clients: {},
        initialAccessTokens: {},
        audit: {},
        accountIndex: {},
        logger: {},
      } as unknown as OidcStorageDeps;
      const adapter = createOidcStorage(deps).forProvider();
      for (const model of Object.keys(OIDC_STORAGE)) expect(adapter(model), model).to.respondTo('find');
      expect(() => adapter('FutureModel')).to.throw('oidc-provider model FutureModel has no storage');
    } finally {
      await knex.destroy();
    }
  });
});
