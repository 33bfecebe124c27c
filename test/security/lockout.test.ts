import { request as httpRequest } from 'node:http';
import { expect } from 'chai';
import * as client from 'openid-client';
import { createAccountService } from '../../src/services/accounts.ts';
import { createLockout, type Lockout, type LockoutBudget } from '../../src/services/lockout.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createPostgresLockoutCounters } from '../../src/store/lockout-counters-postgres.ts';
import { createRedisLockoutCounters } from '../../src/store/lockout-counters-redis.ts';
import type { Redis } from '../../src/store/redis.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser, uniqueEmail } from '../helpers/factories.ts';
import { authorizationRequest } from '../helpers/oidc.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

const GENERIC = 'The email or password is not right.';
type Reply = { status: number; url: URL; html: string; headers: Headers };

const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function relyingParty(servers: TestServers, clientId: string, secret: string | undefined): Promise<client.Configuration> {
  return client.discovery(new URL(servers.issuer), clientId, secret, undefined, { execute: [client.allowInsecureRequests] });
}

async function openLogin(servers: TestServers, rp: client.Configuration) {
  const { url } = await authorizationRequest(rp);
  const browser = new Browserless(servers.issuer);
  const { response } = await browser.follow(url);
  return { browser, form: formOf(await response.text(), '/login') };
}

async function login(servers: TestServers, rp: client.Configuration, email: string, password: string): Promise<Reply> {
  const { browser, form } = await openLogin(servers, rp);
  const { response, url } = await browser.submit(form.action, { csrf: form.csrf, email, password });
  return { status: response.status, url, html: await response.text(), headers: response.headers };
}

const refused = (reply: Reply): void => {
  expect(reply.status).to.equal(200);
  expect(reply.url.pathname).to.match(/^\/interaction\/[^/]+\/login$/);
  expect(reply.html).to.include(GENERIC);
};

const accepted = (reply: Reply): void => {
  expect(reply.html).to.not.include(GENERIC);
  expect(reply.html).to.include('Allow');
};

