import { expect } from 'chai';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import { ipBudgetKey } from '../../src/shared/ip-budget.ts';
import { providerRouteOf } from '../../src/auth/provider-routes.ts';
import { formBody, rawRequest, type RawReply } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

type Variant = { method: string; target: string; body?: Record<string, string>; headers?: Record<string, string> };

// Each request names its own client, so only the per-IP budget is in play (per client: 2).
let clientSeq = 0;
const anyClient = (): string => `spelling-client-${++clientSeq}`;

const TOKEN_VARIANTS: Variant[] = [
  ...['/token', '/TOKEN', '/Token/', '/token/'].map((target) => ({
    method: 'POST',
    target,
    get body() {
      return { grant_type: 'client_credentials', client_id: anyClient() };
    },
  })),
  ...['/token/introspection', '/TOKEN/INTROSPECTION', '/token/Introspection/'].map((target) => ({
    method: 'POST',
    target,
    get body() {
      return { token: 'x', client_id: anyClient() };
    },
  })),
  ...['/token/revocation', '/TOKEN/REVOCATION/'].map((target) => ({
    method: 'POST',
    target,
    get body() {
      return { token: 'x', client_id: anyClient() };
    },
  })),
  ...['/device/auth', '/DEVICE/AUTH/', '/Device/Auth'].map((target) => ({
    method: 'POST',
    target,
    get body() {
      return { client_id: anyClient() };
    },
  })),
  ...['/request', '/REQUEST/'].map((target) => ({
    method: 'POST',
    target,
    get body() {
      return { client_id: anyClient(), response_type: 'code' };
    },
  })),
];

const REGISTRATION_VARIANTS: Variant[] = [
  ...['/reg', '/REG', '/reg/'].map((target) => ({ method: 'POST', target, body: {}, headers: { 'Content-Type': 'application/json' } })),
  ...['/reg/some-client', '/REG/some-client/', '/reg/some-%63lient'].map((target) => ({ method: 'GET', target })),
  ...['/reg/some-client', '/Reg/some-client/'].map((target) => ({
    method: 'PUT',
    target,
    body: {},
    headers: { 'Content-Type': 'application/json' },
  })),
  ...['/reg/some-client', '/REG/SOME-CLIENT/'].map((target) => ({ method: 'DELETE', target })),
];

const LOGIN_VARIANTS: Variant[] = [
  '/interaction/uid1/login',
  '/interaction/uid1/LOGIN',
  '/INTERACTION/uid1/login/',
  '/interaction/u%69d1/Login',
].map((target) => ({
  method: 'POST',
  target,
  body: { email: 'a@example.test', password: 'whatever-password' },
  headers: { Accept: 'text/html' },
}));

/**
 * R3 (issue 19): rate limits and the device-code lockout were keyed on `ctx.path ===`, while
 * oidc-provider's router folds case and takes one trailing slash (and @koa/router too): after the
 * budget was spent on POST /token, POST /TOKEN and /token/ still reached the provider. Every guard
 * is now keyed on the provider's own route name (or sits on our own route), and per-IP budgets
 * group an IPv6 /64 as one client.
 */
