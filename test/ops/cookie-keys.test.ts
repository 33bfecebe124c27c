import { expect } from 'chai';
import * as client from 'openid-client';
import { createKeyRotation, rotationPolicyOf } from '../../src/services/key-rotation.ts';
import { Browserless } from '../helpers/browserless.ts';
import { signIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Cookie keys rotate like signing keys (docs/security.md): the new key signs, older keys keep
 * verifying, and the running server follows without a restart. A session cookie signed before the
 * rotation still works; once the old key is retired it no longer does.
 */
describe('cookie key rotation', function () {
  let servers: TestServers;
  let rp: client.Configuration;

  before(async function () {
    servers = await startTestServers();
    const registered = await createTestClient(servers.deps);
    rp = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
  });

  after(async function () {
    await servers.stop();
  });

  const silentAuthorization = async (browser: Browserless): Promise<URL> => {
    const { url } = await authorizationRequest(rp, { prompt: 'none' });
    return (await browser.follow(url)).url;
  };

  const copyOf = (browser: Browserless): Browserless => {
    const copy = new Browserless(browser.origin);
    for (const [key, cookie] of browser.jar.cookies) copy.jar.cookies.set(key, { ...cookie });
    return copy;
  };

  it('keeps sessions signed with the old key after a rotation, and ends them when it retires', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    const { url: login } = await authorizationRequest(rp);
    expect((await signIn(browser, login, user)).searchParams.get('code')).to.be.a('string');
    const signedWithOldKey = copyOf(browser);

    const rotation = createKeyRotation({
      store: servers.deps.stores.keys,
      box: servers.deps.box,
      policy: rotationPolicyOf(servers.config),
    });
    const before = servers.running.authApp!.reloads();
    const { id: newKey } = await rotation.rotateCookieKeys();
    await servers.running.authApp!.tick();
    expect(servers.running.authApp!.reloads()).to.equal(before + 1);

    // Still signed in: the old key verifies.
    expect((await silentAuthorization(copyOf(signedWithOldKey))).searchParams.get('code')).to.be.a('string');

    // SESSION_MAX_SECONDS has passed (simulated): the old keys are retired; the reloaded server no longer trusts them.
    await servers.deps
      .knex('cookie_keys')
      .where('id', '<', newKey)
      .whereNull('retired_at')
      .update({ retired_at: servers.deps.knex.fn.now() });
    await servers.running.authApp!.tick();
    expect(servers.running.authApp!.reloads()).to.equal(before + 2);
    expect((await silentAuthorization(copyOf(signedWithOldKey))).searchParams.get('error')).to.equal('login_required');
  });
});
