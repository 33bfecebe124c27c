import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { commonPasswordList, createHibpCheck, createPasswordHasher, describePasswordProblem } from '../../src/services/passwords.ts';
import { PasswordPolicyViolation } from '../../src/services/accounts.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { runNode } from '../helpers/process.ts';
import { testConfigEnv } from '../helpers/servers.ts';

const params = { memoryKiB: 8192, timeCost: 1, parallelism: 1 };

/** A fetch double for the HIBP range API: records the URLs it was asked for; nothing leaves the process. */
function fakeRange(breached: string[], options: { status?: number; delayMs?: number; fail?: boolean } = {}) {
  const asked: { url: string; headers: Record<string, string> }[] = [];
  const fetchFn = async (input: string, init?: RequestInit): Promise<Response> => {
    asked.push({ url: input, headers: (init?.headers ?? {}) as Record<string, string> });
    if (options.fail) throw new TypeError('fetch failed');
    if (options.delayMs) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, options.delayMs);
        init?.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(init.signal?.reason as Error);
        });
      });
    }
    const prefix = input.slice(-5);
    const lines = breached
      .map((p) => createHash('sha1').update(p).digest('hex').toUpperCase())
      .filter((h) => h.startsWith(prefix))
      .map((h) => `${h.slice(5)}:42`);
    // Padding entries (count 0) as the real API adds with Add-Padding.
    lines.push(`${'0'.repeat(35)}:0`);
    return new Response(lines.join('\r\n'), { status: options.status ?? 200 });
  };
  return { fetch: fetchFn as unknown as typeof fetch, asked };
}

