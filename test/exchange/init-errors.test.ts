/**
 * Unauthenticated answers to our IKE_SA_INIT (RFC 7296 §2.21.1): whoever sees the request can
 * forge them. An error notify other than NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD or COOKIE does
 * not end the attempt before the retransmissions do; INVALID_KE_PAYLOAD is followed only for a
 * group we offered and once per attempt (§1.3); COOKIE re-sends are bounded; the notify number
 * never becomes a metrics label of its own.
 */
import t from 'tap';
import { notify } from '../../src/ike/v2/payload-find.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import type { KePayload, Payload } from '../../src/ike/wire/types.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { FakeNetwork, type Sent } from './fake-network.js';
import { A, B, conn, internal, mirror, pair, state, stopOnFakeClock } from './pair.js';

type Pair = Awaited<ReturnType<typeof pair>>;

const isInitRequest = (s: Sent) =>
  s.from.address === A && s.exchange === ExchangeType.IKE_SA_INIT && !s.response;

/**
 * A forged IKE_SA_INIT answer to `request` (as an on-path attacker sends it), delivered to A on the
 * next turn of the event loop (`p` is read then: the first request goes out inside pair()).
 */
function forge(p: () => Pair, request: Buffer, payloads: Payload[]): void {
  const data = encodeMessage({
    header: {
      spiI: request.subarray(0, 8),
      spiR: Buffer.alloc(8),
      version: 0x20,
      exchange: ExchangeType.IKE_SA_INIT,
      flags: HeaderFlag.RESPONSE,
      messageId: 0,
    },
    payloads,
  });
  // Before the real answer: that one takes two more turns of the event loop.
  setImmediate(() =>
    p().a.daemon.ike!.handle({ data, local: { address: A, port: 500 }, remote: { address: B, port: 500 } }),
  );
}

const group = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** KE groups of A's IKE_SA_INIT requests, retransmissions left out. */
function requestGroups(p: Pair): number[] {
  const seen = new Set<string>();
  return p.net.log
    .filter(isInitRequest)
    .filter((s) => !seen.has(s.data.toString('hex')) && seen.add(s.data.toString('hex')))
    .map((s) => (decodeMessage(s.data).payloads.find((x) => x.type === PayloadType.KE) as KePayload).group);
}

for (const type of [NotifyType.INVALID_SYNTAX, NotifyType.TEMPORARY_FAILURE, 12345]) {
  t.test(`a forged error notify (${NotifyType[type] ?? type}) does not end the attempt`, async (t) => {
    const clock = new FakeClock();
    const c = conn('t1');
    const net = new FakeNetwork();
    let p!: Pair;
    let requests = 0;
    net.drop = (s) => {
      if (isInitRequest(s) && ++requests === 1) forge(() => p, s.data, [notify(type)]);
      return false;
    };
    p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0), net });
    t.teardown(() => stopOnFakeClock(clock, p));
    await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 5000);
    t.same(p.a.failures, [], 'no failure: the real answer was taken');
    t.equal(p.a.daemon.ike!.dropped.get('ignored_response'), 1, 'the forged answer was ignored');
    t.same(requestGroups(p), [31], 'one IKE_SA_INIT');
  });
}

