import { expect } from 'chai';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

type Ready = { status: number; body: { status: string; checks: Record<string, string> } };

const readyz = async (base: string): Promise<Ready> => {
  const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as Ready['body'] };
};

/**
 * S9: /readyz costs several database and Redis round trips, and a flood of it slowed /token for
 * everyone. One readiness result is computed at most once a second per process (both servers
 * share it), concurrent callers wait for the same in-flight check, and a failure still shows
 * within about a second. Draining is never cached.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`S9 readiness is computed at most once a second (${storage} storage)`, function () {
    this.timeout(60_000);
    let servers: TestServers;
    let runs = 0;
    let failing = false;

    before(async function () {
      servers = await startTestServers({ storage });
      // A check of our own, counted: it runs once per readiness computation, beside postgres, redis and migrations.
      servers.running.readiness.checks = {
        ...servers.running.readiness.checks,
        counted() {
          runs += 1;
          return failing ? Promise.reject(new Error('down')) : Promise.resolve();
        },
      };
    });

    after(async function () {
      await servers.stop();
    });

    it('S9 100 concurrent /readyz on both servers compute readiness at most once a second; a failure shows within about a second; draining at once', async function () {
      // No /readyz has been asked of these servers yet, so no result is cached: the burst's first
      // request computes one (with the counted check, as its answers show) and the others share it.
      runs = 0;
      const burstStarted = Date.now();
      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => readyz(i % 2 === 0 ? servers.issuer : servers.apiUrl)));
      const burstMs = Date.now() - burstStarted;
      expect(answers.map((a) => a.status)).to.deep.equal(Array.from({ length: 100 }, () => 200));
      expect(answers[0]?.body.checks).to.include({ postgres: 'ok', migrations: 'ok', counted: 'ok' });
      // At most one computation per started second of the burst (one, unless the machine is slow).
      expect(runs, `checks computed for 100 concurrent requests in ${burstMs} ms`)
        .to.be.at.least(1)
        .and.at.most(Math.ceil(burstMs / 1000));

      // The dependency fails: readiness reports it within about a second (cache age plus one check).
      failing = true;
      const runsBefore = runs;
      const failedAt = Date.now();
      const answer = await eventually(
        async () => {
          const reply = await readyz(servers.issuer);
          expect(reply.status, 'readiness once the check fails').to.equal(503);
          return reply;
        },
        { timeoutMs: 5000, intervalMs: 25 },
      );
      const delay = Date.now() - failedAt;
      expect(answer.body).to.deep.include({ status: 'unavailable' });
      expect(answer.body.checks.counted).to.equal('unavailable');
      // The cached result's remaining age (under 1 s) plus one computation.
      expect(delay, 'failure reported within about a second').to.be.below(2000);
      expect(runs - runsBefore, 'one computation reports the failure').to.equal(1);

      // Draining is not cached: the next request says so at once.
      failing = false;
      servers.running.readiness.draining = true;
      try {
        const draining = await readyz(servers.apiUrl);
        expect(draining.status).to.equal(503);
        expect(draining.body.status).to.equal('draining');
      } finally {
        servers.running.readiness.draining = false;
      }
    });
  });
}
