/**
 * IKEv1 has no stateless cookie round trip, so a spoofed main mode message 1 costs the responder
 * an SA. These tests hold the bounds: unproven responder SAs (the peer never echoed our responder
 * cookie) are capped per source and in total, the oldest makes room for the newest, they expire
 * after a short time, and a real peer still comes up during a flood.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DEFAULT_TIMING } from '../../src/ike/core/protocol.js';
import { DEFAULT_LIMITS } from '../../src/ike/core/sa-table.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { A, B, conn, mirror, pair, state, stopOnFakeClock } from './pair.js';

/** The responder accepts any peer (a cloud gateway many sites dial into): spoofed sources reach it. */
const ANY = { remote: '%any' };

t.test('a flood of spoofed main mode message 1 stays bounded and a real peer still comes up', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha256-modp2048'], lifetime: 3600 },
    esp: { proposals: ['aes128-sha256'], lifetime: 1200 },
    start: 'listen',
  });
  // Half-open SAs live 30 s as in production, so only the short unproven timeout can end the flood's.
  const timing = { halfOpenTimeout: 30_000 };
  const p = await pair([c], [mirror(c, ANY)], { clock, random: fixedJitter(0), timing });
  t.teardown(() => stopOnFakeClock(clock, p));

  // A real main mode message 1 (A's, kept from B) is the template of the flood.
  p.net.drop = (s) => s.from.address === A;
  p.a.daemon.ike!.initiate('t1');
  await clock.settle();
  const msg1 = p.net.log.find((s) => s.from.address === A)!.data;
  const b = p.b.daemon.ike!;
  let n = 0;
  const flood = (count: number, address?: string) => {
    for (let i = 0; i < count; i++, n++) {
      const m = Buffer.from(msg1);
      randomBytes(8).copy(m, 0); // a new initiator cookie: a new ISAKMP SA each
      const remote = { address: address ?? `10.${(n >> 8) & 255}.${n & 255}.9`, port: 500 };
      b.handle({ data: m, local: { address: B, port: 500 }, remote });
    }
  };

  // The mechanism with a smaller cap than the default (DEFAULT_LIMITS.unproven, 1,024).
  const cap = 256;
  b.table.limits.unproven = cap;
  flood(2000);
  t.equal(b.table.unprovenCount, cap, `${cap} unproven SAs, no more`);
  t.equal(b.table.size, cap, 'the table holds no more than that');
  t.equal(b.table.halfOpenCount, cap);
  t.equal(b.dropped.get('displaced'), 2000 - cap, 'each newer one displaced the oldest');

  flood(20, '198.51.100.1');
  t.equal(b.table.halfOpenOf('198.51.100.1'), DEFAULT_LIMITS.unprovenPerPeer, 'per source: at most 5');
  t.equal(b.table.unprovenCount, cap);

  // The real peer retransmits its message 1 while the flood goes on (20 spoofed per 10 fake ms).
  p.net.drop = () => false;
  await clock.until(() => {
    flood(20);
    return state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established';
  }, 5000);
  t.ok(b.table.unprovenCount <= cap, 'still bounded');
  t.same(p.b.failures, []);

  // Unproven SAs go after halfOpenUnprovenTimeout; the real one (proven, established) stays.
  await clock.advance(DEFAULT_TIMING.halfOpenUnprovenTimeout + 1);
  t.equal(b.table.unprovenCount, 0);
  t.equal(b.table.halfOpenCount, 0);
  t.equal(b.table.size, 1);
  t.equal(state(p.b, 't1'), 'established');
});

