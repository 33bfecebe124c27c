import { expect } from 'chai';
import { consistently, eventually, waitUntil, withTimeout } from '../helpers/wait.ts';
import { rejectionOf } from '../helpers/rejections.ts';

/** The test harness's waiting helpers (test/helpers/wait.ts): they must fail loudly, with the last reason. */
describe('test helpers: eventually, consistently, waitUntil, withTimeout', function () {
  it('eventually returns the first value of a check that stops throwing', async function () {
    let tries = 0;
    const value = await eventually(
      () => {
        tries++;
        if (tries < 3) throw new Error('not yet');
        return 'ready';
      },
      { intervalMs: 1 },
    );
    expect(value).to.equal('ready');
    expect(tries).to.equal(3);
  });

  it("eventually fails after the timeout with the check's last error (and a false check counts as not yet)", async function () {
    let tries = 0;
    const error = (await rejectionOf(() =>
      eventually(
        () => {
          tries++;
          throw new Error(`attempt ${tries}`);
        },
        { timeoutMs: 30, intervalMs: 5, message: 'the thing' },
      ),
    )) as Error;
    expect(error.message).to.match(/^the thing: not true after 30 ms \(\d+ tries\); last: attempt \d+$/);
    expect((error.cause as Error).message).to.equal(`attempt ${tries}`);
    const falsy = (await rejectionOf(() => eventually(() => false, { timeoutMs: 10, intervalMs: 2 }))) as Error;
    expect(falsy.message).to.include('the check returned false');
  });

  it('consistently holds for the window, and fails at the first poll where the check does not', async function () {
    let polls = 0;
    const started = Date.now();
    await consistently(() => polls++ >= 0, { forMs: 30, intervalMs: 5 });
    expect(Date.now() - started).to.be.at.least(30);
    expect(polls).to.be.at.least(2);
    let n = 0;
    const error = (await rejectionOf(() => consistently(() => expect(++n).to.be.below(3), { forMs: 1000, intervalMs: 1 }))) as Error;
    expect(error.message).to.match(/^stopped holding on try 3 of a 1000 ms window: expected 3 to be below 3/);
  });

  it('waitUntil returns at the instant, not before; at once for one already past', async function () {
    const until = Date.now() + 25;
    await waitUntil(until);
    expect(Date.now()).to.be.at.least(until);
    const started = Date.now();
    await waitUntil(started - 1000);
    expect(Date.now() - started).to.be.below(20);
  });

  it('withTimeout passes a settled promise through and fails with its message when it does not settle', async function () {
    expect(await withTimeout(Promise.resolve(7), 50, 'never')).to.equal(7);
    const error = (await rejectionOf(() => withTimeout(new Promise(() => undefined), 10, 'the page never posted'))) as Error;
    expect(error.message).to.equal('the page never posted (within 10 ms)');
  });
});