/** A login POST from a chosen loopback source address (the whole 127/8 is local on Linux). */
function postFrom(
  from: string,
  url: URL,
  cookie: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        localAddress: from,
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': String(Buffer.byteLength(body)),
          Origin: url.origin,
          Cookie: cookie,
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const reasons = async (servers: TestServers, since: Date): Promise<string[]> =>
  (
    await servers.deps
      .knex('audit_events')
      .where({ type: 'login.password', outcome: 'failure' })
      .andWhere('occurred_at', '>=', since)
      .orderBy('id')
      .select<{ data: { reason?: string } | null }[]>('data')
  ).map((row) => row.data?.reason ?? '');

/**
 * The brute-force lockout sentinel (issue #6): wrong passwords per account (known or not) and per
 * client IP, exponential back-off, counters shared by every instance, fail closed; a locked
 * account answers exactly like a wrong password (T33, T34).
 */
describe('brute-force lockout sentinel', function () {
  this.timeout(180_000);
  // Two auth instances on one Redis (the test run's prefix), as behind a load balancer.
  let a: TestServers;
  let b: TestServers;
  let rpA: client.Configuration;
  let rpB: client.Configuration;

  before(async function () {
    const env = { LOCKOUT_PASSWORD_MAX_FAILURES: '5', LOCKOUT_BASE_SECONDS: '60' };
    [a, b] = await Promise.all([startTestServers({ env }), startTestServers({ env })]);
    const registered = await createTestClient(a.deps);
    [rpA, rpB] = await Promise.all([
      relyingParty(a, registered.client_id, registered.client_secret),
      relyingParty(b, registered.client_id, registered.client_secret),
    ]);
  });

  after(async function () {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('T34 refuses even the right password after N wrong ones, with the generic message, and leaves other users alone', async function () {
    const user = await createTestUser(a.deps);
    const other = await createTestUser(a.deps);
    const since = new Date();
    for (let i = 0; i < 5; i++) refused(await login(a, rpA, user.email, 'wrong-password'));
    refused(await login(a, rpA, user.email, user.password));
    // Refused before argon2: the audit says "locked", not "wrong_password".
    expect((await reasons(a, since)).slice(-1)).to.deep.equal(['locked']);
    const state = await a.deps.lockouts.password.check(user.email);
    expect(state).to.include({ locked: true, failures: 5 });
    expect(state.retryAfterSeconds).to.be.within(50, 60);
    // The same email typed differently is the same account.
    refused(await login(a, rpA, ` ${user.email.toUpperCase()} `, user.password));
    accepted(await login(a, rpA, other.email, other.password));
  });

  it('T34 counts failures on two instances together (one Redis) and locks on both', async function () {
    const user = await createTestUser(a.deps);
    for (const [servers, rp] of [
      [a, rpA],
      [b, rpB],
      [a, rpA],
      [b, rpB],
      [a, rpA],
    ] as const)
      refused(await login(servers, rp, user.email, 'wrong-password'));
    expect((await b.deps.lockouts.password.check(user.email)).failures).to.equal(5);
    refused(await login(b, rpB, user.email, user.password));
    refused(await login(a, rpA, user.email, user.password));
  });

  it('T34 counts unknown emails too, so a lock does not tell which accounts exist', async function () {
    const nobody = uniqueEmail('nobody');
    for (let i = 0; i < 5; i++) refused(await login(a, rpA, nobody, 'wrong-password'));
    expect(await a.deps.lockouts.password.check(nobody)).to.include({ locked: true, failures: 5 });
  });

  it('T34 50 parallel wrong passwords on two instances: every attempt is either counted once or refused as locked', async function () {
    const user = await createTestUser(a.deps);
    const since = new Date();
    const logins = await Promise.all([openLogin(a, rpA), openLogin(b, rpB)]);
    const replies = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const { browser, form } = logins[i % 2]!;
        const { response } = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: `wrong-${String(i)}` });
        return { status: response.status, html: await response.text() };
      }),
    );
    expect(replies.every((r) => r.status === 200 && r.html.includes(GENERIC))).to.equal(true);
    const seen = await reasons(a, since);
    expect(seen).to.have.length(50);
    const counted = seen.filter((reason) => reason !== 'locked');
    // No lost and no double updates: the counter is exactly the attempts that reached argon2.
    expect((await a.deps.lockouts.password.check(user.email)).failures).to.equal(counted.length);
    expect(counted.length).to.be.at.least(5);
    expect(counted.filter((reason) => reason === 'invalid_now_locked')).to.have.length(1);
    refused(await login(a, rpA, user.email, user.password));
  });

  it('T34 the per-IP budget keys on the socket address; X-Forwarded-For is ignored without TRUST_PROXY', async function () {
    const servers = await startTestServers({ env: { LOCKOUT_PASSWORD_IP_MAX_FAILURES: '3', LOCKOUT_PASSWORD_MAX_FAILURES: '100' } });
    try {
      const registered = await createTestClient(servers.deps);
      const rp = await relyingParty(servers, registered.client_id, registered.client_secret);
      const user = await createTestUser(servers.deps);
      const attempt = async (from: string, email: string, password: string, headers: Record<string, string> = {}) => {
        const { browser, form } = await openLogin(servers, rp);
        const action = new URL(form.action, servers.issuer);
        return postFrom(from, action, browser.jar.header(action), { csrf: form.csrf, email, password }, headers);
      };
      // Three different emails from one address: a sprayer, not a single account's guesser.
      for (let i = 0; i < 3; i++) expect((await attempt('127.0.0.2', uniqueEmail('spray'), 'wrong-password')).body).to.include(GENERIC);
      const spoofed = await attempt('127.0.0.2', user.email, user.password, { 'X-Forwarded-For': '127.0.0.9' });
      expect(spoofed.status).to.equal(200);
      expect(spoofed.body).to.include(GENERIC);
      // Another address is unaffected: the right password goes on to consent (a redirect).
      const elsewhere = await attempt('127.0.0.3', user.email, user.password);
      expect(elsewhere.status).to.equal(303);
    } finally {
      await servers.stop();
    }
  });

  it('T34 counts 50 parallel wrong passwords exactly 50 times (Postgres counters, no Redis)', async function () {
    const servers = await startTestServers({ storage: 'postgres', env: { LOCKOUT_PASSWORD_MAX_FAILURES: '100' } });
    try {
      const registered = await createTestClient(servers.deps);
      const rp = await relyingParty(servers, registered.client_id, registered.client_secret);
      const user = await createTestUser(servers.deps);
      const { browser, form } = await openLogin(servers, rp);
      const statuses = await Promise.all(
        Array.from(
          { length: 50 },
          async (_, i) =>
            (await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: `wrong-${String(i)}` })).response.status,
        ),
      );
      expect(statuses.every((s) => s === 200)).to.equal(true);
      expect(await servers.deps.lockouts.password.check(user.email)).to.include({ failures: 50, locked: false });
    } finally {
      await servers.stop();
    }
  });

  describe('the sentinel on its own', function () {
    const logger = createLogger({ logLevel: 'silent' });
    const budget = (overrides: Partial<LockoutBudget>): LockoutBudget => ({
      name: `test-${String(Math.random()).slice(2)}`,
      maxFailures: 2,
      baseSeconds: 1,
      maxSeconds: 3,
      windowSeconds: 60,
      ...overrides,
    });
    const stores = (): [string, (b: LockoutBudget) => Lockout][] => [
      [
        'Redis',
        (b) => createLockout({ counters: createRedisLockoutCounters(a.deps.redis!), logger, budget: b, counterKey: a.deps.counterKey }),
      ],
      [
        'Postgres',
        (b) => createLockout({ counters: createPostgresLockoutCounters(a.deps.knex), logger, budget: b, counterKey: a.deps.counterKey }),
      ],
    ];

    it('T34 counts 50 parallel failures exactly 50 times (Redis and Postgres)', async function () {
      for (const [name, make] of stores()) {
        const lockout = make(budget({ maxFailures: 1000 }));
        await Promise.all(Array.from({ length: 50 }, () => lockout.fail('account-1')));
        expect((await lockout.check('account-1')).failures, name).to.equal(50);
        expect((await lockout.check('account-2')).failures, name).to.equal(0);
      }
    });

    it('T34 doubles each further lock (exponential back-off) up to the cap, and a success clears it (Redis and Postgres)', async function () {
      this.timeout(60_000);
      // How long the lock lasts is what is measured here: polled until it ends.
      const waitUnlocked = async (lockout: Lockout, id: string): Promise<number> => {
        const started = Date.now();
        await eventually(async () => expect((await lockout.check(id)).locked, 'locked').to.equal(false), { timeoutMs: 10_000 });
        return Date.now() - started;
      };
      for (const [name, make] of stores()) {
        const lockout = make(budget({}));
        expect((await lockout.fail('id')).locked, name).to.equal(false);
        const first = await lockout.fail('id');
        expect(first, name).to.include({ locked: true, retryAfterSeconds: 1 });
        const firstLasted = await waitUnlocked(lockout, 'id');
        const second = await lockout.fail('id');
        expect(second, name).to.include({ locked: true, retryAfterSeconds: 2 });
        // A failure during a lock does not restart or lengthen it.
        expect((await lockout.fail('id')).retryAfterSeconds, name).to.be.at.most(2);
        const secondLasted = await waitUnlocked(lockout, 'id');
        expect(secondLasted, name).to.be.greaterThan(firstLasted + 500);
        expect(secondLasted, name).to.be.within(1000, 2600);
        // 4 s would be next; LOCKOUT_MAX_SECONDS (3 here) caps it.
        expect(await lockout.fail('id'), name).to.include({ locked: true, retryAfterSeconds: 3 });
        await lockout.clear('id');
        expect(await lockout.check('id'), name).to.deep.equal({ locked: false, retryAfterSeconds: 0, failures: 0 });
      }
    });

    it('T34 fails closed: with the counter store down the right password is refused, without running argon2', async function () {
      const broken = new Proxy({}, { get: () => () => Promise.reject(new Error('redis down')) }) as unknown as Redis;
      const { deps } = a;
      let verifies = 0;
      const hasher = {
        ...deps.hasher,
        verify: (hash: string | null, password: string) => (verifies++, deps.hasher.verify(hash, password)),
      };
      const accounts = createAccountService({
        knex: deps.knex,
        users: deps.stores.users,
        roles: deps.stores.roles,
        hasher,
        audit: deps.audit,
        lockouts: {
          account: createLockout({
            counters: createRedisLockoutCounters(broken),
            logger,
            budget: budget({ name: 'password' }),
            counterKey: deps.counterKey,
          }),
        },
      });
      const user = await createTestUser(deps);
      const since = new Date();
      expect(await accounts.authenticate(user.email, user.password, { ip: '192.0.2.1' })).to.equal(undefined);
      expect(verifies).to.equal(0);
      expect(await reasons(a, since)).to.deep.equal(['lockout_unavailable']);
      const lockout = createLockout({
        counters: createRedisLockoutCounters(broken),
        logger,
        budget: budget({}),
        counterKey: deps.counterKey,
      });
      expect(await lockout.fail('id')).to.include({ locked: true, unavailable: true });
      expect(await lockout.reserve('id')).to.include({ granted: false, unavailable: true });
    });

    it('R14 40 concurrent reservations on one key are granted exactly maxFailures times, on two instances (Redis and Postgres)', async function () {
      for (const [name, make] of stores()) {
        const shared = budget({ maxFailures: 5, baseSeconds: 60, maxSeconds: 60 });
        // Two sentinels over one store: two instances behind a load balancer.
        const [one, two] = [make(shared), make(shared)];
        const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).reserve('account')));
        expect(
          replies.filter((r) => r.granted),
          name,
        ).to.have.length(5);
        expect(
          replies.filter((r) => r.started),
          name,
        ).to.have.length(1);
        expect(await one.check('account'), name).to.include({ locked: true, failures: 5 });
        expect((await one.reserve('other')).granted, name).to.equal(true);
      }
    });

    it('R14 a reservation counts as a failure and locks with the same back-off; release gives it back and ends the lock it started; clear forgets all (Redis and Postgres)', async function () {
      this.timeout(30_000);
      for (const [name, make] of stores()) {
        const lockout = make(budget({}));
        const first = await lockout.reserve('id');
        expect(first, name).to.include({ granted: true, locked: false, failures: 1 });
        const second = await lockout.reserve('id');
        expect(second, name).to.include({ granted: true, locked: true, started: true, retryAfterSeconds: 1, failures: 2 });
        expect(await lockout.reserve('id'), name).to.include({ granted: false, locked: true });
        // The attempt that started the lock was right after all: its lock ends with it.
        await lockout.release('id', second);
        expect(await lockout.check('id'), name).to.include({ locked: false, failures: 1 });
        const again = await lockout.reserve('id');
        expect(again, name).to.include({ granted: true, started: true, retryAfterSeconds: 1 });
        await eventually(async () => expect((await lockout.check('id')).locked, 'locked').to.equal(false), { timeoutMs: 5000 });
        // After a lock one more attempt, which locks for twice as long (T34's back-off).
        expect(await lockout.reserve('id'), name).to.include({ granted: true, started: true, retryAfterSeconds: 2 });
        // Releasing an attempt that started no lock only gives the attempt back.
        await lockout.release('id', first);
        expect(await lockout.check('id'), name).to.include({ locked: true, failures: 2 });
        await lockout.clear('id');
        expect(await lockout.check('id'), name).to.deep.equal({ locked: false, retryAfterSeconds: 0, failures: 0 });
      }
    });
  });

  it('T33 answers unknown email, wrong password and locked account identically (status, body, headers, cookie names)', async function () {
    const wrong = await createTestUser(a.deps);
    const locked = await createTestUser(a.deps);
    for (let i = 0; i < 5; i++) await a.deps.lockouts.password.fail(locked.email);
    const replies = [
      await login(a, rpA, uniqueEmail('nobody'), 'whatever-password'),
      await login(a, rpA, wrong.email, 'wrong-password'),
      await login(a, rpA, locked.email, locked.password),
    ];
    const normalise = (reply: Reply) => ({
      status: reply.status,
      // What legitimately differs: the interaction id, its CSRF token, the typed email, the CSP nonce.
      body: reply.html
        .replace(/\/interaction\/[^/"]+/g, '/interaction/X')
        .replace(/value="[^"]*"/g, 'value=""')
        .replace(/nonce="[^"]*"/g, 'nonce=""'),
      headers: [...reply.headers.entries()]
        .filter(([name]) => !['date', 'content-length', 'set-cookie', 'content-security-policy', 'etag', 'x-request-id'].includes(name))
        .sort(([x], [y]) => x.localeCompare(y)),
      headerNames: [...reply.headers.keys()].sort(),
      cookies: reply.headers
        .getSetCookie()
        .map((cookie) => cookie.slice(0, cookie.indexOf('=')))
        .sort(),
    });
    const [unknown, wrongPassword, lockedAccount] = replies.map(normalise);
    expect(unknown?.body).to.include(GENERIC);
    expect(wrongPassword).to.deep.equal(unknown);
    expect(lockedAccount).to.deep.equal(unknown);
    const csp = replies.map((reply) => (reply.headers.get('content-security-policy') ?? '').replace(/'nonce-[^']+'/g, "'nonce-X'"));
    expect(csp[1]).to.equal(csp[0]);
    expect(csp[2]).to.equal(csp[0]);
  });

  it('T33 takes as long for an unknown email as for a wrong password (dummy argon2 verify), medians of 50 each', async function () {
    this.timeout(300_000);
    // The production argon2 cost, so the hash dominates the time as it does in production.
    const servers = await startTestServers({ env: { ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2' } });
    try {
      const registered = await createTestClient(servers.deps);
      const rp = await relyingParty(servers, registered.client_id, registered.client_secret);
      const users = [];
      for (let i = 0; i < 50; i++) users.push(await createTestUser(servers.deps));
      const { hasher } = servers.deps;
      const realVerify = hasher.verify.bind(hasher);
      let dummyVerifies = 0;
      // Counts verifications without a stored hash: the dummy one for unknown emails.
      hasher.verify = (hash, password) => {
        if (hash === null) dummyVerifies++;
        return realVerify(hash, password);
      };
      const timed = async (email: string, password: string): Promise<number> => {
        const { browser, form } = await openLogin(servers, rp);
        const started = process.hrtime.bigint();
        const { response } = await browser.submit(form.action, { csrf: form.csrf, email, password });
        const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
        expect(await response.text()).to.include(GENERIC);
        return elapsed;
      };
      const unknown: number[] = [];
      const wrong: number[] = [];
      // Interleaved, so load from other processes falls on both alike.
      for (const user of users) {
        unknown.push(await timed(uniqueEmail('nobody'), 'wrong-password'));
        wrong.push(await timed(user.email, 'wrong-password'));
      }
      hasher.verify = realVerify;
      expect(dummyVerifies).to.equal(50);
      const [u, w] = [median(unknown), median(wrong)];
      console.log(`      unknown email median ${u.toFixed(1)} ms, wrong password median ${w.toFixed(1)} ms (50 each)`);
      expect(Math.abs(u - w) / w).to.be.below(0.4);
    } finally {
      await servers.stop();
    }
  });
});
