import { expect } from 'chai';
import { sessionTtl } from '../../src/auth/session-lifetime.ts';
import { ageStored } from '../helpers/aging.ts';
import { type Browserless } from '../helpers/browserless.ts';
import { signedInBrowser, silentSignIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

// Whole epoch seconds, as the provider stores them. No test waits for these: each moves the
// stored session into the past instead (aged()), so the lifetimes can be realistic.
const IDLE = 60;
const MAX = 200;
const epoch = (): number => Math.floor(Date.now() / 1000);
/** How long a session is left unused between two uses: within the idle time, with seconds to spare (expiry is whole seconds). */
const PAUSE = IDLE - 5;

/**
 * Sign-in session lifetime (ASVS 7.3.1, 7.3.2): a sliding idle timeout (SESSION_IDLE_SECONDS)
 * capped by an absolute lifetime from sign-in (SESSION_MAX_SECONDS), on the real provider
 * session in Redis; the session cookie never outlives the session.
 */
describe('sign-in session idle timeout and absolute lifetime', function () {
  this.timeout(60_000);
  let servers: TestServers;
  let clientId: string;
  let user: { email: string; password: string };

  before(async function () {
    servers = await startTestServers({ env: { SESSION_IDLE_SECONDS: String(IDLE), SESSION_MAX_SECONDS: String(MAX) } });
    clientId = (await createTestClient(servers.deps)).client_id;
    user = await createTestUser(servers.deps);
  });

  after(async function () {
    await servers.stop();
  });

  const authorizationUrl = (extra: Record<string, string> = {}): URL => authorizationRequestTo(servers.issuer, clientId, extra).url;
  type StoredSession = { loginTs: number; exp: number; iat: number } & Record<string, unknown>;

  async function stored(browser: Browserless): Promise<StoredSession> {
    const session = (await servers.deps.oidcAdapter('Session').find(browser.sessionId)) as StoredSession | undefined;
    if (!session) throw new Error('the browser has no stored session');
    return session;
  }

  /** As if `seconds` had gone by without the session being used (the store drops it once expired). */
  const aged = (browser: Browserless, seconds: number) => ageStored(servers.deps.oidcAdapter('Session'), browser.sessionId, seconds);

  async function signedIn(): Promise<Browserless> {
    return (await signedInBrowser(servers.issuer, clientId, user)).browser;
  }

  const sessionCookieExpiries = (response: Response): number[] =>
    response.headers
      .getSetCookie()
      .filter((c) => /^portcullis\.session=/.test(c))
      .map((c) => Date.parse(/expires=([^;]+)/i.exec(c)?.[1] ?? ''));

  /** After a use: the stored session lives the idle time from now, capped at the absolute limit, and the cookie expires with it. */
  async function expectRenewed(browser: Browserless, response: Response, label: string): Promise<void> {
    const session = await stored(browser);
    const expected = Math.min(epoch() + IDLE, session.loginTs + MAX);
    expect(session.exp, `${label}: stored expiry`).to.be.within(expected - 1, expected);
    const cookies = sessionCookieExpiries(response);
    expect(cookies, `${label}: one session cookie`).to.have.length(1);
    expect(cookies[0], `${label}: the cookie expires with the session`).to.equal(session.exp * 1000);
  }

  it('ASVS 7.3.2 sessionTtl: each use grants the idle time, never past the absolute limit', function () {
    const ttl = sessionTtl({ idleSeconds: 100, maxSeconds: 1000 }, () => 10_000);
    expect(ttl({})).to.equal(100);
    expect(ttl({ loginTs: 9_990 })).to.equal(100);
    expect(ttl({ loginTs: 9_050 })).to.equal(50);
    expect(ttl({ loginTs: 8_000 })).to.equal(1);
  });

  it('ASVS 7.3.2 a session used within every idle period outlives the idle timeout; the cookie expires with it', async function () {
    const browser = await signedIn();
    for (let use = 1; use <= 3; use++) {
      await aged(browser, PAUSE);
      const { outcome, response } = await silentSignIn(browser, clientId);
      expect(outcome, `use ${use}`).to.equal('code');
      await expectRenewed(browser, response, `use ${use}`);
    }
    // Three pauses have gone by since sign-in: well past the idle timeout.
    const session = await stored(browser);
    expect(epoch() - session.loginTs).to.be.at.least(3 * PAUSE);
  });

  it('ASVS 7.3.1 using the account page extends the session', async function () {
    const browser = await signedIn();
    for (let use = 1; use <= 3; use++) {
      await aged(browser, PAUSE);
      const { response, url } = await browser.follow('/account');
      expect(url.pathname, `use ${use}`).to.equal('/account');
      expect(await response.text(), `use ${use}`).to.include(user.email);
      await expectRenewed(browser, response, `use ${use}`);
    }
    // Only the account page was used, for longer than the idle timeout: still signed in.
    expect((await silentSignIn(browser, clientId)).outcome).to.equal('code');
  });

  it('ASVS 7.3.1 an unused session expires after the idle timeout: login page, prompt=none gets login_required', async function () {
    const browser = await signedIn();
    await aged(browser, IDLE + 1);
    expect((await silentSignIn(browser, clientId)).outcome).to.equal('login_required');
    const { response, url } = await browser.follow(authorizationUrl());
    expect(url.pathname).to.match(/^\/interaction\//);
    expect(await response.text()).to.include('name="password"');
  });

  it('ASVS 7.3.2 a session kept active still ends at the absolute limit after sign-in', async function () {
    const browser = await signedIn();
    const outcomes: { elapsed: number; outcome: string }[] = [];
    let elapsed = 0;
    while (elapsed < MAX + IDLE) {
      await aged(browser, PAUSE);
      elapsed += PAUSE;
      const { outcome, response } = await silentSignIn(browser, clientId);
      outcomes.push({ elapsed, outcome });
      if (outcome === 'code') await expectRenewed(browser, response, `after ${elapsed} s`);
    }
    const alive = outcomes.filter((o) => o.outcome === 'code');
    const ended = outcomes.filter((o) => o.outcome !== 'code');
    // Used every PAUSE seconds, it lives until the absolute limit and ends at the first use past it, never revived by use.
    expect(alive.map((o) => o.elapsed)).to.deep.equal(outcomes.filter((o) => o.elapsed < MAX).map((o) => o.elapsed));
    expect(ended.map((o) => o.elapsed)).to.deep.equal(outcomes.filter((o) => o.elapsed >= MAX).map((o) => o.elapsed));
    expect(ended.length).to.be.greaterThan(1);
    expect(ended.every((o) => o.outcome === 'login_required')).to.equal(true);
  });
});