describe('password policy: blocklist, minimum length, breached-password check (ASVS 6.2.1, 6.2.4, 6.2.12)', function () {
  this.timeout(60_000);

  it('ships the common-password list from @zxcvbn-ts/language-common (tens of thousands of entries)', function () {
    const list = commonPasswordList();
    expect(list.size).to.be.greaterThan(40_000);
    for (const common of ['123456', 'password', 'qwerty', 'iloveyou', 'trustno1', 'football'])
      expect(list.has(common), common).to.equal(true);
  });

  it('check() refuses common passwords as too_common, case-insensitively, at any allowed length', function () {
    const hasher = createPasswordHasher(params);
    for (const common of ['password', '12345678', 'Password1', 'PASSWORD123', 'iloveyou1', 'qwertyuiop', 'baseball']) {
      expect(hasher.check(common), common).to.equal('too_common');
    }
    // Too short wins over too common: the first problem is the one reported.
    expect(hasher.check('123456')).to.equal('too_short');
    for (const fine of ['correct horse battery staple', 'a-long-passphrase', 'plum kettle 9 orbit'])
      expect(hasher.check(fine), fine).to.equal(undefined);
    expect(createPasswordHasher(params, { blocklist: false }).check('password1')).to.equal(undefined);
  });

  it('the minimum length is configurable (PASSWORD_MIN_LENGTH, default 8, never below 8)', function () {
    expect(loadConfig(testConfigEnv()).passwords.minLength).to.equal(8);
    const config = loadConfig({ ...testConfigEnv(), PASSWORD_MIN_LENGTH: '15' });
    expect(config.passwords.minLength).to.equal(15);
    const hasher = createPasswordHasher(params, { minLength: config.passwords.minLength });
    expect(hasher.check('plum kettle 9x')).to.equal('too_short');
    expect(hasher.check('plum kettle 9xy')).to.equal(undefined);
    expect(hasher.describe('too_short')).to.equal('The password is too short (at least 15 characters).');
    expect(() => loadConfig({ ...testConfigEnv(), PASSWORD_MIN_LENGTH: '6' })).to.throw(/PASSWORD_MIN_LENGTH/);
  });

  describe('HIBP range API (k-anonymity), with an injected fetch', function () {
    it('sends only the first 5 hex characters of the SHA-1, padded, and matches the suffix locally', async function () {
      const { fetch, asked } = fakeRange(['plum kettle 9 orbit']);
      const check = createHibpCheck({ timeoutMs: 1000, fetch });
      expect(await check('plum kettle 9 orbit')).to.equal(true);
      expect(await check('another fine passphrase')).to.equal(false);
      const sha = createHash('sha1').update('plum kettle 9 orbit').digest('hex').toUpperCase();
      expect(asked[0]!.url).to.equal(`https://api.pwnedpasswords.com/range/${sha.slice(0, 5)}`);
      expect(asked[0]!.headers).to.deep.equal({ 'Add-Padding': 'true' });
      for (const { url } of asked) expect(url).not.to.include(sha.slice(5, 10));
    });

    it('answers "could not tell" (never blocks) when offline, slow or refused', async function () {
      expect(await createHibpCheck({ timeoutMs: 500, fetch: fakeRange([], { fail: true }).fetch })('x y z w v u')).to.equal(undefined);
      expect(await createHibpCheck({ timeoutMs: 500, fetch: fakeRange([], { status: 503 }).fetch })('x y z w v u')).to.equal(undefined);
      const started = performance.now();
      expect(await createHibpCheck({ timeoutMs: 150, fetch: fakeRange(['x y z w v u'], { delayMs: 5000 }).fetch })('x y z w v u')).to.equal(
        undefined,
      );
      expect(performance.now() - started, 'time-boxed').to.be.below(1000);
    });

    it('screen() refuses a breached password when set, accepts when the check cannot tell; verify() never asks', async function () {
      const range = fakeRange(['plum kettle 9 orbit']);
      const hasher = createPasswordHasher(params, { breachCheck: createHibpCheck({ timeoutMs: 1000, fetch: range.fetch }) });
      expect(await hasher.screen('plum kettle 9 orbit')).to.equal('breached');
      expect(await hasher.screen('another fine passphrase')).to.equal(undefined);
      expect(await hasher.screen('password')).to.equal('too_common');
      const hash = await hasher.hash('plum kettle 9 orbit');
      const before = range.asked.length;
      expect((await hasher.verify(hash, 'plum kettle 9 orbit')).ok, 'login still works for a breached password').to.equal(true);
      expect(range.asked.length, 'no lookup at login').to.equal(before);

      const offline = createPasswordHasher(params, {
        breachCheck: createHibpCheck({ timeoutMs: 200, fetch: fakeRange([], { fail: true }).fetch }),
      });
      expect(await offline.screen('plum kettle 9 orbit')).to.equal(undefined);
      expect(describePasswordProblem('breached')).to.include('breaches');
    });

    it('is off by default (PASSWORD_BREACH_CHECK=false)', function () {
      expect(loadConfig(testConfigEnv()).passwords.breachCheck).to.equal(false);
      expect(loadConfig({ ...testConfigEnv(), PASSWORD_BREACH_CHECK: 'true' }).passwords.breachCheck).to.equal(true);
    });
  });

  describe('at user creation and password change', function () {
    let deps: Deps;
    before(async function () {
      const config = loadConfig(testConfigEnv({ storage: 'postgres' }));
      deps = await createDeps(config, { logger: createLogger(config) });
    });
    after(async function () {
      await deps.close();
    });

    it('createUser refuses a common password with too_common and a sentence for people', async function () {
      let refused: unknown;
      try {
        await deps.accounts.createUser({ email: `common-${Date.now()}@example.test`, password: 'Password123' });
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(PasswordPolicyViolation);
      expect((refused as PasswordPolicyViolation).reason).to.equal('too_common');
      expect((refused as PasswordPolicyViolation).description).to.include('most common passwords');
    });

    it('changePassword refuses a common new password and keeps the old one', async function () {
      const email = `change-${Date.now()}@example.test`;
      const user = await deps.accounts.createUser({ email, password: 'plum kettle 9 orbit' });
      const result = await deps.accounts.changePassword(user.id, 'plum kettle 9 orbit', 'iloveyou1');
      expect(result).to.deep.equal({
        ok: false,
        reason: 'The new password is one of the most common passwords; choose another (a few unrelated words make a good one).',
      });
      const ok = await deps.accounts.changePassword(user.id, 'plum kettle 9 orbit', 'another fine passphrase');
      expect(ok).to.deep.equal({ ok: true });
    });

    it('the CLI prints a clear one-line message and exits 1', async function () {
      const result = await runNode(
        ['src/cli.ts', 'users', 'create', '--email', `cli-common-${Date.now()}@example.test`, '--password-stdin'],
        testConfigEnv({ storage: 'postgres' }),
        'qwertyuiop\n',
      );
      expect(result.code).to.equal(1);
      expect(result.stderr.trim()).to.equal(
        'error: The password is one of the most common passwords; choose another (a few unrelated words make a good one).',
      );
    });
  });
});
