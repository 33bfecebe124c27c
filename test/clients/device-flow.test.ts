import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless, formOf, formsByButton } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { waitUntil } from '../helpers/wait.ts';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

async function rawPoll(
  servers: TestServers,
  clientId: string,
  deviceCode: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${servers.issuer}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/**
 * RFC 8628 end to end with openid-client as the device and an HTTP "browser" on our pages:
 * pending, slow_down, success (→ GET /v1/me), denial, "I didn't start this", expiry, and
 * the per-IP lockout on guessed user codes (RFC 8628 §5.1, §5.4).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`device authorization grant (RFC 8628, ${storage})`, function () {
    let servers: TestServers;
    let rp: client.Configuration;
    let clientId: string;
    let user: Awaited<ReturnType<typeof createTestUser>>;

    before(async function () {
      servers = await startTestServers({ storage });
      user = await createTestUser(servers.deps);
      const registered = await createTestClient(servers.deps, {
        client_name: 'Portcullis CLI',
        logo_uri: 'https://cli.example.test/logo.png',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scope: 'openid offline_access records:read',
      });
      clientId = registered.client_id;
      rp = await client.discovery(new URL(servers.issuer), clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    });

    after(async function () {
      await servers.stop();
    });

    const start = () => client.initiateDeviceAuthorization(rp, { scope: 'openid offline_access records:read', resource: servers.apiUrl });

    /** Opens verification_uri_complete, checks the pre-filled page, and submits the code typed differently. */
    async function enterCode(browser: Browserless, device: Awaited<ReturnType<typeof start>>, typed?: string): Promise<string> {
      const { response } = await browser.follow(device.verification_uri_complete!);
      const html = await response.text();
      expect(html).to.match(/<label for="user_code">Code<\/label>/);
      expect(html).to.include(`value="${device.user_code}"`);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
      const { response: confirm } = await browser.submit('/device', { xsrf, user_code: typed ?? device.user_code });
      expect(confirm.status).to.equal(200);
      return confirm.text();
    }

    it('issues 8-character user codes from an unambiguous alphabet', async function () {
      const device = await start();
      expect(device.user_code).to.match(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(device.verification_uri).to.equal(`${servers.issuer}/device`);
      expect(device.verification_uri_complete).to.equal(`${servers.issuer}/device?user_code=${device.user_code}`);
      // T40: our device pages carry the same protective headers as the sign-in pages.
      const page = await fetch(device.verification_uri_complete!);
      expect(page.headers.get('Content-Security-Policy')).to.include("frame-ancestors 'none'");
      expect(page.headers.get('Cache-Control')).to.include('no-store');
      expect(page.headers.get('Referrer-Policy')).to.equal('no-referrer');
    });

    it("R14 the confirmation page sets the app's name and the device's description apart, as supplied by them and not verified", async function () {
      // The device chooses its User-Agent (and a self-registered app its name): both are the requester's words.
      const claimed = 'Official Portcullis TV app - verified by your bank';
      const started = await fetch(`${servers.issuer}/device/auth`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': claimed },
        body: new URLSearchParams({ client_id: clientId, scope: 'openid records:read' }),
      });
      const device = (await started.json()) as { user_code: string; verification_uri_complete: string };
      const page = await enterCode(new Browserless(servers.issuer), { ...device } as Awaited<ReturnType<typeof start>>);
      const supplied = (who: string): string => new RegExp(`<q data-supplied="${who}"[^>]*>([^<]*)</q>`).exec(page)?.[1] ?? '';
      expect(supplied('app')).to.equal('Portcullis CLI');
      expect(supplied('device')).to.equal(claimed);
      expect(page).to.not.include('<strong>Portcullis CLI</strong>');
      expect(page.match(/not verified/g) ?? []).to.have.length(2);
      // What we know ourselves stays plain: the code, the time and the address.
      expect(page).to.include(device.user_code);
      expect(page).to.include('127.0.0.1');
    });

    it('answers authorization_pending, then slow_down when polled too fast', async function () {
      const device = await start();
      const first = await rawPoll(servers, clientId, device.device_code);
      expect(first.body.error).to.equal('authorization_pending');
      const second = await rawPoll(servers, clientId, device.device_code);
      expect(second.body.error).to.equal('slow_down');
    });

    it('signs in through our pages (code in any case, no dash) and the token calls GET /v1/me', async function () {
      this.timeout(30_000);
      const device = await start();
      const browser = new Browserless(servers.issuer);
      const confirmPage = await enterCode(browser, device, device.user_code.replace('-', '').toLowerCase());
      // §5.4: who asks, for what, when and from where.
      expect(confirmPage).to.include('Portcullis CLI');
      expect(confirmPage).to.include('<img src="https://cli.example.test/logo.png"');
      expect(confirmPage).to.include('Read your records');
      expect(confirmPage).to.include('127.0.0.1');
      expect(confirmPage).to.match(/minute|UTC/);
      expect(confirmPage).to.include(device.user_code);
      const forms = formsByButton(confirmPage);
      expect([...forms.keys()]).to.include.members(['Allow', 'Deny', "I didn't start this"]);
      const allow = forms.get('Allow')!;

      // Allow → sign in → done: the confirmation page was the consent, so no second consent page.
      const allowed = await browser.submit(allow.action, allow.fields);
      expect(allowed.url.pathname).to.match(/^\/interaction\//);
      const login = formOf(await allowed.response.text(), '/login');
      const { response } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
      const done = await response.text();
      expect(done, done.slice(0, 400)).to.include('Device connected');

      // RFC 8707: the token request names the API, so the access token is a JWT for it.
      const tokens = await client.pollDeviceAuthorizationGrant(rp, { ...device, interval: 0.01 }, { resource: servers.apiUrl });
      expect(tokens.refresh_token).to.be.a('string');
      const me = await fetch(`${servers.apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
      expect(me.status, `${me.headers.get('WWW-Authenticate') ?? ''} ${tokens.access_token}`).to.equal(200);
      expect(await me.json()).to.deep.include({ sub: user.id, client_id: clientId, scope: 'records:read' });

      // Already signed in: code → Allow → done.
      const second = await start();
      const secondAllow = formsByButton(await enterCode(browser, second)).get('Allow')!;
      expect(await (await browser.submit(secondAllow.action, secondAllow.fields)).response.text()).to.include('Device connected');
      const secondTokens = await client.pollDeviceAuthorizationGrant(rp, { ...second, interval: 0.01 }, { resource: servers.apiUrl });
      expect(secondTokens.refresh_token).to.be.a('string');
      expect(secondTokens.scope).to.equal('records:read');

      // The code is single-use.
      const again = await enterCode(new Browserless(servers.issuer), device);
      expect(again).to.include('already been used');
    });

    it('Deny ends the request with access_denied', async function () {
      const device = await start();
      const browser = new Browserless(servers.issuer);
      const deny = formsByButton(await enterCode(browser, device)).get('Deny')!;
      const { response } = await browser.submit(deny.action, deny.fields);
      expect(await response.text()).to.include('Access denied');
      const poll = await rawPoll(servers, clientId, device.device_code);
      expect(poll.body.error).to.equal('access_denied');
    });

    it('"I didn\'t start this" denies and writes an audit event', async function () {
      const device = await start();
      const browser = new Browserless(servers.issuer);
      const report = formsByButton(await enterCode(browser, device)).get("I didn't start this")!;
      const { response } = await browser.submit(report.action, report.fields);
      expect(await response.text()).to.include('reported');
      expect((await rawPoll(servers, clientId, device.device_code)).body.error).to.equal('access_denied');
      const events = await servers.deps.knex('audit_events').where({ type: 'device.request_reported', client_id: clientId });
      expect(events).to.have.length(1);
      expect(events[0]).to.include({ client_id: clientId });
    });

    it("R13 the confirmation page names no account for a session from before the account's sessions were ended, and Allow then asks for the sign-in", async function () {
      this.timeout(30_000);
      const owner = await createTestUser(servers.deps);
      const browser = new Browserless(servers.issuer);
      // Signed in through a first device request: the browser now has a session.
      const first = formsByButton(await enterCode(browser, await start())).get('Allow')!;
      const login = formOf(await (await browser.submit(first.action, first.fields)).response.text(), '/login');
      expect(
        await (await browser.submit(login.action, { csrf: login.csrf, email: owner.email, password: owner.password })).response.text(),
      ).to.include('Device connected');
      expect(await enterCode(browser, await start())).to.include(owner.email);

      // The account's sessions are ended while this one survives in the store (a request in
      // flight wrote it back, R8): the time alone says it no longer counts.
      await servers.deps.stores.users.endSessionsBefore(owner.id, new Date(), null);
      const stale = await enterCode(browser, await start());
      expect(stale).to.not.include(owner.email);
      expect(stale).to.include('You will be asked to sign in');
      const allow = formsByButton(stale).get('Allow')!;
      const allowed = await browser.submit(allow.action, allow.fields);
      expect(allowed.url.pathname).to.match(/^\/interaction\//);
      expect(await allowed.response.text()).to.include('name="password"');
    });

    it('refuses a cross-site (xsrf-less) code submission', async function () {
      const device = await start();
      const browser = new Browserless(servers.issuer);
      await browser.follow('/device');
      const { response } = await browser.submit('/device', { user_code: device.user_code, confirm: 'yes' });
      expect(await response.text()).to.not.include('Device connected');
      // The code's first poll: still waiting for the user (slow_down would only answer a second poll within the interval).
      expect((await rawPoll(servers, clientId, device.device_code)).body.error).to.equal('authorization_pending');
    });

    // Found by the R12 fuzz pass: oidc-provider's error handler puts a fresh form secret on the
    // request's session and then persists it, which throws for a session never stored (500).
    it(`R12 a code form sent without a session goes back to the code page, never a 500 (${storage})`, async function () {
      const device = await start();
      // A bare POST (the session cookie expired, or the form came from another browser).
      const bare = await fetch(`${servers.issuer}/device`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html' },
        body: new URLSearchParams({ user_code: device.user_code, xsrf: 'stale', confirm: 'yes' }),
        redirect: 'manual',
      });
      expect(bare.status).to.equal(303);
      const location = new URL(bare.headers.get('Location') ?? '', servers.issuer);
      expect(location.pathname).to.equal('/device');
      expect(location.searchParams.get('user_code')).to.equal(device.user_code);
      // The way back works: the code page, with the code filled in, on a session of its own.
      const browser = new Browserless(servers.issuer);
      const { response } = await browser.follow(location);
      expect(response.status).to.equal(200);
      expect(await response.text()).to.include(device.user_code);
      // The same for the resume route with an unknown or stale id.
      const resume = await fetch(`${servers.issuer}/device/stale-resume-id`, { headers: { Accept: 'text/html' }, redirect: 'manual' });
      expect(resume.status).to.equal(303);
      expect(new URL(resume.headers.get('Location') ?? '', servers.issuer).pathname).to.equal('/device');
      // Nothing was approved on the way.
      // The code's first poll: still waiting for the user (slow_down would only answer a second poll within the interval).
      expect((await rawPoll(servers, clientId, device.device_code)).body.error).to.equal('authorization_pending');
    });

    it('T23: a client without the device grant can neither start nor redeem one', async function () {
      const web = await createTestClient(servers.deps, { token_endpoint_auth_method: 'none' });
      const response = await fetch(`${servers.issuer}/device/auth`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: web.client_id, scope: 'openid' }),
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status).to.equal(400);
      expect(body.error).to.equal('unauthorized_client');
      expect(body.error_description).to.match(/device_code is not allowed for this client/);
      const device = await start();
      const redeem = await rawPoll(servers, web.client_id, device.device_code);
      expect(redeem.body.error, JSON.stringify(redeem.body)).to.equal('unauthorized_client');
    });

    describe('expiry and guessing (short TTL, 3 attempts)', function () {
      let short: TestServers;
      let shortRp: client.Configuration;
      let shortClientId: string;

      before(async function () {
        short = await startTestServers({
          storage,
          env: { DEVICE_CODE_TTL: '2', USER_CODE_ATTEMPTS: '3', USER_CODE_LOCKOUT_SECONDS: '60' },
        });
        const registered = await createTestClient(short.deps, {
          token_endpoint_auth_method: 'none',
          grant_types: [DEVICE_GRANT],
          redirect_uris: [],
          post_logout_redirect_uris: [],
        });
        shortClientId = registered.client_id;
        shortRp = await client.discovery(new URL(short.issuer), shortClientId, undefined, client.None(), {
          execute: [client.allowInsecureRequests],
        });
      });

      after(async function () {
        // The lock is on 127.0.0.1 in this run's shared store: lift it, so no later suite starts locked out.
        await Promise.all(['127.0.0.1', '::ffff:127.0.0.1'].map((ip) => short.deps.lockouts.deviceUserCode.clear(ip)));
        await short.stop();
      });

      it('RFC 8628 §3.5 a device code past its lifetime is answered expired_token, and its user code is "expired", not unknown', async function () {
        const device = await client.initiateDeviceAuthorization(shortRp, { scope: 'openid' });
        expect(device.expires_in).to.equal(2);
        // The lifetime the device was told, from when it was told, is what must pass (2 s, this
        // suite's TTL); the store keeps the code on its own clock, so it is waited out, no longer.
        await waitUntil(Date.now() + device.expires_in * 1000);
        const poll = await rawPoll(short, shortClientId, device.device_code);
        expect(poll.status, JSON.stringify(poll.body)).to.equal(400);
        expect(poll.body.error, JSON.stringify(poll.body)).to.equal('expired_token');
        const browser = new Browserless(short.issuer);
        const { response } = await browser.follow(device.verification_uri_complete!);
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? '';
        const { response: entered } = await browser.submit('/device', { xsrf, user_code: device.user_code });
        expect(await entered.text()).to.include('That code has expired.');
      });

      it('locks an IP out after repeated wrong codes, even for a right one', async function () {
        const device = await client.initiateDeviceAuthorization(shortRp, { scope: 'openid' });
        // Start from a clean counter for this IP (earlier suites of this run may have entered wrong codes).
        await Promise.all(['127.0.0.1', '::ffff:127.0.0.1'].map((ip) => short.deps.lockouts.deviceUserCode.clear(ip)));
        const browser = new Browserless(short.issuer);
        const { response } = await browser.follow('/device');
        // Every rendering of the form carries a fresh xsrf token; count until the lockout.
        let xsrf = /name="xsrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? '';
        let wrongAccepted = 0;
        for (let i = 0; i < 3; i++) {
          const { response: wrong } = await browser.submit('/device', { xsrf, user_code: 'BCDF-GHJK' });
          if (wrong.status === 429) break;
          expect(wrong.status).to.equal(200);
          const html = await wrong.text();
          expect(html).to.include('not right');
          wrongAccepted++;
          xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
        }
        expect(wrongAccepted).to.equal(3);
        const { response: locked } = await browser.submit('/device', { xsrf, user_code: device.user_code });
        expect(locked.status).to.equal(429);
        expect(locked.headers.get('Retry-After')).to.match(/^\d+$/);
        expect(await locked.text()).to.include('Too many wrong codes');
      });

      it('R14 40 concurrent wrong user codes from one address: exactly USER_CODE_ATTEMPTS are looked up, the rest refused with 429', async function () {
        const from = '127.0.0.21';
        const browser = new Browserless(short.issuer);
        const { response } = await browser.follow('/device');
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? '';
        const cookie = browser.jar.header(new URL('/device', short.issuer));
        try {
          const replies = await Promise.all(
            Array.from({ length: 40 }, () =>
              rawRequest(short.issuer, {
                method: 'POST',
                target: '/device',
                from,
                headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: short.issuer, Cookie: cookie },
                body: new URLSearchParams({ xsrf, user_code: 'BCDF-GHJK' }).toString(),
              }),
            ),
          );
          const lookedUp = replies.filter((r) => r.status === 200 && r.body.includes('not right'));
          expect(lookedUp, 'codes looked up').to.have.length(3);
          expect(replies.filter((r) => r.status === 429)).to.have.length(37);
          expect(await short.deps.lockouts.deviceUserCode.check(from)).to.include({ locked: true, failures: 3 });
        } finally {
          await short.deps.lockouts.deviceUserCode.clear(from);
        }
      });
    });
  });
}