t.test(
  'an ignored error notify names the failure once the retransmissions end; its label is bounded',
  async (t) => {
    const clock = new FakeClock();
    const c = conn('t1');
    const timing = { retransmitBase: 1000, retransmitFactor: 2, retransmitTries: 3, halfOpenTimeout: 30_000 };
    const net = new FakeNetwork();
    let p!: Pair;
    let forged = 0;
    net.drop = (s) => {
      if (isInitRequest(s) && forged++ === 0) forge(() => p, s.data, [notify(12345)]);
      return s.from.address === A; // the responder never hears us
    };
    p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0), timing, net });
    t.teardown(() => stopOnFakeClock(clock, p));
    const m = new Metrics({
      snapshot: () => p.a.daemon.status(),
      bus: p.a.daemon.bus,
      defaultMetrics: false,
      version: () => 2,
    });
    t.teardown(() => m.close());
    await clock.advance(14_999);
    t.same(p.a.failures, [], 'nothing acted on before the last retransmission timed out (1+2+4+8 s)');
    await clock.advance(1);
    t.equal(p.a.failures.length, 1);
    t.equal(p.a.failures[0]!.reason, 'other', 'an unknown notify number is "other"');
    t.match(p.a.failures[0]!.detail, /ignored the unauthenticated notify 12345/);
    const fam = await m.registry.getSingleMetric('twinsec_ike_negotiation_failures_total')!.get();
    t.same(
      fam.values.map((v) => [v.labels.reason, v.value]),
      [['other', 1]],
      'the metrics label is "other", not the number',
    );
  },
);

t.test('INVALID_KE_PAYLOAD for a group we did not offer is ignored', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1');
  const net = new FakeNetwork();
  let p!: Pair;
  let forged = 0;
  net.drop = (s) => {
    if (isInitRequest(s) && forged++ === 0)
      forge(() => p, s.data, [notify(NotifyType.INVALID_KE_PAYLOAD, group(14))]);
    return false;
  };
  p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0), net });
  t.teardown(() => stopOnFakeClock(clock, p));
  await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 5000);
  t.same(p.a.failures, []);
  t.same(requestGroups(p), [31], 'no request with group 14');
  t.equal(internal(p.a, 't1').dhGroup, 31);
});

t.test('INVALID_KE_PAYLOAD is followed once per attempt: no ping-pong between offered groups', async (t) => {
  const clock = new FakeClock();
  // A offers x25519 (31) and ecp256 (19); B takes only ecp256 and asks for it (a real INVALID_KE).
  const c = conn('t1', { ike: { proposals: ['aes256gcm16-prfsha256-x25519-ecp256'], lifetime: 3600 } });
  const net = new FakeNetwork();
  let p!: Pair;
  let requests = 0;
  net.drop = (s) => {
    // The forger answers the second request (group 19) with INVALID_KE_PAYLOAD(31).
    if (isInitRequest(s) && ++requests === 2)
      forge(() => p, s.data, [notify(NotifyType.INVALID_KE_PAYLOAD, group(31))]);
    return false;
  };
  p = await pair([c], [mirror(c, { ike: { proposals: ['aes256gcm16-prfsha256-ecp256'], lifetime: 3600 } })], {
    clock,
    random: fixedJitter(0),
    net,
  });
  t.teardown(() => stopOnFakeClock(clock, p));
  await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 5000);
  t.same(requestGroups(p), [31, 19], 'one switch, to the group the responder named first');
  t.same(p.a.failures, []);
  t.equal(internal(p.a, 't1').dhGroup, 19);
});

t.test('COOKIE re-sends are bounded (5, as strongSwan) and a repeated cookie is ignored', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1');
  const timing = { retransmitBase: 1000, retransmitFactor: 2, retransmitTries: 3, halfOpenTimeout: 30_000 };
  const net = new FakeNetwork();
  let p!: Pair;
  let n = 0;
  net.drop = (s) => {
    if (isInitRequest(s)) {
      // Every request gets a new cookie, every other one also the same cookie again.
      forge(() => p, s.data, [notify(NotifyType.COOKIE, Buffer.from(`cookie-${n++}`))]);
      forge(() => p, s.data, [notify(NotifyType.COOKIE, Buffer.from(`cookie-${n - 1}`))]);
    }
    return s.from.address === A;
  };
  p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0), timing, net });
  t.teardown(() => stopOnFakeClock(clock, p));
  await clock.advance(14_000);
  const distinct = new Set(p.net.log.filter(isInitRequest).map((s) => s.data.toString('hex')));
  t.equal(distinct.size, 6, 'the first request and 5 with a cookie, then no more');
  t.ok(p.a.daemon.ike!.dropped.get('ignored_response')! >= 5, 'repeated and excess cookies ignored');
});
