import { expect } from 'chai';
import { firstCountingSecond, signInCounts, signInTime } from '../../src/services/session-validity.ts';

/** R8/R13: "sessions not valid before", on whole-second sign-in times. */
describe('R13 sessions not valid before (src/services/session-validity.ts)', function () {
  const cutoff = (ms: number | null, keep: string | null = null) => ({
    sessions_not_before: ms === null ? null : new Date(ms),
    sessions_not_before_keep: keep,
  });

  it('R13 signInCounts: without a cutoff every sign-in counts; with one only sign-ins from the next whole second, and the kept session', function () {
    expect(signInCounts(cutoff(null), {})).to.equal(true);
    expect(signInCounts(cutoff(null), { loginTs: 1 })).to.equal(true);
    const at = 1_700_000_000_400;
    expect(firstCountingSecond(cutoff(at))).to.equal(1_700_000_001);
    expect(signInCounts(cutoff(at), { loginTs: 1_699_999_999 })).to.equal(false);
    // The cutoff's own second cannot be ordered against it: it does not count.
    expect(signInCounts(cutoff(at), { loginTs: 1_700_000_000 })).to.equal(false);
    expect(signInCounts(cutoff(at), { loginTs: 1_700_000_001 })).to.equal(true);
    expect(signInCounts(cutoff(at), {})).to.equal(false);
    expect(signInCounts(cutoff(at, 'kept'), { loginTs: 1_600_000_000, sessionUid: 'kept' })).to.equal(true);
    expect(signInCounts(cutoff(at, 'kept'), { loginTs: 1_600_000_000, sessionUid: 'other' })).to.equal(false);
  });

  it('R13 signInTime: a sign-in begun before the cutoff is refused; one begun after it and finishing within its second is dated the next second, once that has come', function () {
    const at = 1_700_000_000_400;
    const sign = (startedAtMs: number, datedAtMs = startedAtMs, sessionUid?: string) => ({ startedAtMs, datedAtMs, sessionUid });
    expect(signInTime(cutoff(null), sign(1_700_000_000_100, 1_700_000_000_900))).to.deep.equal({ ts: 1_700_000_000, waitMs: 0 });
    // Password checked before the cutoff: refused however late it finishes.
    expect(signInTime(cutoff(at), sign(1_700_000_000_399, 1_700_000_009_000))).to.equal(undefined);
    expect(signInTime(cutoff(at), sign(1_700_000_000_500, 1_700_000_000_700), 1_700_000_000_700)).to.deep.equal({
      ts: 1_700_000_001,
      waitMs: 300,
    });
    expect(signInTime(cutoff(at), sign(1_700_000_000_500, 1_700_000_000_700), 1_700_000_001_200)).to.deep.equal({
      ts: 1_700_000_001,
      waitMs: 0,
    });
    expect(signInTime(cutoff(at), sign(1_700_000_000_500, 1_700_000_002_000))).to.deep.equal({ ts: 1_700_000_002, waitMs: 0 });
    // A step-up of the session kept at the cutoff (it changed the password) keeps its sign-in time.
    expect(signInTime(cutoff(at, 'kept'), sign(1_600_000_000_000, 1_600_000_000_000, 'kept'))).to.deep.equal({
      ts: 1_600_000_000,
      waitMs: 0,
    });
    expect(signInTime(cutoff(at, 'kept'), sign(1_600_000_000_000, 1_600_000_000_000, 'other'))).to.equal(undefined);
  });
});
