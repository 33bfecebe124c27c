import { expect } from 'chai';
import { sessionTtl } from '../../src/auth/session-lifetime.ts';
import { Browserless, signInAndConsent } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { authorizationRequestTo } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Session expiry is stored in whole epoch seconds, so the test lifetimes leave a second of slack.
const IDLE = 3;
const MAX = 8;

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

  async function signIn(): Promise<{ browser: Browserless; loginAt: number }> {
    const browser = new Browserless(servers.issuer);
    const loginAt = Date.now();
    const callback = await signInAndConsent(browser, authorizationUrl(), user.email, user.password);
    expect(callback.searchParams.get('code')).to.be.a('string');
    return { browser, loginAt };
  }

  /** prompt=none: a code while the session lives, login_required once it has ended. */
  async function silent(browser: Browserless): Promise<{ outcome: string; cookieExpires: number[] }> {
    const { response, url } = await browser.follow(authorizationUrl({ prompt: 'none' }));
    expect(url.origin).to.equal('https://rp.example.test', `stayed on ${url.pathname} (${response.status})`);
    const cookieExpires = response.headers
      .getSetCookie()
      .filter((c) => /^portcullis\.session=/.test(c))
      .map((c) => Date.parse(/expires=([^;]+)/i.exec(c)?.[1] ?? ''));
    return { outcome: url.searchParams.get('code') ? 'code' : (url.searchParams.get('error') ?? 'none'), cookieExpires };
  }

  it('ASVS 7.3.2 sessionTtl: each use grants the idle time, never past the absolute limit', function () {
    const ttl = sessionTtl({ idleSeconds: 100, maxSeconds: 1000 }, () => 10_000);
    expect(ttl({})).to.equal(100);
    expect(ttl({ loginTs: 9_990 })).to.equal(100);
    expect(ttl({ loginTs: 9_050 })).to.equal(50);
    expect(ttl({ loginTs: 8_000 })).to.equal(1);
  });

  it('ASVS 7.3.2 a session used every second outlives the idle timeout; the cookie expires with it', async function () {
    const { browser, loginAt } = await signIn();
    for (let i = 0; i < 2 * IDLE; i++) {
      await sleep(1000);
      const { outcome, cookieExpires } = await silent(browser);
      expect(outcome, `use ${i + 1}`).to.equal('code');
      // Refreshed on every use, and never later than the session itself (idle, capped by max).
      expect(cookieExpires).to.have.length(1);
      expect(cookieExpires[0]).to.be.at.most(Date.now() + IDLE * 1000 + 1000);
      expect(cookieExpires[0]).to.be.at.most(loginAt + MAX * 1000 + 1000);
    }
    expect(Date.now() - loginAt).to.be.greaterThan(2 * IDLE * 1000);
  });

  it('ASVS 7.3.1 using the account page extends the session', async function () {
    const { browser, loginAt } = await signIn();
    for (let i = 0; i < 2 * IDLE; i++) {
      await sleep(1000);
      const { response, url } = await browser.follow('/account');
      expect(url.pathname, `use ${i + 1}`).to.equal('/account');
      expect(await response.text(), `use ${i + 1}`).to.include(user.email);
      const cookieExpires = response.headers
        .getSetCookie()
        .filter((c) => /^portcullis\.session=/.test(c))
        .map((c) => Date.parse(/expires=([^;]+)/i.exec(c)?.[1] ?? ''));
      expect(cookieExpires).to.have.length(1);
      // Moved forward by this use (whole seconds), unless the absolute limit comes first.
      expect(cookieExpires[0]).to.be.at.least(Math.min(Date.now() + (IDLE - 2) * 1000, loginAt + (MAX - 2) * 1000));
      expect(cookieExpires[0]).to.be.at.most(loginAt + MAX * 1000 + 1000);
    }
    // Only the account page was used, for longer than the idle timeout: still signed in.
    expect(Date.now() - loginAt).to.be.greaterThan(2 * IDLE * 1000);
    expect((await silent(browser)).outcome).to.equal('code');
  });

  it('ASVS 7.3.1 an unused session expires after the idle timeout: login page, prompt=none gets login_required', async function () {
    const { browser } = await signIn();
    await sleep((IDLE + 1.5) * 1000);
    expect((await silent(browser)).outcome).to.equal('login_required');
    const { response, url } = await browser.follow(authorizationUrl());
    expect(url.pathname).to.match(/^\/interaction\//);
    expect(await response.text()).to.include('name="password"');
  });

  it('ASVS 7.3.2 a session kept active still ends at the absolute limit after sign-in', async function () {
    const { browser, loginAt } = await signIn();
    const outcomes: { at: number; outcome: string }[] = [];
    while (Date.now() - loginAt < (MAX + 2) * 1000) {
      await sleep(1000);
      outcomes.push({ at: Date.now() - loginAt, outcome: (await silent(browser)).outcome });
    }
    const alive = outcomes.filter((o) => o.outcome === 'code');
    const ended = outcomes.filter((o) => o.outcome !== 'code');
    // Alive well past the idle timeout, ended by the absolute limit and never revived by use.
    expect(alive.at(-1)?.at ?? 0).to.be.greaterThan((MAX - 2) * 1000);
    expect(ended.length).to.be.greaterThan(0);
    expect(ended[0]?.at ?? Infinity).to.be.at.most((MAX + 1) * 1000);
    expect(ended.every((o) => o.outcome === 'login_required')).to.equal(true);
    expect(outcomes.findIndex((o) => o.outcome !== 'code')).to.equal(alive.length);
  });
});