t.test('a peer that echoed our cookie is not displaced by a flood', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha256-modp2048'], lifetime: 3600 },
    esp: { proposals: ['aes128-sha256'], lifetime: 1200 },
    start: 'listen',
  });
  const p = await pair([c], [mirror(c, ANY)], {
    clock,
    random: fixedJitter(0),
    timing: { halfOpenTimeout: 30_000 },
  });
  t.teardown(() => stopOnFakeClock(clock, p));
  const b = p.b.daemon.ike!;
  // Let A's messages 1 and 3 through, then hold message 5 (the SA is proven but not authenticated).
  let fromA = 0;
  p.net.drop = (s) => s.from.address === A && ++fromA > 2;
  p.a.daemon.ike!.initiate('t1');
  await clock.settle();
  await clock.settle();
  t.equal(b.table.halfOpenCount, 1, 'the real SA is half-open');
  t.equal(b.table.unprovenCount, 0, 'and proven (message 3 carried our cookie)');
  const msg1 = p.net.log.find((s) => s.from.address === A)!.data;
  b.table.limits.unproven = 256;
  for (let i = 0; i < 1000; i++) {
    const m = Buffer.from(msg1);
    randomBytes(8).copy(m, 0);
    b.handle({
      data: m,
      local: { address: B, port: 500 },
      remote: { address: `10.1.${(i >> 8) & 255}.${i & 255}`, port: 500 },
    });
  }
  t.equal(b.table.unprovenCount, 256);
  t.equal(b.table.halfOpenCount, 256 + 1, 'the proven SA is still there');
  p.net.drop = () => false;
  await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 5000);
  t.same(p.b.failures, []);
});

t.test(
  'spoofed aggressive mode message 1: Diffie-Hellman answers are rate limited, a real peer gets in',
  async (t) => {
    const clock = new FakeClock();
    const c = conn('t1', {
      version: 1,
      mode: 'aggressive',
      localId: '@gw-a.example.net',
      remoteId: '@gw-b.example.net',
      ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
      esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1200 },
      start: 'listen',
    });
    const p = await pair([c], [mirror(c, ANY)], { clock, random: fixedJitter(0) });
    t.teardown(() => stopOnFakeClock(clock, p));
    p.net.drop = (s) => s.from.address === A;
    p.a.daemon.ike!.initiate('t1');
    await clock.settle();
    const msg1 = p.net.log.find((s) => s.from.address === A)!.data;
    const b = p.b.daemon.ike!;
    // Each answered message 1 (a Diffie-Hellman) is one distinct answer on the wire; its
    // retransmissions repeat the same bytes.
    const seen = new Set<string>();
    let counted = 0;
    const answeredNow = () => {
      for (; counted < p.net.log.length; counted++) {
        const s = p.net.log[counted]!;
        if (s.from.address === B) seen.add(s.data.toString('hex'));
      }
      return seen.size;
    };
    let n = 0;
    const flood = (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        const m = Buffer.from(msg1);
        randomBytes(8).copy(m, 0);
        b.handle({
          data: m,
          local: { address: B, port: 500 },
          remote: { address: `10.${(n >> 8) & 255}.${n & 255}.9`, port: 500 },
        });
      }
    };
    flood(1000); // at one instant
    await clock.settle();
    t.equal(answeredNow(), 50, 'a burst of 50 answers (each a Diffie-Hellman), no more');
    t.equal(b.dropped.get('limit'), 950, 'the rest dropped and counted');
    // 200 per 100 ms (2,000/s) for 2 s: 50 answers a second get through.
    const before = answeredNow();
    for (let i = 0; i < 20; i++) {
      flood(200);
      await clock.advance(100);
    }
    const got = answeredNow() - before;
    t.ok(got >= 90 && got <= 105, `${got} answers in 2 s of 2,000/s`);
    // The real peer (a new attempt) retransmits through a lighter flood (200/s: a token in four).
    p.net.drop = () => false;
    p.a.daemon.ike!.initiate('t1');
    await clock.until(() => {
      flood(2);
      return state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established';
    }, 20_000);
    // B's only failures are spoofed SAs whose "initiators" never answered.
    t.same(
      p.b.failures.filter((f) => f.reason !== 'timeout'),
      [],
    );
  },
);
