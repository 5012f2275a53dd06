/**
 * Security issue #11, responder side of IKE_AUTH (RFC 7296 §2.9, §2.15, §2.4):
 *  1. AUTH is verified before any traffic selector work, and narrowing is bounded (a flood of
 *     selectors with a garbage AUTH costs next to nothing);
 *  3. selectors the data plane cannot enforce (a protocol, ports, a non-CIDR range) never leave an
 *     IKE SA with a CHILD_SA installed wider than negotiated, in either role;
 *  4. INITIAL_CONTACT clears only the authenticated peer's SAs, not another connection's that
 *     shares the configured ID strings (%any);
 *  5. the IKE SA's algorithms are checked against the connection finally chosen in IKE_AUTH;
 *  6. a connection is only reachable from its configured `remote` address (IKEv2 and IKEv1).
 */
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import type { Datagram } from '../../src/ike/transport.js';
import { IkeSaV2 } from '../../src/ike/v2/ike-sa.js';
import { IkeAuthTask } from '../../src/ike/v2/tasks/ike-auth.js';
import { ExchangeType, PayloadType, TsType } from '../../src/ike/wire/constants.js';
import { cidrToTs } from '../../src/ike/wire/ts.js';
import type { Payload, TrafficSelector, TsPayload } from '../../src/ike/wire/types.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { A, conn, internal, mirror, pair, type Side, state, stopOnFakeClock, until } from './pair.js';

const A2 = '192.0.2.2';

/** Rewrites the IKE_AUTH request our initiator builds (a misbehaving or hostile peer). */
function patchAuthRequest(t: Test, edit: (ps: Payload[]) => Payload[]): void {
  const orig = IkeAuthTask.prototype.build;
  IkeAuthTask.prototype.build = function (this: IkeAuthTask) {
    return edit(orig.call(this));
  };
  t.teardown(() => {
    IkeAuthTask.prototype.build = orig;
  });
}

const withTs = (ps: Payload[], type: PayloadType.TSi | PayloadType.TSr, selectors: TrafficSelector[]) =>
  ps.map((p) => (p.type === type ? { ...(p as TsPayload), selectors } : p));

/**
 * The event-loop time of the IKE_AUTH requests after the first (which also pays for compiling the
 * code paths): the median, so one descheduling or GC pause on a loaded machine does not decide.
 */
function warm(spent: number[]): number {
  const xs = spent.slice(1).sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}
const ms = (spent: number[]): string => spent.map((x) => x.toFixed(2)).join(', ');

/**
 * Milliseconds of CPU the responder spent handling each IKE_AUTH request (handle() runs it
 * synchronously, so this is the event-loop time it blocked); process CPU time, not wall time, so
 * other processes on the machine do not count.
 */
function timeAuthRequests(s: Side): number[] {
  const core = s.daemon.ike!;
  const orig = core.handle.bind(core);
  const spent: number[] = [];
  const seen = new Set<string>();
  core.handle = (d: Datagram) => {
    const isAuthRequest =
      d.data.length >= 28 && d.data[18] === ExchangeType.IKE_AUTH && !(d.data[19]! & 0x20);
    const t0 = process.cpuUsage();
    orig(d);
    const used = process.cpuUsage(t0);
    // A retransmission is answered from the cache (cheap): count each request once.
    const key = `${d.data.subarray(0, 8).toString('hex')}/${d.data.length >= 28 ? d.data.readUInt32BE(20) : -1}`;
    if (isAuthRequest && !seen.has(key)) spent.push((used.user + used.system) / 1000);
    seen.add(key);
  };
  return spent;
}

/** A responder with many connections for one peer, each with many subnets: narrowing is costly. */
function busyResponder(): { initiator: ConnectionConfig; responder: ConnectionConfig[] } {
  const initiator = conn('t1');
  const responder = Array.from({ length: 8 }, (_, k) =>
    mirror(initiator, {
      name: `r${k}`,
      remoteSubnets: Array.from({ length: 64 }, (_, i) => `198.${18 + k}.${i}.0/24`),
      localSubnets: Array.from({ length: 64 }, (_, i) => `198.${40 + k}.${i}.0/24`),
    }),
  );
  return { initiator, responder };
}

const many = (first: number): TrafficSelector[] =>
  Array.from({ length: 255 }, (_, i) => cidrToTs(`${first}.${i}.0.0/16`));

t.test('255 TSi/TSr with a garbage AUTH: AUTHENTICATION_FAILED in < 20 ms, no narrowing', async (t) => {
  const { initiator, responder } = busyResponder();
  patchAuthRequest(t, (ps) =>
    withTs(withTs(ps, PayloadType.TSi, many(10)), PayloadType.TSr, many(100)).map((p) =>
      p.type === PayloadType.AUTH ? ({ ...p, data: randomBytes(32) } as Payload) : p,
    ),
  );
  const p = await pair([initiator], responder);
  t.teardown(p.stop);
  const spent = timeAuthRequests(p.b);
  // The initiator retries (backoff 50-200 ms): the first request also pays for compiling the
  // code paths, so the bound applies to the next ones (a flood is many requests, all warm).
  await until(() => p.a.failures.length >= 1 && spent.length >= 4);
  t.equal(p.a.failures[0]!.reason, 'auth_failed');
  t.match(p.a.failures[0]!.detail, /AUTHENTICATION_FAILED/, 'answered AUTHENTICATION_FAILED');
  t.equal(p.b.failures[0]!.reason, 'auth_failed');
  t.ok(warm(spent) < 20, `the responder spent ${ms(spent)} ms on each IKE_AUTH request`);
  t.equal(p.b.dp.sas.size, 0);
});

