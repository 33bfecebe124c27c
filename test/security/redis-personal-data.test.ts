import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { normalizeEmail } from '../../src/shared/email.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

const digest = (value: string): string => createHash('sha256').update(value).digest('base64url');

/**
 * Review of issue 20 (S12, finding 3): item 10 asks that nothing personal be readable in a copy of
 * Redis. The sign-in counters are keyed by an unkeyed SHA-256 of the normalised email and of the
 * address (lockout.ts keyOf), and the request limits by the address itself (koa-rate-limit.ts), so
 * a Redis dump names who failed to sign in and from where: a list of candidate emails (or all
 * 2^32 IPv4 addresses) reverses every digest — the reasoning S5 gives for the audit log's keyed
 * commitments applies here unchanged. Without Redis the counters are rows of the lockouts table
 * (in every database dump; the request limits are then in memory).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S12 personal data in a copy of the counters (lockout and rate-limit keys, ${storage})`, function () {
    this.timeout(60_000);
    let prefix: string;
    let servers: TestServers;

    before(async function () {
      prefix = `${testEnv.redisKeyPrefix}s12-pd-${storage}:`;
      servers = await startTestServers({
        storage,
        env: { REDIS_KEY_PREFIX: prefix, RATE_LIMIT_LOGIN_PER_IP: '1000', LOCKOUT_PASSWORD_IP_MAX_FAILURES: '1000' },
      });
    });

    after(async function () {
      await servers.stop();
    });

    /** Every counter key: Redis keys under this server's prefix, or the lockouts table's keys. */
    async function counterKeys(): Promise<string[]> {
      if (storage === 'postgres') return (await servers.deps.knex('lockouts').select<{ key: string }[]>('key')).map((row) => row.key);
      const redis = new Redis(testEnv.redisUrl);
      const keys: string[] = [];
      try {
        let cursor = '0';
        do {
          const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          keys.push(...batch.map((key) => key.slice(prefix.length)));
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
      return keys;
    }

    it('S12 a copy of Redis or of the lockouts table after a failed sign-in names neither the email nor the address, in the clear or as a plain digest', async function () {
      const user = await createTestUser(servers.deps);
      // Other suites of the run share the store: look at what this sign-in added.
      const before = new Set(await counterKeys());
      const browser = new Browserless(servers.issuer);
      const login = formOf(await (await browser.follow('/account')).response.text(), '/login');
      await (
        await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: 'wrong password, twice over' })
      ).response.text();

      const keys = await counterKeys();
      // The failure was counted (per account and per address), so there is something to look at.
      const added = keys.filter((key) => !before.has(key));
      expect(
        added.filter((key) => key.startsWith('lockout:password:')),
        added.join(' '),
      ).to.have.length(1);
      // The per-address counter may predate this sign-in (same loopback address as other suites).
      expect(keys.filter((key) => key.startsWith('lockout:password-ip:'))).to.have.length.greaterThan(0);
      if (storage === 'redis') {
        expect(
          added.filter((key) => key.startsWith('rl:login:ip:')),
          keys.join(' '),
        ).to.have.length(1);
        // One REDIS_KEY_PREFIX: the client adds it; the limiter must not add it again.
        expect(keys.filter((key) => key.startsWith(testEnv.redisKeyPrefix))).to.deep.equal([]);
      }
      // The attacker's dictionary: the email (of a list of candidates) and the loopback address.
      const found = keys.filter(
        (key) => key.includes(digest(normalizeEmail(user.email))) || key.includes(digest('127.0.0.1')) || key.includes('127.0.0.1'),
      );
      expect(found).to.deep.equal([]);
    });
  });
}
