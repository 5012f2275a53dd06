/**
 * CHILD_SA volume limits (esp.lifePackets / lifeBytes; without ESN the 32-bit sequence space, RFC
 * 4303 §3.3.3): the data plane counts (MemoryDataPlane.traffic stands in for the engine), reports
 * the soft mark once, and the IKE core rekeys the CHILD_SA then (RFC 7296 §2.8), long before its
 * soft lifetime; at the hard limit the pair goes. IKEv2 and IKEv1.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { SEQ_LAST_32, SEQ_SOFT_32 } from '../../src/dataplane/types.js';
import { conn, mirror, pair, type Side, state, until } from './pair.js';

type Pair = Awaited<ReturnType<typeof pair>>;

const v2 = (esp: Partial<ConnectionConfig['esp']>): ConnectionConfig =>
  conn('t1', { esp: { proposals: ['aes256gcm16'], lifetime: 3600, ...esp } });
const v1 = (esp: Partial<ConnectionConfig['esp']>): ConnectionConfig =>
  conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
    esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600, ...esp },
  });

const onlySpi = (s: Side): number => {
  if (s.dp.sas.size !== 1) throw new Error(`expected one SA, have ${s.dp.sas.size}`);
  return [...s.dp.sas.keys()][0]!;
};

async function established(c: ConnectionConfig): Promise<Pair> {
  const p = await pair([c], [mirror(c)]);
  await until(
    () =>
      state(p.a, 't1') === 'established' &&
      state(p.b, 't1') === 'established' &&
      p.a.dp.sas.size === 1 &&
      p.b.dp.sas.size === 1 &&
      // IKEv1: the responder installs before HASH(3) and reports child-up after it.
      childUps(p) === 2,
  );
  return p;
}

/** Both sides hold exactly one pair again, and `side`'s is not `old`. */
const replaced =
  (p: Pair, old: number, side: 'a' | 'b' = 'a') =>
  (): boolean =>
    p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && !p[side].dp.sas.has(old);

const settle = () => new Promise((r) => setTimeout(r, 100));
/** CHILD_SAs that came up on either side so far (a rekey adds one on each). */
const childUps = (p: Pair): number =>
  [...p.a.events, ...p.b.events].filter((e) => e.name === 'child-up').length;

for (const [version, make] of [
  [2, v2],
  [1, v1],
] as const) {
  t.test(`IKEv${version}: crossing the soft packet mark rekeys the CHILD_SA at once`, async (t) => {
    const p = await established(make({ lifePackets: 10_000 }));
    t.teardown(p.stop);
    const spiIn = onlySpi(p.a);
    t.same(p.a.dp.sas.get(spiIn)!.limits, { softPackets: 9000, hardPackets: 10_000 }, 'limits handed down');
    const ups = childUps(p);

    t.equal(p.a.dp.traffic(spiIn, 'out', 8999), 8999);
    await settle();
    t.equal(childUps(p), ups, 'below the soft mark: no exchange');
    t.ok(p.a.dp.sas.has(spiIn), 'the pair stays');

    t.equal(p.a.dp.traffic(spiIn, 'out', 1), 1, 'the 9000th packet crosses the mark');
    await until(replaced(p, spiIn));
    const fresh = onlySpi(p.a);
    t.not(fresh, spiIn, 'a new pair replaced the old one');
    t.same(p.a.dp.counters(fresh), { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 });
    t.equal(p.b.dp.sas.get(onlySpi(p.b))!.spiOut, fresh, 'the peer has the mirror pair');
    t.equal(state(p.a, 't1'), 'established', 'the IKE SA stays');
    t.same(p.a.failures, []);
    t.same(p.b.failures, []);
  });

  t.test(`IKEv${version}: the inbound byte mark (halfway to the limit) rekeys too`, async (t) => {
    const p = await established(make({ lifeBytes: 10_000_000 }));
    t.teardown(p.stop);
    const spiIn = onlySpi(p.b);
    t.same(p.b.dp.sas.get(spiIn)!.limits, { softBytes: 9_000_000, hardBytes: 10_000_000 });
    const ups = childUps(p);
    t.equal(p.b.dp.traffic(spiIn, 'in', 9000, 9_000_000), 9000);
    await settle();
    t.equal(childUps(p), ups, "inbound at 90 %: the peer's turn, no exchange");
    t.equal(p.b.dp.traffic(spiIn, 'in', 500, 500_000), 500);
    await until(replaced(p, spiIn, 'b'));
    t.equal(state(p.b, 't1'), 'established');
    t.same(p.a.failures, []);
    t.same(p.b.failures, []);
  });
}

t.test('no limit configured, no ESN: the rekey comes at 90 % of the sequence space', async (t) => {
  const p = await established(v2({}));
  t.teardown(p.stop);
  const spiIn = onlySpi(p.a);
  t.equal(p.a.dp.sas.get(spiIn)!.esn, false);
  t.equal(p.a.dp.sas.get(spiIn)!.limits, undefined, 'nothing configured');
  const ups = childUps(p);
  p.a.dp.traffic(spiIn, 'out', SEQ_SOFT_32 - 1);
  await settle();
  t.equal(childUps(p), ups, 'no exchange yet');
  p.a.dp.traffic(spiIn, 'out', 1);
  await until(replaced(p, spiIn));
  t.same(p.a.failures, []);
});

t.test('no ESN: the sequence number never wraps; the used-up pair goes', async (t) => {
  const p = await established(v2({}));
  t.teardown(p.stop);
  const spiIn = onlySpi(p.a);
  t.equal(p.a.dp.traffic(spiIn, 'out', SEQ_LAST_32 + 5), SEQ_LAST_32, 'up to 2^32 - 1 packets go');
  t.equal(p.a.dp.drops().seqExhausted, 5, 'the rest is dropped and counted');
  t.equal(p.a.dp.traffic(spiIn, 'out', 1), 0, 'nothing more goes');
  // The hard report takes the pair (the IKE SA's only one) down; A negotiates again.
  await until(() => !p.a.dp.sas.has(spiIn) && p.a.dp.sas.size === 1 && state(p.a, 't1') === 'established');
  t.not(onlySpi(p.a), spiIn);
});

t.test('a configured hard limit drops beyond it and the pair goes', async (t) => {
  const p = await established(v2({ lifePackets: 1000 }));
  t.teardown(p.stop);
  const spiIn = onlySpi(p.a);
  t.equal(p.a.dp.traffic(spiIn, 'out', 1200), 1000);
  t.equal(p.a.dp.drops().expired, 200);
  await until(() => !p.a.dp.sas.has(spiIn) && p.a.dp.sas.size === 1 && state(p.a, 't1') === 'established');
});
