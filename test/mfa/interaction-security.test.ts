import { expect } from 'chai';
import { generate } from 'otplib';
import { ACR } from '../../src/services/mfa-policy.ts';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { registerPasskey } from '../helpers/passkeys.ts';

/**
 * The second-factor step over plain HTTP: step skipping (T32), TOTP replay and window (T35),
 * session fixation (T37) and client/acr policy, against the running servers.
 */
describe('interaction: second factor security', function () {
  let servers: TestServers;
  let rp: Awaited<ReturnType<typeof relyingParty>>;
  let mfaClient: Awaited<ReturnType<typeof relyingParty>>;

  before(async function () {
    servers = await startTestServers();
    const registered = await createTestClient(servers.deps);
    rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    const strict = await createTestClient(servers.deps, { client_name: 'Strict RP', require_mfa: true });
    mfaClient = await relyingParty(servers.issuer, strict.client_id, strict.client_secret);
  });

  after(async function () {
    await servers.stop();
  });

  async function userWithTotp() {
    const user = await createTestUser(servers.deps);
    const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
    if (!enrollment) throw new Error('no enrollment');
    await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test');
    return { ...user, secret: enrollment.secret };
  }

  /** Password step; returns the browser, the page after it and its URL. */
  async function afterPassword(email: string, password: string, party = rp, extra: Record<string, string> = {}) {
    const browser = new Browserless(servers.issuer);
    const flow = await party.authorizationUrl(extra);
    const first = await browser.follow(flow.url);
    const login = formOf(await first.response.text(), '/login');
    const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email, password });
    return { browser, flow, html: await response.text(), url, uid: url.pathname.split('/')[2] ?? '', csrf: login.csrf };
  }

  it('T32: after the password, consent, continue, enrollment or resume cannot skip the second factor', async function () {
    const user = await userWithTotp();
    const { browser, html, url, uid, csrf } = await afterPassword(user.email, user.password);
    expect(url.pathname).to.equal(`/interaction/${uid}`);
    expect(html).to.contain('Code from your authenticator app');
    for (const step of ['confirm', 'continue', 'enroll/totp', 'mfa/recovery', 'passkey', 'login']) {
      const { response, url: landed } = await browser.submit(`/interaction/${uid}/${step}`, {
        csrf,
        code: '123456',
        email: user.email,
        password: user.password,
      });
      // 400, the interaction error page: a step out of order is a bad request for this interaction
      // (recovery is a second factor in order here, refused since this user has no recovery codes).
      const page = await response.text();
      expect(response.status, step).to.equal(400);
      expect(page, step).to.include('This sign-in request cannot continue');
      expect(page, step).to.include(step === 'mfa/recovery' ? 'This way of signing in is not available' : 'This step is not expected now');
      expect(landed.origin, step).to.equal(servers.issuer);
    }
    // Resuming the authorization early only starts a new login: no code for the client.
    const resumed = await browser.follow(`/auth/${uid}`);
    expect(resumed.url.origin).to.equal(servers.issuer);
    expect(resumed.url.searchParams.has('code')).to.equal(false);
  });

  it('T35: a code from two steps ago and a reused code are refused with the same answer as a wrong one', async function () {
    const user = await userWithTotp();
    const now = Math.floor(Date.now() / 1000);
    const { browser, uid, csrf } = await afterPassword(user.email, user.password);
    const post = async (code: string) => {
      const { response } = await browser.submit(`/interaction/${uid}/mfa/totp`, { csrf, code });
      const html = await response.text();
      return { status: response.status, alert: /<p class="alert"[^>]*>([^<]*)</.exec(html)?.[1] };
    };
    const old = await post(await generate({ secret: user.secret, epoch: now - 60 }));
    const wrong = await post((await generate({ secret: user.secret })) === '000000' ? '111111' : '000000');
    expect(old).to.deep.equal(wrong);
    // Accept a valid code in one browser, then replay it in another.
    const valid = await generate({ secret: user.secret, epoch: now + 30 });
    const accepted = await browser.submit(`/interaction/${uid}/mfa/totp`, { csrf, code: valid });
    expect(await accepted.response.text()).to.contain('Allow access?');
    const second = await afterPassword(user.email, user.password);
    const { response } = await second.browser.submit(`/interaction/${second.uid}/mfa/totp`, { csrf: second.csrf, code: valid });
    const replay = { status: response.status, alert: /<p class="alert"[^>]*>([^<]*)</.exec(await response.text())?.[1] };
    expect(replay).to.deep.equal(wrong);
  });

  it('T37: a planted session cookie is not adopted by the login', async function () {
    const user = await createTestUser(servers.deps);
    const browser = new Browserless(servers.issuer);
    browser.jar.cookies.set('portcullis.session;/', { name: 'portcullis.session', value: 'attacker-chosen-id', path: '/' });
    const flow = await rp.authorizationUrl();
    const first = await browser.follow(flow.url);
    const login = formOf(await first.response.text(), '/login');
    const { response } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
    const consent = formOf(await response.text(), '/confirm');
    await browser.submit(consent.action, { csrf: consent.csrf });
    const session = browser.sessionId;
    expect(session).to.be.a('string').and.not.equal('attacker-chosen-id');
    expect(await servers.deps.oidcAdapter('Session').find('attacker-chosen-id')).to.equal(undefined);
  });

  it('T45: when the factor lookup fails, the login fails closed (no "no factors" bypass)', async function () {
    const user = await userWithTotp();
    const { mfa } = servers.deps;
    const original = Object.getOwnPropertyDescriptor(mfa, 'policyInputs') as PropertyDescriptor;
    Object.defineProperty(mfa, 'policyInputs', { ...original, value: () => Promise.reject(new Error('connection terminated')) });
    try {
      const browser = new Browserless(servers.issuer);
      const flow = await rp.authorizationUrl();
      const first = await browser.follow(flow.url);
      const login = formOf(await first.response.text(), '/login');
      const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      expect(response.status).to.equal(500);
      expect(url.origin).to.equal(servers.issuer);
      expect(url.searchParams.has('code')).to.equal(false);
      expect(await response.text()).to.not.contain('Allow access?');
    } finally {
      Object.defineProperty(mfa, 'policyInputs', original);
    }
  });

  it('T30: "Origin: null" (sent by browsers under Referrer-Policy: no-referrer) passes only with same-origin fetch metadata', async function () {
    const user = await createTestUser(servers.deps);
    const attempt = async (headers: Record<string, string>) => {
      const browser = new Browserless(servers.issuer);
      const flow = await rp.authorizationUrl();
      const first = await browser.follow(flow.url);
      const login = formOf(await first.response.text(), '/login');
      const { response } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: 'wrong password' }, headers);
      return response.status;
    };
    expect(await attempt({ Origin: 'null', 'Sec-Fetch-Site': 'same-origin' })).to.equal(200);
    expect(await attempt({ Origin: 'null', 'Sec-Fetch-Site': 'cross-site' })).to.equal(403);
    expect(await attempt({ Origin: 'null' })).to.equal(403);
  });

  it('a client with require_mfa sends a user without factors through enrollment', async function () {
    const user = await createTestUser(servers.deps);
    const { html } = await afterPassword(user.email, user.password, mfaClient);
    expect(html).to.contain('Set up two-step sign-in');
    const plain = await afterPassword(user.email, user.password, rp);
    expect(plain.html).to.not.contain('Set up two-step sign-in');
  });

  it('acr_values=passkey offers only the passkey to a user who has one, never TOTP or recovery codes', async function () {
    const user = await userWithTotp();
    await servers.deps.mfa.recovery.regenerate(user.id);
    await registerPasskey(servers, user);
    const { html, browser, uid, csrf } = await afterPassword(user.email, user.password, rp, { acr_values: ACR.passkey });
    expect(html).to.contain('Use passkey');
    expect(html).to.not.contain('Recovery code');
    expect(html).to.not.contain('Authenticator app code');
    for (const method of ['totp', 'recovery']) {
      const { response } = await browser.submit(`/interaction/${uid}/mfa/${method}`, {
        csrf,
        code: await generate({ secret: user.secret }),
      });
      expect(response.status, method).to.equal(400);
    }
  });
});
