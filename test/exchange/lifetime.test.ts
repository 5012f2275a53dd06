/**
 * SA lifetimes between two in-process daemons: twinsec rekeys its own CHILD_SAs and IKE SAs at the
 * soft limit (80-90 % of the lifetime) and deletes an SA at the hard limit when its rekey never got
 * through. `lifetimeUnit: 30` makes a configured 10 s lifetime last 300 ms.
 */
import t, { type Test } from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { Daemon } from '../../src/daemon.js';
import { MemoryDataPlane } from '../../src/dataplane/memory.js';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import type { TwinsecEvents } from '../../src/events.js';
import type { Timing } from '../../src/ike/core/protocol.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { FakeNetwork } from './fake-network.js';
import { config, conn, mirror, until } from './pair.js';

const UNIT = 30; // ms per configured second
const TIMING: Partial<Timing> = {
  retransmitBase: 40,
  retransmitFactor: 1.5,
  retransmitTries: 3,
  halfOpenTimeout: 2000,
  keepalive: 30,
  lifetimeUnit: UNIT,
};

interface Side {
  daemon: Daemon;
  dp: MemoryDataPlane;
  ups: { at: number; ev: TwinsecEvents['child-up'] }[];
  downs: { at: number; ev: TwinsecEvents['child-down'] }[];
  states: TwinsecEvents['ike-state'][];
  failures: TwinsecEvents['ike-failure'][];
}

async function lifetimePair(a: ConnectionConfig, b: ConnectionConfig) {
  const net = new FakeNetwork();
  const make = (c: ConnectionConfig): Side => {
    const dp = new MemoryDataPlane();
    const daemon = new Daemon(config([c]), {
      transport: net.transport([c.local]),
      dataplane: dp,
      timing: TIMING,
      retry: { base: 50, max: 200 },
    });
    const s: Side = { daemon, dp, ups: [], downs: [], states: [], failures: [] };
    daemon.bus.on('child-up', (ev) => s.ups.push({ at: Date.now(), ev }));
    daemon.bus.on('child-down', (ev) => s.downs.push({ at: Date.now(), ev }));
    daemon.bus.on('ike-state', (ev) => s.states.push(ev));
    daemon.bus.on('ike-failure', (ev) => s.failures.push(ev));
    return s;
  };
  const sa = make(a);
  const sb = make(b);
  await sb.daemon.start();
  await sa.daemon.start();
  return {
    net,
    a: sa,
    b: sb,
    stop: async () => {
      await sa.daemon.stop();
      await sb.daemon.stop();
    },
  };
}

function mirrored(t: Test, x: ChildSaSpec, y: ChildSaSpec): void {
  t.equal(x.spiIn, y.spiOut, 'SPIs mirror');
  t.equal(x.spiOut, y.spiIn, 'SPIs mirror');
  t.same(x.encrKeyOut, y.encrKeyIn, 'encryption keys mirror');
  t.same(x.encrKeyIn, y.encrKeyOut, 'encryption keys mirror');
}

const state = (s: Side, name: string): string => s.daemon.status().connections[name]?.state ?? 'missing';

const only = (s: Side): ChildSaSpec => {
  if (s.dp.sas.size !== 1) throw new Error(`expected one SA, have ${s.dp.sas.size}`);
  return [...s.dp.sas.values()][0]!;
};

t.test('CHILD_SA: twinsec rekeys before the lifetime, the old pair is deleted, keys mirror', async (t) => {
  // A: esp lifetime 10 (300 ms); B keeps its CHILD_SAs for an hour, so every rekey is A's.
  const c = conn('t1', { esp: { proposals: ['aes256gcm16-x25519'], lifetime: 10 } });
  const p = await lifetimePair(c, mirror(c, { esp: { proposals: ['aes256gcm16-x25519'], lifetime: 3600 } }));
  t.teardown(p.stop);
  await until(() => p.a.ups.length === 1 && p.b.ups.length === 1);
  const first = only(p.a);
  const t0 = p.a.ups[0]!.at;
  await until(() => p.a.downs.length >= 2, 3000);
  const [d1, d2] = p.a.downs;
  t.equal(d1!.ev.spiIn, first.spiIn, 'the first CHILD_SA went first');
  t.equal(d1!.ev.reason, 'rekeyed', 'removed because twinsec rekeyed it');
  t.ok(d1!.at - t0 < 10 * UNIT, `rekeyed and deleted before the lifetime (${d1!.at - t0} ms)`);
  t.ok(d1!.at - t0 >= 0.75 * 10 * UNIT, `not before the soft limit (${d1!.at - t0} ms)`);
  t.equal(d2!.ev.reason, 'rekeyed', 'the rekeyed CHILD_SA is rekeyed in turn');
  t.ok(
    p.b.downs.slice(0, 2).every((d) => d.ev.reason === 'deleted by peer'),
    'B removed the old pairs on DELETE',
  );
  t.notOk(
    p.a.downs.some((d) => d.ev.reason.includes('expired')),
    'no CHILD_SA reached its hard limit',
  );
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  mirrored(t, only(p.a), only(p.b));
  t.not(only(p.a).spiIn, first.spiIn, 'a new pair');
  t.equal(state(p.a, 't1'), 'established');
  t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
});

