import t from 'tap';
import { type HealthChange, HealthCheck } from '../../src/ha/health.js';
import { buildEchoRequest, parseEchoReply } from '../../src/ha/icmp.js';

function reply(req: Buffer): Buffer {
  const r = Buffer.from(req);
  const ihl = (r[0]! & 15) * 4;
  r.copy(r, 12, 16, 20);
  req.copy(r, 16, 12, 16);
  r[ihl] = 0;
  return r;
}

t.test('echo request is a valid IPv4 ICMP packet and a reply parses back', async (t) => {
  const req = buildEchoRequest({
    source: '198.18.1.1',
    destination: '198.19.1.1',
    id: 0x1234,
    seq: 7,
    payload: Buffer.from('x'),
  });
  t.equal(req[0], 0x45);
  t.equal(req.readUInt16BE(2), req.length);
  t.equal(req[9], 1);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += req.readUInt16BE(i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  t.equal(sum, 0xffff, 'IP header checksum');
  t.same(parseEchoReply(req), null, 'a request is not a reply');
  t.same(parseEchoReply(reply(req)), { id: 0x1234, seq: 7 });
  const v6 = buildEchoRequest({
    source: '2001:db8:1::1',
    destination: '2001:db8:2::1',
    id: 9,
    seq: 1,
    payload: Buffer.alloc(0),
  });
  t.equal(v6[0]! >> 4, 6);
  t.equal(v6[40], 128);
});

t.test('consecutive misses mark down, an answer marks up, RTT recorded', async (t) => {
  const sent: Buffer[] = [];
  let hasSa = true;
  const changes: HealthChange[] = [];
  const hc = new HealthCheck(
    't1',
    0x4242,
    { source: '198.18.1.1', destination: '198.19.1.1', interval: 0.1, retries: 3 },
    {
      inject: (_c, p) => {
        if (hasSa) sent.push(p);
        return hasSa;
      },
    },
    (c) => changes.push(c),
    () => {},
    (fn) => fn(),
  );
  let now = 0n;
  const step = 100_000_000n;
  const tick = (): void => {
    now += step;
    hc.tick(now);
  };
  tick();
  const first = parseEchoReply(reply(sent[0]!))!;
  hc.reply(first.seq, now + 2_000_000n);
  t.equal(hc.state, 'up');
  t.equal(hc.lastRttMs, 2);
  for (let i = 0; i < 3; i++) tick();
  t.equal(hc.state, 'up', 'two probes lost so far');
  tick();
  t.equal(hc.state, 'down');
  t.same(changes.at(-1), { connection: 't1', from: 'up', to: 'down', reason: '3 probes lost' });
  const last = parseEchoReply(reply(sent.at(-1)!))!;
  hc.reply(last.seq, now + 1_000_000n);
  t.equal(hc.state, 'up');
  hasSa = false;
  tick();
  t.equal(hc.state, 'down');
  t.equal(changes.at(-1)!.reason, 'no CHILD_SA installed');
  hc.reply(999, now);
  t.equal(hc.state, 'down', 'unknown sequence numbers are ignored');
});

t.test('a reply that arrived in time but is handled after a late tick still counts', async (t) => {
  const sent: Buffer[] = [];
  const changes: HealthChange[] = [];
  const deferred: (() => void)[] = [];
  const hc = new HealthCheck(
    't1',
    0x4243,
    { source: '198.18.1.1', destination: '198.19.1.1', interval: 0.1, retries: 1 },
    { inject: (_c, p) => sent.push(p) > 0 },
    (c) => changes.push(c),
    () => {},
    (fn) => deferred.push(fn),
  );
  hc.tick(0n);
  const r0 = parseEchoReply(reply(sent[0]!))!;
  hc.reply(r0.seq, 1_000_000n);
  t.equal(hc.state, 'up');
  hc.tick(100_000_000n);
  // The JS thread was busy for 300 ms: the tick counts probe 2 lost, although its reply arrived
  // after 5 ms and is next in the event queue, before the deferred decision.
  hc.tick(400_000_000n);
  const r1 = parseEchoReply(reply(sent[1]!))!;
  hc.reply(r1.seq, 105_000_000n);
  for (const fn of deferred.splice(0)) fn();
  t.equal(hc.state, 'up', 'no down: the reply was in time');
  // A reply stamped after the interval (90 ms) does not count: probe 3, sent at 400 ms, answered at 495.
  hc.tick(500_000_000n);
  const r2 = parseEchoReply(reply(sent[2]!))!;
  hc.reply(r2.seq, 495_000_000n);
  for (const fn of deferred.splice(0)) fn();
  t.equal(hc.state, 'down');
  t.same(changes.at(-1), { connection: 't1', from: 'up', to: 'down', reason: '1 probes lost' });
});
