/** Health check resets (src/ha/reset.ts) on a fake clock: when they fire, how they back off, what stops them. */
import t from 'tap';
import { MAX_RESET_WAIT, RESET_BACKOFF_CAP, type ResetEvent, Resetter } from '../../src/ha/reset.js';
import { FakeClock } from '../exchange/fake-clock.js';

function setup(jitter = 0) {
  const clock = new FakeClock();
  const resets: string[] = [];
  const events: ResetEvent[] = [];
  const r = new Resetter({
    clock,
    random: { bytes: (n) => Buffer.alloc(n), float: () => jitter },
    reset: (c) => resets.push(c),
    onReset: (e) => events.push(e),
  });
  return { clock, r, resets, events };
}

t.test('a check failing on an established SA resets it after exactly resetAfter', async (t) => {
  const s = setup();
  s.r.observe('t1', 60, true, true);
  s.r.observe('t1', 60, true, false);
  await s.clock.advance(59_999);
  t.same(s.resets, [], 'not before resetAfter');
  await s.clock.advance(1);
  t.same(s.resets, ['t1'], 'at resetAfter');
  t.match(s.events[0], { connection: 't1', failedSeconds: 60, attempt: 1, nextAfterSeconds: 120 });
  t.equal(s.r.resets('t1'), 1);
  s.r.stop();
});

t.test('a passing check, an SA going away or resetAfter 0 stop the count', async (t) => {
  const s = setup();
  s.r.observe('t1', 10, true, false);
  await s.clock.advance(9000);
  s.r.observe('t1', 10, true, true);
  await s.clock.advance(20_000);
  t.same(s.resets, [], 'the check passed in time');
  s.r.observe('t1', 10, true, false);
  await s.clock.advance(5000);
  s.r.observe('t1', 10, false, false);
  await s.clock.advance(20_000);
  t.same(s.resets, [], 'no SA: the IKE side retries, no reset is counted');
  s.r.observe('t1', 10, true, false);
  await s.clock.advance(9999);
  t.same(s.resets, [], 'a new SA starts the count again');
  s.r.observe('t1', 10, true, false);
  await s.clock.advance(1);
  t.same(s.resets, ['t1'], 'repeated observations do not restart it');
  s.r.observe('t2', 0, true, false);
  await s.clock.advance(1_000_000);
  t.same(s.resets, ['t1'], 'resetAfter 0: never');
  s.r.stop();
});

t.test(
  'resets that do not bring the check back double their wait, capped; a passing check starts over',
  async (t) => {
    const s = setup();
    const waits: number[] = [];
    let last = s.clock.now();
    for (let i = 0; i < 7; i++) {
      s.r.observe('t1', 10, true, false);
      await s.clock.until(() => s.resets.length > i, 10_000_000, 1000);
      waits.push((s.clock.now() - last) / 1000);
      // The reset deletes the SA, a new one comes up and the check still fails.
      s.r.observe('t1', 10, false, false);
      last = s.clock.now();
    }
    t.same(waits, [10, 20, 40, 80, 160, 160, 160], `10 s, doubling, capped at ${RESET_BACKOFF_CAP}x`);
    t.equal(s.events.at(-1)!.attempt, 7);
    s.r.observe('t1', 10, true, true);
    s.r.observe('t1', 10, true, false);
    last = s.clock.now();
    await s.clock.until(() => s.resets.length === 8, 1_000_000, 1000);
    t.equal((s.clock.now() - last) / 1000, 10, 'after a passing check the next reset waits resetAfter again');
    t.equal(MAX_RESET_WAIT, 3_600_000);
    s.r.stop();
  },
);

t.test('backoff waits carry up to 10 % jitter, the first wait none', async (t) => {
  const s = setup(0.999);
  s.r.observe('t1', 100, true, false);
  await s.clock.until(() => s.resets.length === 1, 1_000_000, 100);
  t.equal(s.clock.now() - 1_000_000, 100_000, 'first: exactly resetAfter');
  s.r.observe('t1', 100, false, false);
  const from = s.clock.now();
  s.r.observe('t1', 100, true, false);
  await s.clock.until(() => s.resets.length === 2, 1_000_000, 100);
  const wait = s.clock.now() - from;
  t.ok(wait > 200_000 && wait <= 220_000, `second: 200 s + jitter (${wait} ms)`);
  s.r.stop();
});