t.test('CHILD_SA: the responder side (B) rekeys the CHILD_SAs it got in IKE_AUTH too', async (t) => {
  const c = conn('t1', { esp: { proposals: ['aes256gcm16'], lifetime: 3600 } });
  const p = await lifetimePair(c, mirror(c, { esp: { proposals: ['aes256gcm16'], lifetime: 10 } }));
  t.teardown(p.stop);
  await until(() => p.b.downs.length >= 1, 3000);
  t.equal(p.b.downs[0]!.ev.reason, 'rekeyed');
  t.equal(p.a.downs[0]?.ev.reason, 'deleted by peer');
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  mirrored(t, only(p.a), only(p.b));
});

t.test('IKE SA: twinsec rekeys it before the lifetime; children move, traffic SAs stay', async (t) => {
  const c = conn('t1', {
    ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 10 },
    esp: { proposals: ['aes256gcm16'], lifetime: 3600 },
  });
  const p = await lifetimePair(
    c,
    mirror(c, { ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 } }),
  );
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && p.a.dp.sas.size === 1);
  const child = only(p.a);
  const first = p.a.daemon.ike!.sasOf('t1')[0]!;
  const t0 = Date.now();
  await until(() => first.phase === 'dead', 3000);
  t.ok(Date.now() - t0 < 10 * UNIT, `old IKE SA gone before its lifetime (${Date.now() - t0} ms)`);
  const now = p.a.daemon.ike!.sasOf('t1');
  t.equal(now.length, 1, 'one IKE SA');
  t.not(now[0], first, 'a new IKE SA');
  t.equal(now[0]!.children.length, 1, 'the CHILD_SA moved over');
  t.equal(only(p.a).spiIn, child.spiIn, 'the CHILD_SA itself is untouched');
  t.equal(p.a.downs.length, 0, 'no CHILD_SA went down');
  t.ok(
    p.a.states.some((s) => s.to === 'down' && s.reason === 'rekeyed'),
    'old IKE SA down with reason rekeyed',
  );
  await until(() => p.b.daemon.ike!.sasOf('t1').length === 1);
  t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
  // The new IKE SA is rekeyed again in its turn.
  const second = now[0]!;
  await until(() => second.phase === 'dead', 3000);
  t.equal(state(p.a, 't1'), 'established');
});

t.test('hard limit: a CHILD_SA whose rekey never gets through is deleted at its lifetime', async (t) => {
  const c = conn('t1', { esp: { proposals: ['aes256gcm16'], lifetime: 10 } });
  const p = await lifetimePair(c, mirror(c, { esp: { proposals: ['aes256gcm16'], lifetime: 3600 } }));
  t.teardown(p.stop);
  p.net.drop = (s) => s.exchange === ExchangeType.CREATE_CHILD_SA;
  await until(() => p.a.ups.length === 1 && p.b.ups.length === 1);
  const first = only(p.a);
  const t0 = p.a.ups[0]!.at;
  await until(() => p.a.downs.length >= 1, 3000);
  const d = p.a.downs[0]!;
  t.equal(d.ev.spiIn, first.spiIn);
  t.equal(d.ev.reason, 'CHILD_SA lifetime expired');
  const age = d.at - t0;
  t.ok(age >= 10 * UNIT - 5 && age < 10 * UNIT + 100, `deleted at the hard limit (${age} ms)`);
  t.notOk(p.a.dp.sas.has(first.spiIn), 'out of the data plane');
  // The last CHILD_SA gone, the IKE SA goes too and A, the initiator, starts over. (Its DELETE
  // queues behind the lost CREATE_CHILD_SA, whose message ID B never saw, so B keeps its stale
  // copy until its own limits or DPD: a lost request breaks the IKE SA, RFC 7296 §2.4.)
  p.net.drop = () => false;
  await until(() => p.a.ups.length >= 2 && p.a.dp.sas.size === 1, 3000);
  const fresh = only(p.a);
  t.not(fresh.spiIn, first.spiIn, 'a new CHILD_SA after re-initiation');
  const peer = p.b.dp.sas.get(fresh.spiOut);
  t.ok(peer, 'B holds the new CHILD_SA');
  if (peer) mirrored(t, fresh, peer);
  await until(
    () => p.a.states.some((s) => s.to === 'down' && s.reason === 'CHILD_SA lifetime expired'),
    3000,
  );
  t.equal(p.a.daemon.ike!.sasOf('t1').length, 1, 'A holds only the new IKE SA');
});

t.test(
  'esp.rekeyTime sets the soft limit: twinsec rekeys at rekeyTime minus jitter, not at 80-90%',
  async (t) => {
    // Lifetime 20 s (600 ms), rekeyTime 6 s (180 ms): the first rekey comes after 162-180 ms.
    const c = conn('t1', { esp: { proposals: ['aes256gcm16'], lifetime: 20, rekeyTime: 6 } });
    const p = await lifetimePair(c, mirror(c, { esp: { proposals: ['aes256gcm16'], lifetime: 100 } }));
    t.teardown(p.stop);
    await until(() => p.a.ups.length >= 2, 3000);
    const gap = p.a.ups[1]!.at - p.a.ups[0]!.at;
    t.ok(
      gap >= 6 * UNIT * 0.9 - 10 && gap < 20 * UNIT * 0.8,
      `first rekey ${gap} ms after the CHILD_SA came up`,
    );
  },
);