describe('R3 guards keyed on route names, not on the path spelling; IPv6 /64 budgets', function () {
  this.timeout(60_000);

  it('R3 the provider route lookup uses oidc-provider internals that are still where the pinned version keeps them', async function () {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const provider = new Provider('http://127.0.0.1:1', {
      jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' }] },
      features: { devInteractions: { enabled: false } },
    });
    expect(typeof instance(provider)?.router?.match, 'weak_cache(provider).router.match').to.equal('function');
    const routeOf = (method: string, path: string) => providerRouteOf(provider)(method, path)?.name;
    expect(routeOf('POST', '/token')).to.equal('token');
    expect(routeOf('POST', '/TOKEN/')).to.equal('token');
    expect(routeOf('HEAD', '/jwks')).to.equal('jwks');
    expect(routeOf('GET', '/auth/a%2Fb')).to.equal('resume');
    expect(providerRouteOf(provider)('GET', '/auth/a%2Fb')?.params).to.deep.equal({ uid: 'a/b' });
    expect(routeOf('GET', '/token')).to.equal(undefined);
    expect(routeOf('POST', '//token')).to.equal(undefined);
    expect(() => providerRouteOf(Object.create(Provider.prototype) as Provider)).to.throw(/oidc-provider internals moved/);
    const pinned = (
      JSON.parse(await import('node:fs').then((fs) => fs.readFileSync('package.json', 'utf8'))) as { dependencies: Record<string, string> }
    ).dependencies['oidc-provider'];
    expect(pinned, 'oidc-provider is pinned to an exact version while we read its internals').to.match(/^\d+\.\d+\.\d+$/);
  });

  it('R3 ipBudgetKey: an IPv6 /64 is one key, IPv4-mapped IPv6 is the IPv4 address', function () {
    expect(ipBudgetKey('2001:db8:1:2::1')).to.equal(ipBudgetKey('2001:DB8:1:2:ffff:ffff:ffff:fffe'));
    expect(ipBudgetKey('2001:db8:1:2::1')).to.equal('2001:db8:1:2::/64');
    expect(ipBudgetKey('2001:db8:1:3::1')).not.to.equal(ipBudgetKey('2001:db8:1:2::1'));
    expect(ipBudgetKey('::ffff:192.0.2.1')).to.equal('192.0.2.1');
    expect(ipBudgetKey('192.0.2.1')).to.equal('192.0.2.1');
    expect(ipBudgetKey('192.0.2.2')).not.to.equal(ipBudgetKey('192.0.2.1'));
    expect(ipBudgetKey('not-an-address')).to.equal('not-an-address');
  });

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    describe(`${storage} storage`, function () {
      let servers: TestServers;

      before(async function () {
        servers = await startTestServers({
          storage,
          env: {
            // Behind a proxy: each test names its client address in X-Forwarded-For.
            TRUST_PROXY: 'true',
            RATE_LIMIT_TOKEN_PER_IP: String(TOKEN_VARIANTS.length),
            RATE_LIMIT_TOKEN_PER_CLIENT: '2',
            RATE_LIMIT_REGISTRATION_PER_IP: String(REGISTRATION_VARIANTS.length),
            RATE_LIMIT_LOGIN_PER_IP: String(LOGIN_VARIANTS.length),
            RATE_LIMIT_API_PER_IP: '2',
            RATE_LIMIT_WINDOW_SECONDS: '600',
            USER_CODE_ATTEMPTS: '2',
            USER_CODE_LOCKOUT_SECONDS: '600',
            LOCKOUT_PASSWORD_IP_MAX_FAILURES: '2',
          },
        });
      });

      after(async function () {
        await servers.stop();
      });

      const send = (variant: Variant, from: string): Promise<RawReply> => {
        const json = variant.headers?.['Content-Type'] === 'application/json';
        return rawRequest(servers.issuer, {
          method: variant.method,
          target: variant.target,
          headers: {
            'X-Forwarded-For': from,
            ...(variant.body && !json ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
            ...variant.headers,
          },
          ...(variant.body ? { body: json ? JSON.stringify(variant.body) : formBody(variant.body) } : {}),
        });
      };

      /** Each spelling once (all served, none limited), then each again: all limited. */
      async function expectOneBudget(variants: Variant[], from: string): Promise<void> {
        for (const variant of variants) {
          const reply = await send(variant, from);
          expect(reply.status, `${variant.method} ${variant.target} is served (first round)`).not.to.be.oneOf([404, 405, 429]);
        }
        for (const variant of variants) {
          const reply = await send(variant, from);
          expect(reply.status, `${variant.method} ${variant.target} once the budget is spent`).to.equal(429);
          expect(reply.headers['retry-after']).to.match(/^\d+$/);
        }
      }

      it('R3 every spelling of /token, /token/introspection, /token/revocation, /device/auth and /request spends one per-IP budget', async function () {
        await expectOneBudget(TOKEN_VARIANTS, '198.51.100.1');
      });

      it('R3 every spelling and method of /reg and /reg/:id spends the registration budget', async function () {
        await expectOneBudget(REGISTRATION_VARIANTS, '198.51.100.2');
      });

      it('R3 every spelling of /interaction/{uid}/login the router accepts spends the login budget', async function () {
        await expectOneBudget(LOGIN_VARIANTS, '198.51.100.3');
      });

      it('R3 the device user-code lockout holds for POST /DEVICE and /device/, and GET /device/?user_code= never auto-submits', async function () {
        const from = '198.51.100.4';
        const page = await rawRequest(servers.issuer, { target: '/device', headers: { 'X-Forwarded-For': from } });
        const cookie = (page.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
        // The provider issues a fresh form token with every page it renders.
        let xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
        expect(xsrf).not.to.equal('');
        const wrong = (target: string, address = from) =>
          rawRequest(servers.issuer, {
            method: 'POST',
            target,
            headers: {
              'X-Forwarded-For': address,
              Cookie: cookie,
              'Content-Type': 'application/x-www-form-urlencoded',
              Accept: 'text/html',
            },
            body: formBody({ xsrf, user_code: 'BCDF-GHJK' }),
          });
        for (let i = 0; i < 2; i++) {
          const reply = await wrong('/device');
          expect(reply.status).to.equal(200);
          expect(reply.body).to.include('That code is not right');
          xsrf = /name="xsrf" value="([^"]+)"/.exec(reply.body)?.[1] ?? '';
        }
        for (const target of ['/device', '/DEVICE', '/device/', '/Device/']) {
          const locked = await wrong(target);
          expect(locked.status, target).to.equal(429);
          expect(locked.body, target).to.include('Too many wrong codes');
        }
        for (const target of ['/device?user_code=BCDF-GHJK', '/DEVICE?user_code=BCDF-GHJK', '/device/?user_code=BCDF-GHJK']) {
          const prefilled = await rawRequest(servers.issuer, {
            target,
            headers: { 'X-Forwarded-For': '198.51.100.5', Accept: 'text/html' },
          });
          expect(prefilled.status, target).to.equal(200);
          expect(prefilled.body, target).to.include('value="BCDF-GHJK"');
          expect(prefilled.body, `${target} is not the provider's auto-submitting form`).not.to.include('forms[0].submit()');
        }
      });

      it('R3 a chunked body (no Content-Length) is read for its client_id like any other; an oversized one is refused', async function () {
        const chunked = (client: string, from: string) =>
          rawRequest(servers.issuer, {
            method: 'POST',
            target: '/token',
            headers: { 'X-Forwarded-For': from, 'Content-Type': 'application/x-www-form-urlencoded' },
            body: formBody({ grant_type: 'client_credentials', client_id: client }),
            chunked: true,
          });
        // Per client: 2 (this server's RATE_LIMIT_TOKEN_PER_CLIENT); fresh addresses, so only the client budget counts.
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) statuses.push((await chunked('chunky-client', `198.51.100.${20 + i}`)).status);
        expect(statuses).to.deep.equal([401, 401, 429]);
        const huge = await rawRequest(servers.issuer, {
          method: 'POST',
          target: '/token',
          headers: { 'X-Forwarded-For': '198.51.100.30', 'Content-Type': 'application/x-www-form-urlencoded' },
          body: formBody({ grant_type: 'client_credentials', client_id: 'x', padding: 'a'.repeat(60 * 1024) }),
          chunked: true,
        });
        expect(huge.status).to.equal(413);
      });

      it('R3 two IPv6 addresses in one /64 share a per-IP budget (rate limit, device lockout, password lockout, API); another /64 does not; IPv4-mapped counts as IPv4', async function () {
        const spend = (from: string) =>
          send({ method: 'POST', target: '/token', body: { grant_type: 'client_credentials', client_id: anyClient() } }, from);
        for (let i = 1; i <= TOKEN_VARIANTS.length; i++) expect((await spend(`2001:db8:aa:1::${i.toString(16)}`)).status).to.equal(401);
        expect((await spend('2001:db8:aa:1:ffff:ffff:ffff:1')).status, 'same /64').to.equal(429);
        expect((await spend('2001:db8:aa:2::1')).status, 'another /64').to.equal(401);
        for (let i = 0; i < TOKEN_VARIANTS.length; i++) expect((await spend('::ffff:203.0.113.7')).status).to.equal(401);
        expect((await spend('203.0.113.7')).status, 'the IPv4 address of an IPv4-mapped one').to.equal(429);
        expect((await spend('203.0.113.8')).status).to.equal(401);

        const { deviceUserCode, passwordIp } = servers.deps.lockouts;
        for (const lockout of [deviceUserCode, passwordIp!]) {
          await lockout.fail('2001:db8:bb:1::1');
          await lockout.fail('2001:db8:bb:1:a::2');
          expect((await lockout.check('2001:db8:bb:1:ffff::3')).locked, `${lockout.budget.name}: same /64`).to.equal(true);
          expect((await lockout.check('2001:db8:bb:2::1')).locked, `${lockout.budget.name}: another /64`).to.equal(false);
          await lockout.clear('2001:db8:bb:1::1');
        }

        const api = (from: string) => rawRequest(servers.apiUrl, { target: '/v1/me', headers: { 'X-Forwarded-For': from } });
        expect((await api('2001:db8:cc:1::1')).status).to.equal(401);
        expect((await api('2001:db8:cc:1::2')).status).to.equal(401);
        expect((await api('2001:db8:cc:1::3')).status, 'API: same /64').to.equal(429);
        expect((await api('2001:db8:cc:2::1')).status, 'API: another /64').to.equal(401);
      });
    });
  }
});
