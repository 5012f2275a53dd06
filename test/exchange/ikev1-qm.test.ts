/**
 * IKEv1 quick mode details between two daemons over the fake network: negotiated lifetimes
 * (RFC 2407 §4.5, RESPONDER-LIFETIME §4.6.3.1) on a fake clock, a peer that sets the commit bit
 * (RFC 2408 §3.1) and follows with CONNECTED, and quick modes of both sides in flight at once.
 */
import t, { type Test } from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { v1InfoHash } from '../../src/ike/crypto/v1-keys.js';
import type { IkeSaV1 } from '../../src/ike/v1/ike-sa.js';
import {
  ExchangeTypeV1,
  NotifyTypeV1,
  PayloadTypeV1,
  ProtocolIdV1,
} from '../../src/ike/wire/v1/constants.js';
import { encodePayloadsV1 } from '../../src/ike/wire/v1/payloads.js';
import type { PayloadV1 } from '../../src/ike/wire/v1/types.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { A, B, conn, mirror, pair, type Side, stopOnFakeClock, until } from './pair.js';

type Pair = Awaited<ReturnType<typeof pair>>;
const QM = ExchangeTypeV1.QUICK;

const v1 = (esp: Partial<ConnectionConfig['esp']>): ConnectionConfig =>
  conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
    esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600, ...esp },
  });

/** The first message of each new quick mode: who sent it and when (ms after `since`). */
function qmStarts(p: Pair, clock: FakeClock, since: number): { from: string; at: number }[] {
  const seen = new Set<number>();
  const out: { from: string; at: number }[] = [];
  const prev = p.net.drop;
  p.net.drop = (s) => {
    const mid = s.data.length >= 28 ? s.data.readUInt32BE(20) : 0;
    if (s.exchange === QM && !seen.has(mid)) {
      seen.add(mid);
      out.push({ from: s.from.address === A ? 'A' : 'B', at: clock.now() - since });
    }
    return prev(s);
  };
  return out;
}

async function lifetimeCase(
  t: Test,
  o: {
    a: Partial<ConnectionConfig['esp']>;
    b: Partial<ConnectionConfig['esp']>;
    rekeyer: string;
    at: number;
  },
): Promise<void> {
  const clock = new FakeClock();
  const c = v1(o.a);
  const p = await pair([c], [mirror(c, { esp: { ...c.esp, ...o.b } })], {
    clock,
    random: fixedJitter(0),
    timing: { retransmitBase: 1000, retransmitFactor: 2, retransmitTries: 3 },
  });
  t.teardown(() => stopOnFakeClock(clock, p));
  await clock.until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 1000, 1);
  const starts = qmStarts(p, clock, clock.now());
  await clock.advance(o.at - 1);
  t.same(starts, [], 'no rekey before 80 % of the shorter lifetime');
  await clock.advance(1);
  t.same(starts, [{ from: o.rekeyer, at: o.at }], `${o.rekeyer} rekeys at 80 % of the shorter lifetime`);
  await clock.until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 5000, 10);
  t.same(p.a.failures, []);
  t.same(p.b.failures, []);
}

t.test('RESPONDER-LIFETIME: the initiator keeps the SA no longer than the responder', (t) =>
  // A offers 3600 s; B keeps 600 s and says so; A's soft limit is then 480 s. B's own rekeyTime
  // 590 s keeps it from rekeying first, so the rekey at 480 s can only be A's.
  lifetimeCase(t, { a: { lifetime: 3600 }, b: { lifetime: 600, rekeyTime: 590 }, rekeyer: 'A', at: 480_000 }),
);

t.test('a shorter offer is the lifetime of the responder too; the offering peer rekeys it first', (t) =>
  // A offers 600 s; B configured 3600 s keeps 600 s. The offer was A's, so B leaves the rekey to
  // A and its own soft limit waits until 95 % (570 s with jitter 0). A's rekeyTime 700 s does not
  // fit in 600 s: A falls back to 80 % (480 s) and rekeys first.
  lifetimeCase(t, {
    a: { lifetime: 600, rekeyTime: 700 },
    b: { lifetime: 3600, rekeyTime: undefined },
    rekeyer: 'A',
    at: 480_000,
  }),
);

t.test('... and if the offering peer does not, the responder rekeys at 95 %', (t) =>
  // A's rekeyTime 590 s puts its soft limit after B's 570 s.
  lifetimeCase(t, {
    a: { lifetime: 600, rekeyTime: 590 },
    b: { lifetime: 3600, rekeyTime: undefined },
    rekeyer: 'B',
    at: 570_000,
  }),
);

