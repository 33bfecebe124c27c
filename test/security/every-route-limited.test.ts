import { expect } from 'chai';
import Router from 'oidc-provider/lib/helpers/router.js';
import type { Middleware } from 'koa';
import { buildAuthApp } from '../../src/auth/app.ts';
import { PROVIDER_ROUTE_BUCKETS } from '../../src/auth/provider-routes.ts';
import { loadConfig } from '../../src/config/load.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

type Registered = { method: string; name: string; path: string };

const METHODS = ['get', 'post', 'put', 'delete', 'options'] as const;

/**
 * Starts the servers while recording every route oidc-provider's router registers: the list
 * comes from the provider itself (its own register calls), not from our bucket table.
 */
async function startRecordingRoutes(
  options: Parameters<typeof startTestServers>[0],
): Promise<{ servers: TestServers; routes: Registered[] }> {
  const routes: Registered[] = [];
  const prototype = Router.prototype as unknown as Record<
    (typeof METHODS)[number],
    (this: Router, name: string, path: string, ...middleware: unknown[]) => Router
  >;
  const originals = METHODS.map((method) => [method, prototype[method]] as const);
  for (const [method, original] of originals) {
    prototype[method] = function record(this: Router, name: string, path: string, ...middleware: unknown[]): Router {
      routes.push({ method: method.toUpperCase(), name, path });
      return original.call(this, name, path, ...middleware);
    };
  }
  try {
    return { servers: await startTestServers(options), routes };
  } finally {
    for (const [method, original] of originals) prototype[method] = original;
  }
}

/**
 * R11 (issue 19): pushed authorization requests (on by the library's default), /token/revocation
 * and GET/PUT/DELETE /reg/:id had no rate limit. Every route the provider registers now spends a
 * bucket: listed from the provider, each is requested twice from its own address with every
 * per-IP budget at 1, and the second request must be refused with 429.
 */
describe('R11 every oidc-provider endpoint belongs to a rate-limit bucket', function () {
  this.timeout(120_000);

  it('R11 every bucket has a per-IP limit by default (RATE_LIMIT_*_PER_IP)', function () {
    const defaults = loadConfig({}).rateLimits;
    const perIp = {
      token: defaults.tokenPerIp,
      registration: defaults.registrationPerIp,
      login: defaults.loginPerIp,
      browser: defaults.browserPerIp,
      metadata: defaults.metadataPerIp,
    };
    for (const [bucket, points] of Object.entries(perIp))
      expect(points, `default per-IP limit of the ${bucket} bucket`).to.be.greaterThan(0);
  });

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    it(`R11 each provider route, requested twice from one address with every per-IP budget at 1, is refused the second time (${storage})`, async function () {
      const { servers, routes } = await startRecordingRoutes({
        storage,
        env: {
          TRUST_PROXY: 'true',
          RATE_LIMIT_TOKEN_PER_IP: '1',
          RATE_LIMIT_REGISTRATION_PER_IP: '1',
          RATE_LIMIT_LOGIN_PER_IP: '1',
          RATE_LIMIT_BROWSER_PER_IP: '1',
          RATE_LIMIT_METADATA_PER_IP: '1',
          RATE_LIMIT_WINDOW_SECONDS: '600',
        },
      });
      try {
        const names = new Set(routes.map((r) => r.name));
        expect(names, 'the recording saw the provider register its routes').to.include.members([
          'token',
          'authorization',
          'discovery',
          'pushed_authorization_request',
          'revocation',
          'client_update',
        ]);
        const unlisted = [...names].filter((name) => !(name in PROVIDER_ROUTE_BUCKETS) && !name.startsWith('cors.'));
        expect(unlisted, 'provider routes missing from PROVIDER_ROUTE_BUCKETS (src/auth/provider-routes.ts)').to.deep.equal([]);
        let address = 1;
        for (const route of routes) {
          const target = route.path.replace(/:[^/]+/g, 'x');
          const from = `198.18.${Math.floor(address / 250)}.${(address % 250) + 1}`;
          address++;
          const send = () =>
            rawRequest(servers.issuer, {
              method: route.method,
              target,
              headers: {
                'X-Forwarded-For': from,
                'Content-Type': 'application/x-www-form-urlencoded',
                Origin: 'https://rp.example.test',
                'Access-Control-Request-Method': 'POST',
              },
              body: '',
            });
          const first = await send();
          expect(first.status, `${route.method} ${target} (${route.name}) first`).not.to.be.oneOf([404, 429]);
          const second = await send();
          expect(second.status, `${route.method} ${target} (${route.name}) second`).to.equal(429);
        }
      } finally {
        await servers.stop();
      }
    });
  }
});

/**
 * R14 (the second adversarial review): the second-factor and enrolment steps (POST
 * /interaction/:uid/mfa/*, /enroll/*) and the account page's sign-in method changes had no
 * request limit of their own: only the lockout budgets stood between a script and the code
 * checks. Every POST of our sign-in and account pages now spends the login bucket
 * (RATE_LIMIT_LOGIN_PER_IP) as middleware of its own route. The routes are listed from the
 * routers themselves, so a new one cannot be left out.
 */
describe('R14 every POST of the sign-in and account pages spends the login bucket', function () {
  this.timeout(120_000);

  for (const storage of ['redis', 'postgres'] as StorageMode[]) {
    it(`R14 each interaction and account POST route, requested twice from one address with the login budget at 1, is refused the second time (${storage})`, async function () {
      const servers = await startTestServers({
        storage,
        env: { TRUST_PROXY: 'true', RATE_LIMIT_LOGIN_PER_IP: '1', RATE_LIMIT_WINDOW_SECONDS: '600' },
      });
      try {
        // The routers as the auth app mounts them (@koa/router marks its dispatch with .router).
        const { app } = await buildAuthApp(servers.deps, { draining: false });
        const routers = (
          app.middleware as (Middleware & { router?: { opts: { prefix?: string }; stack: { methods: string[]; path: string }[] } })[]
        )
          .map((m) => m.router)
          .filter((r) => r !== undefined);
        const posts = routers.flatMap((r) => r.stack.filter((layer) => layer.methods.includes('POST')).map((layer) => layer.path));
        expect(posts, 'the routers were found').to.include.members([
          '/interaction/:uid/mfa/:method',
          '/interaction/:uid/enroll/totp',
          '/account/totp',
          '/account/passkeys',
        ]);
        let address = 1;
        for (const path of posts) {
          const target = path.replace(/:[^/]+/g, 'x');
          const from = `198.18.200.${address++}`;
          const send = () =>
            rawRequest(servers.issuer, {
              method: 'POST',
              target,
              headers: { 'X-Forwarded-For': from, 'Content-Type': 'application/x-www-form-urlencoded', Origin: servers.issuer },
              body: 'csrf=x',
            });
          const first = await send();
          expect(first.status, `POST ${target} first`).not.to.be.oneOf([404, 405, 429]);
          expect((await send()).status, `POST ${target} second`).to.equal(429);
        }
      } finally {
        await servers.stop();
      }
    });
  }
});
