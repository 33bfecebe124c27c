import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { createRp, userTokens } from '../helpers/api.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

const authTimeOf = (jwt: string): number =>
  (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { auth_time: number }).auth_time;

/**
 * T12 (OIDC Core §3.1.2.1): `max_age=0` and `prompt=login` make a signed-in user enter the
 * password again, and the new tokens carry the new auth_time; without them the session is reused.
 */
describe('T12 forced re-authentication', function () {
  this.timeout(60_000);
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  for (const params of [{ max_age: '0' }, { prompt: 'login consent' }]) {
    const name = Object.entries(params).map(([k, v]) => `${k}=${v}`).join('');
    it(`T12 ${name} with a live session shows the login page again and moves auth_time forward`, async function () {
      const rp = await createRp(servers);
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const first = authTimeOf((await userTokens(servers, rp, user, 'records:read', undefined, { browser })).access_token);
      await sleep(1100);

      // Control: the same browser without the parameter is not asked for the password.
      const reused = await userTokens(servers, rp, { ...user, password: 'not-asked-for' }, 'records:read', undefined, { browser });
      expect(authTimeOf(reused.access_token)).to.equal(first);

      const { url } = await authorizationRequest(rp, params);
      const { response, url: landed } = await browser.follow(url);
      expect(landed.pathname).to.match(/^\/interaction\//);
      expect(await response.text()).to.include('name="password"');

      const again = await userTokens(servers, rp, user, 'records:read', undefined, { browser, params });
      expect(authTimeOf(again.access_token)).to.be.greaterThan(first);
    });
  }
});