t.test('more than 64 selectors with a valid AUTH: TS_UNACCEPTABLE in < 20 ms', async (t) => {
  const { initiator, responder } = busyResponder();
  patchAuthRequest(t, (ps) => withTs(withTs(ps, PayloadType.TSi, many(10)), PayloadType.TSr, many(100)));
  const p = await pair([initiator], responder);
  t.teardown(p.stop);
  const spent = timeAuthRequests(p.b);
  await until(() => p.a.failures.length >= 1 && spent.length >= 4);
  t.equal(p.a.failures[0]!.reason, 'ts_unacceptable');
  t.ok(
    p.b.failures.some((f) => f.reason === 'ts_unacceptable' && /more than 64/.test(f.detail)),
    'refused for the count',
  );
  t.ok(warm(spent) < 20, `the responder spent ${ms(spent)} ms on each IKE_AUTH request`);
  t.equal(p.b.dp.sas.size, 0);
});

t.test('responder: a protocol/port selector is dropped, a non-CIDR range becomes CIDR blocks', async (t) => {
  const c = conn('t1');
  const range: TrafficSelector = {
    tsType: TsType.IPV4,
    ipProtocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: '198.18.1.5',
    endAddr: '198.18.1.9',
  };
  patchAuthRequest(t, (ps) => withTs(ps, PayloadType.TSi, [cidrToTs('198.18.1.0/24', 6, 443, 443), range]));
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const [x] = [...p.a.dp.sas.values()];
  const [y] = [...p.b.dp.sas.values()];
  const blocks = ['198.18.1.5/32', '198.18.1.6/31', '198.18.1.8/31'];
  t.same(y!.tsRemote, blocks, 'responder: only what the data plane enforces');
  t.same(y!.tsLocal, ['198.19.1.0/24']);
  t.same(x!.tsLocal, blocks, 'initiator installs the same');
});

t.test(
  'responder: only protocol-limited selectors: TS_UNACCEPTABLE, no CHILD_SA, no tight loop',
  async (t) => {
    const c = conn('t1');
    patchAuthRequest(t, (ps) => withTs(ps, PayloadType.TSi, [cidrToTs('198.18.1.0/24', 6, 0, 65535)]));
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    await until(() => p.a.failures.some((f) => f.reason === 'ts_unacceptable'));
    t.ok(p.b.failures.some((f) => f.reason === 'ts_unacceptable'));
    await new Promise((r) => setTimeout(r, 500));
    const inits = p.net.log.filter((s) => s.exchange === ExchangeType.IKE_SA_INIT && !s.response).length;
    // pair(): retry backoff 50 ms doubling to 200 ms; a loop without backoff would make dozens.
    t.ok(inits <= 8, `${inits} IKE_SA_INIT requests in ~0.5 s`);
    t.equal(p.b.dp.sas.size, 0, 'the responder never installed a CHILD_SA');
    t.equal(p.a.dp.sas.size, 0);
  },
);

t.test(
  'initiator: a responder narrowing to tcp/443 is refused, nothing installed, no tight loop',
  async (t) => {
    const orig = IkeSaV2.prototype.respond;
    IkeSaV2.prototype.respond = function (this: IkeSaV2, exchange: number, id: number, ps: Payload[]) {
      const port443 = (s: TrafficSelector): TrafficSelector => ({
        ...s,
        ipProtocol: 6,
        startPort: 443,
        endPort: 443,
      });
      const out =
        exchange === ExchangeType.IKE_AUTH && !this.initiator
          ? ps.map((x) =>
              x.type === PayloadType.TSi || x.type === PayloadType.TSr
                ? { ...(x as TsPayload), selectors: (x as TsPayload).selectors.map(port443) }
                : x,
            )
          : ps;
      return orig.call(this, exchange, id, out);
    };
    t.teardown(() => {
      IkeSaV2.prototype.respond = orig;
    });
    const c = conn('t1');
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    await until(() => p.a.failures.some((f) => f.reason === 'ts_unacceptable'));
    t.match(p.a.failures.find((f) => f.reason === 'ts_unacceptable')!.detail, /not enforceable/);
    await new Promise((r) => setTimeout(r, 500));
    const inits = p.net.log.filter((s) => s.exchange === ExchangeType.IKE_SA_INIT && !s.response).length;
    t.ok(inits <= 8, `${inits} IKE_SA_INIT requests in ~0.5 s`);
    t.equal(p.a.dp.sas.size, 0, 'the initiator never installed the tcp/443 pair');
    t.not(state(p.a, 't1'), 'established');
  },
);

