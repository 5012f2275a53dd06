/**
 * Timers on a fake clock (fake-clock.ts), with production-sized values: retransmission backoff
 * (RFC 7296 §2.1), DPD (§2.4), CHILD_SA soft and hard lifetimes (§2.8). Each runs in well under a
 * second of real time and asserts exact instants, which the real clock could only bound.
 */
import t from 'tap';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { A, conn, mirror, pair, state, stopOnFakeClock } from './pair.js';

/** Stops both daemons, letting fake time run for the DELETE exchanges (and their timeouts). */
const TIMING = { retransmitBase: 1000, retransmitFactor: 2, retransmitTries: 3, halfOpenTimeout: 30_000 };

t.test('retransmission backoff: base * factor^n, then timeout and re-initiation with backoff', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1');
  const p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0), timing: TIMING });
  t.teardown(() => stopOnFakeClock(clock, p));
  const sentAt: number[] = [];
  p.net.drop = (s) => {
    if (s.exchange === ExchangeType.IKE_SA_INIT && !s.response && s.from.address === A)
      sentAt.push(clock.now());
    return true; // the responder is unreachable
  };
  const start = clock.now();
  // A already sent its first IKE_SA_INIT before the filter was set; count from it.
  await clock.advance(14_999);
  const rel = sentAt.map((x) => x - start);
  t.same(rel, [1000, 3000, 7000], 'retransmits after 1 s, 2 s, 4 s (factor 2)');
  t.equal(p.a.failures.length, 0, 'not given up before the last wait ends');
  await clock.advance(1);
  t.same(
    p.a.failures.map((f) => [f.reason, f.detail]),
    [['timeout', 'no response to IKE_SA_INIT']],
    'gives up exactly 8 s after the last retransmit',
  );
  // Re-initiation backoff (pair: base 50 ms, x2, ±10 % centred jitter; fixed jitter 0 = -10 %).
  sentAt.length = 0;
  await clock.advance(45);
  t.same(sentAt, [start + 15_045], 'a new IKE SA is tried 45 ms later');
});

t.test('DPD: a silent peer is declared dead exactly at probe + timeout', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', { dpd: { delay: 10, timeout: 20 } });
  const timing = { retransmitBase: 2000, retransmitFactor: 1.8, retransmitTries: 5 };
  const p = await pair([c], [mirror(c, { dpd: undefined })], { clock, random: fixedJitter(0), timing });
  t.teardown(() => stopOnFakeClock(clock, p));
  await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 1000, 1);
  const up = clock.now();
  // While the peer answers, a probe goes out every 10 s and nothing happens.
  await clock.advance(25_000);
  const probes = p.net.log.filter((s) => s.exchange === ExchangeType.INFORMATIONAL && !s.response);
  t.equal(probes.length, 2, 'two liveness checks in 25 s (at 10 s and 20 s)');
  t.equal(state(p.a, 't1'), 'established');
  p.net.drop = () => true;
  const cut = clock.now();
  // The next probe is due 10 s after the last answer (at up + 30 s); the peer is dead 20 s later.
  const probeAt = up + 30_000;
  await clock.advance(probeAt + 20_000 - 1 - cut);
  t.notOk(
    p.a.failures.some((f) => f.reason === 'dpd_timeout'),
    'still alive 1 ms before the deadline',
  );
  await clock.advance(1);
  t.same(
    p.a.failures.filter((f) => f.reason === 'dpd_timeout').map((f) => f.detail),
    ['no answer to DPD within 20000 ms'],
    'dead exactly at probe + 20 s',
  );
  t.equal(p.a.dp.sas.size, 0, 'its CHILD_SA left the data plane');
});

t.test(
  'CHILD_SA lifetimes: soft limit at 80 % rekeys; a failed rekey is retried once; hard limit deletes',
  async (t) => {
    const clock = new FakeClock();
    // ESP lifetime 100 s: soft limit at 80 s (jitter 0), retry after 3 % = 3 s, hard limit at 100 s.
    const c = conn('t1', { esp: { proposals: ['aes256gcm16'], lifetime: 100 } });
    const timing = { retransmitBase: 500, retransmitFactor: 1, retransmitTries: 1 };
    const p = await pair([c], [mirror(c, { esp: { proposals: ['aes256gcm16'], lifetime: 1000 } })], {
      clock,
      random: fixedJitter(0),
      timing,
    });
    t.teardown(() => stopOnFakeClock(clock, p));
    await clock.until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 1000, 1);
    const up = clock.now();
    const old = [...p.a.dp.sas.keys()][0]!;
    const ccsFromA: number[] = [];
    // B never answers a CREATE_CHILD_SA: A's rekeys fail.
    p.net.drop = (s) => {
      if (s.exchange !== ExchangeType.CREATE_CHILD_SA) return false;
      if (!s.response && s.from.address === A) ccsFromA.push(clock.now() - up);
      return true;
    };
    const downs: { at: number; reason: string }[] = [];
    p.a.daemon.bus.on('child-down', (e) => downs.push({ at: clock.now() - up, reason: e.reason }));
    await clock.advance(79_999);
    t.same(ccsFromA, [], 'no rekey before the soft limit');
    await clock.advance(1);
    t.same(ccsFromA, [80_000], 'rekey at exactly 80 s');
    // 1 retransmit after 0.5 s, timeout after another 0.5 s: failed at 81 s; the retry 3 s later.
    await clock.advance(4_000);
    t.same(ccsFromA, [80_000, 80_500, 84_000], 'one retransmit, then one retry 3 s after the failure');
    await clock.advance(100_000 - 84_000 - 1);
    t.same(downs, [], 'still installed 1 ms before the hard limit');
    await clock.advance(1);
    t.same(downs, [{ at: 100_000, reason: 'CHILD_SA lifetime expired' }], 'deleted at exactly 100 s');
    t.notOk(p.a.dp.sas.has(old), 'the pair left the data plane');
    // It was the IKE SA's last CHILD_SA: the IKE SA went too and the connection negotiated anew.
    await clock.until(() => p.a.dp.sas.size === 1 && state(p.a, 't1') === 'established', 1000, 1);
    t.not([...p.a.dp.sas.keys()][0], old, 'a new CHILD_SA under a new IKE SA');
  },
);