/** Sends N(CONNECTED) under exchange `mid` as a commit-bit peer does after its quick mode. */
function sendConnected(s: Side, mid: number): void {
  const view = s.daemon.ike!.sasOf('t1')[0]!;
  const sa = s.daemon.ike!.table.get(view.initiator ? view.spiI : view.spiR) as IkeSaV1;
  const n: PayloadV1 = {
    type: PayloadTypeV1.N,
    doi: 1,
    protocolId: ProtocolIdV1.IPSEC_ESP,
    spi: Buffer.alloc(4),
    notifyType: NotifyTypeV1.CONNECTED,
    data: Buffer.alloc(0),
  } as PayloadV1;
  const hash = v1InfoHash(sa.prf!, sa.keys!.skeyidA, mid, encodePayloadsV1([n]).bytes);
  s.transport.send(
    sa.local,
    sa.remote,
    sa.encode(QM, mid, [{ type: PayloadTypeV1.HASH, data: hash } as PayloadV1, n], true),
  );
}

t.test('commit bit set on every message, then CONNECTED: tolerated, the pair is up', async (t) => {
  const c = v1({});
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  // Header flags byte (RFC 2408 §3.1): the commit bit, 0x02, on everything the responder sends.
  p.net.rewrite = (d) => {
    if (d.length < 28) return d;
    const x = Buffer.from(d);
    if (x.readUInt32BE(20) !== 0 || x[18] === QM) x[19] = x[19]! | 0x02;
    return x;
  };
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const qm = p.net.log.find((s) => s.exchange === QM)!;
  const mid = qm.data.readUInt32BE(20);
  // B installs at its answer already (activate false); its IV chain moves on with HASH(3).
  const bView = p.b.daemon.ike!.sasOf('t1')[0]!;
  const bSa = p.b.daemon.ike!.table.get(bView.spiR) as IkeSaV1;
  await until(() => !bSa.quickModes.has(mid));
  const dropsBefore = JSON.stringify(p.a.daemon.status().drops.ike);
  const why: string[] = [];
  p.a.daemon.bus.on('ike-dropped', (e) => why.push(`${e.reason}: ${e.detail}`));
  sendConnected(p.b, mid);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(
    JSON.stringify(p.a.daemon.status().drops.ike),
    dropsBefore,
    `CONNECTED taken, not dropped ${why.join('; ')}`,
  );
  const [x] = [...p.a.dp.sas.values()];
  const [y] = [...p.b.dp.sas.values()];
  t.equal(x!.spiIn, y!.spiOut);
  t.equal(x!.spiOut, y!.spiIn);
  t.same(p.a.failures, []);
  t.same(p.b.failures, []);
  t.ok(B);
});

t.test('both sides rekey the same pair at once: two quick modes in flight each way', async (t) => {
  const c = v1({});
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  // The responder installs at its answer already: wait for HASH(3) to reach it (no exchange in flight).
  const sa = (s: Side) => s.daemon.ike!.table.get(s.daemon.ike!.sasOf('t1')[0]!.spiR) as IkeSaV1;
  await until(() => sa(p.b).quickModes.size === 0);
  const [old] = [...p.a.dp.sas.keys()];
  const done: Promise<void>[] = [];
  for (const side of [p.a, p.b]) {
    const view = side.daemon.ike!.sasOf('t1')[0]!;
    const spi = [...side.dp.sas.keys()][0]!;
    done.push(
      new Promise<void>((resolve, reject) => {
        if (!side.daemon.ike!.rekeyChild(view, spi, (err) => (err ? reject(err) : resolve())))
          reject(new Error('refused'));
      }),
    );
  }
  await Promise.all(done);
  const mids = new Set(p.net.log.filter((s) => s.exchange === QM).map((s) => s.data.readUInt32BE(20)));
  t.equal(mids.size, 3, 'the first quick mode and one rekey of each side');
  // The old pair goes 1 s after each rekey, the redundant new one 1 s after the collision shows.
  await until(() => !p.a.dp.sas.has(old!) && !p.b.dp.sas.has(old!), 3000);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 3000).catch(() => {});
  // Every pair left on one side is mirrored on the other (no half-installed SA).
  const outs = (s: Side) => [...s.dp.sas.values()].map((x) => `${x.spiIn}/${x.spiOut}`).sort();
  const mirroredA = [...p.b.dp.sas.values()].map((x) => `${x.spiOut}/${x.spiIn}`).sort();
  t.same(outs(p.a), mirroredA, 'the same pairs on both sides');
  t.equal(p.a.dp.sas.size, 1, 'the redundant pair of the collision went');
  t.same(p.a.failures, []);
  t.same(p.b.failures, []);
});