t.test('INITIAL_CONTACT clears the sender’s SAs only, not another %any connection’s', async (t) => {
  const clock = new FakeClock();
  const t1 = conn('t1', { psk: Buffer.from('first peer key') });
  const t2 = conn('t2', {
    local: A2,
    psk: Buffer.from('second peer key'),
    localSubnets: ['198.18.2.0/24'],
    remoteSubnets: ['198.19.2.0/24'],
  });
  // Both responder connections say remoteId %any (same configured ID strings), for two peers.
  const c1 = mirror(t1, { name: 'c1', remoteId: '%any' });
  const c2 = mirror(t2, { name: 'c2', remoteId: '%any' });
  const p = await pair([t1, t2], [c1, c2], { clock, random: fixedJitter(0) });
  t.teardown(() => stopOnFakeClock(clock, p));
  const core = p.b.daemon.ike!;
  await clock.until(() => p.a.dp.sas.size === 2 && p.b.dp.sas.size === 2, 2000, 1);
  await clock.advance(11_000); // older than the 10 s simultaneous-negotiation window
  const before = { c1: core.sasOf('c1')[0]!.spiR, c2: core.sasOf('c2')[0]!.spiR };
  // Peer 2 restarts: forgets its SAs without a DELETE and authenticates with INITIAL_CONTACT.
  p.a.daemon.ike!.destroy(internal(p.a, 't2'), 'test: restart');
  p.a.daemon.ike!.initiate('t2');
  await clock.until(
    () => core.sasOf('c2').length === 1 && !core.sasOf('c2')[0]!.spiR.equals(before.c2),
    2000,
    1,
  );
  t.pass("peer 2's INITIAL_CONTACT removed its own stale SA");
  t.equal(core.sasOf('c1').length, 1, "c1's SA is still there");
  t.ok(core.sasOf('c1')[0]!.spiR.equals(before.c1), 'the same one');
  t.equal(state(p.b, 'c1'), 'established');
  t.equal(p.b.dp.sas.size, 2, "c1's CHILD_SA is untouched");
});

t.test('IKE SA algorithms are checked against the connection chosen in IKE_AUTH', async (t) => {
  const sha = ['aes128-sha1-modp2048'];
  const gcm = ['aes256gcm16-prfsha256-x25519'];
  const base = conn('t1');
  const rSha = mirror(base, {
    name: 'sha',
    remoteId: 'sha.example',
    psk: Buffer.from('sha key'),
    ike: { proposals: sha, lifetime: 3600 },
  });
  const rGcm = mirror(base, {
    name: 'gcm',
    remoteId: 'gcm.example',
    psk: Buffer.from('gcm key'),
    ike: { proposals: gcm, lifetime: 3600 },
  });
  // The peer authenticates for 'gcm' but negotiated the IKE SA with what only 'sha' allows.
  const bad = conn('t1', {
    localId: 'gcm.example',
    psk: Buffer.from('gcm key'),
    ike: { proposals: sha, lifetime: 3600 },
  });
  const p = await pair([bad], [rSha, rGcm]);
  t.teardown(p.stop);
  await until(() => p.b.failures.length >= 1 && p.a.failures.length >= 1);
  t.equal(p.b.failures[0]!.reason, 'no_proposal_chosen');
  t.match(p.b.failures[0]!.detail, /not allowed by connection 'gcm'/);
  t.equal(p.a.failures[0]!.reason, 'auth_failed', 'answered AUTHENTICATION_FAILED (§2.21.2)');
  t.equal(p.b.daemon.ike!.sasOf('gcm').length, 0, 'no SA for gcm');
  t.equal(p.b.dp.sas.size, 0);
  // The same peer with gcm's algorithms gets in, although 'sha' comes first for that address.
  const good = { ...bad, ike: { proposals: gcm, lifetime: 3600 } };
  const q = await pair([good], [rSha, rGcm]);
  t.teardown(q.stop);
  await until(() => state(q.b, 'gcm') === 'established' && q.b.dp.sas.size === 1);
  t.equal(q.b.failures.length, 0);
});

for (const version of [2, 1] as const) {
  t.test(`IKEv${version}: a connection is not reachable from another address than its remote`, async (t) => {
    const v1: Partial<ConnectionConfig> =
      version === 1
        ? {
            version: 1,
            mode: 'main',
            ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
            esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1200 },
          }
        : {};
    // B's connection is for A; the same identities and key, tried from A2.
    const real = conn('t1', v1);
    const intruder = conn('t1', { ...v1, local: A2, localId: A });
    const p = await pair([intruder], [mirror(real)]);
    t.teardown(p.stop);
    const core = p.b.daemon.ike!;
    await until(() => (core.dropped.get('no_connection') ?? 0) >= 1);
    await new Promise((r) => setTimeout(r, 100));
    t.equal(core.sasOf('t1').length, 0, 'no SA, not even half-open');
    t.equal(p.b.dp.sas.size, 0);
    t.not(state(p.a, 't1'), 'established');
    // From A it works (the connection itself is fine).
    const q = await pair([real], [mirror(real)]);
    t.teardown(q.stop);
    await until(() => state(q.b, 't1') === 'established' && q.b.dp.sas.size === 1);
  });
}
