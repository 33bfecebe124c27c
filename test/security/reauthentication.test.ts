import { expect } from 'chai';
import { createRp, userTokens } from '../helpers/api.ts';
import { ageStored } from '../helpers/aging.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { signInToAccount } from '../helpers/sign-in.ts';

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
    const name = Object.entries(params)
      .map(([k, v]) => `${k}=${v}`)
      .join('');
    it(`T12 ${name} with a live session shows the login page again and moves auth_time forward`, async function () {
      const rp = await createRp(servers);
      const user = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      const signedIn = authTimeOf((await userTokens(servers, rp, user, 'records:read', undefined, { browser })).access_token);
      // The sign-in moves 5 s into the past (auth_time is whole seconds): a new one must be later.
      await ageStored(servers.deps.oidcAdapter('Session'), browser.sessionId, 5);
      const first = signedIn - 5;

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

/**
 * R14 (the second adversarial review): GET /account/login?reauth=1 started a sign-in with
 * prompt=login from anywhere: a link or form on another site sent a signed-in user through the
 * login page again (and replaced the state cookie of an account sign-in in progress). Only our own
 * pages (Sec-Fetch-Site: same-origin) start a re-authentication; any other request shows the
 * account page as it is.
 */
describe("R14 only a same-origin request starts the account page's re-authentication", function () {
  this.timeout(60_000);
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  it('R14 a cross-site GET /account/login?reauth=1 shows the account page, with no sign-in and no new state cookie; from our own page it asks for the password again', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    await signInToAccount(browser, user);

    for (const site of ['cross-site', 'same-site', 'none', undefined]) {
      const headers: Record<string, string> = site ? { 'Sec-Fetch-Site': site, 'Sec-Fetch-Mode': 'navigate' } : {};
      const answer = await browser.request('/account/login?reauth=1', { headers });
      const location = new URL(answer.headers.get('Location') ?? '', servers.issuer);
      expect([answer.status, location.pathname], `Sec-Fetch-Site: ${site ?? '(none)'}`).to.deep.equal([302, '/account']);
      expect(answer.headers.getSetCookie().join(';'), `Sec-Fetch-Site: ${site ?? '(none)'}`).to.not.include('portcullis.account-state');
      const page = await browser.follow(location);
      expect(page.url.pathname).to.equal('/account');
      expect(await page.response.text()).to.include(user.email);
    }

    // From one of our own pages: the sign-in starts again with prompt=login.
    const own = await browser.request('/account/login?reauth=1', {
      headers: { 'Sec-Fetch-Site': 'same-origin', 'Sec-Fetch-Mode': 'navigate' },
    });
    const to = new URL(own.headers.get('Location') ?? '', servers.issuer);
    expect([to.pathname, to.searchParams.get('prompt')]).to.deep.equal(['/auth', 'login']);
  });
});
