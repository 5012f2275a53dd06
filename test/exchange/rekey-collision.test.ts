/**
 * Simultaneous CHILD_SA rekeys (RFC 7296 §2.8.1) and a lost CREATE_CHILD_SA response between two
 * in-process daemons: whatever the nonces, each side ends with one mirrored CHILD_SA.
 */
import t, { type Test } from 'tap';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { conn, internal, mirror, pair, type Side, state, until } from './pair.js';

function mirrored(t: Test, x: ChildSaSpec, y: ChildSaSpec): void {
  t.equal(x.spiIn, y.spiOut, 'SPIs mirror');
  t.equal(x.spiOut, y.spiIn, 'SPIs mirror');
  t.same(x.encrKeyOut, y.encrKeyIn, 'encryption keys mirror');
  t.same(x.encrKeyIn, y.encrKeyOut, 'encryption keys mirror');
  t.same(x.integKeyOut, y.integKeyIn, 'integrity keys mirror');
  t.same(x.integKeyIn, y.integKeyOut, 'integrity keys mirror');
}

const only = (s: Side): ChildSaSpec => {
  if (s.dp.sas.size !== 1) throw new Error(`expected one SA, have ${s.dp.sas.size}`);
  return [...s.dp.sas.values()][0]!;
};
const ikeSa = (s: Side) => internal(s, 't1');

async function established() {
  const c = conn('t1', { esp: { proposals: ['aes128-sha256'], lifetime: 600 } });
  const p = await pair([c], [mirror(c)]);
  await until(
    () =>
      state(p.a, 't1') === 'established' &&
      state(p.b, 't1') === 'established' &&
      p.a.dp.sas.size === 1 &&
      p.b.dp.sas.size === 1,
  );
  return { p, setup: p.net.log.length };
}

function rekey(s: Side, spiIn: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!s.daemon.ike!.rekeyChild(ikeSa(s), spiIn, (err) => (err ? reject(err) : resolve())))
      reject(new Error('rekeyChild refused'));
  });
}

/** Requests of exchange `ex` since `from`; a retransmission (the same bytes again, under load) counts once. */
const count = (
  p: { net: { log: { exchange: number; response: boolean; data: Buffer }[] } },
  from: number,
  ex: number,
) =>
  new Set(
    p.net.log
      .slice(from)
      .filter((s) => s.exchange === ex && !s.response)
      .map((s) => s.data.toString('hex')),
  ).size;

t.test('simultaneous CHILD_SA rekey: one mirrored pair left on each side (10 fresh pairs)', async (t) => {
  const reasons = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const { p, setup } = await established();
    try {
      const downs: string[] = [];
      p.a.daemon.bus.on('child-down', (e) => downs.push(`a ${e.reason}`));
      p.b.daemon.bus.on('child-down', (e) => downs.push(`b ${e.reason}`));
      const oldA = only(p.a);
      const oldB = only(p.b);
      // The same CHILD_SA, from both ends, in the same tick.
      await Promise.all([rekey(p.a, oldA.spiIn), rekey(p.b, oldB.spiIn)]);
      await until(
        () =>
          p.a.dp.sas.size === 1 &&
          p.b.dp.sas.size === 1 &&
          ikeSa(p.a).children.length === 1 &&
          ikeSa(p.b).children.length === 1 &&
          !ikeSa(p.a).busy &&
          !ikeSa(p.b).busy,
      );
      const x = only(p.a);
      const y = only(p.b);
      mirrored(t, x, y);
      t.not(x.spiIn, oldA.spiIn, 'a new pair on A');
      t.not(y.spiIn, oldB.spiIn, 'a new pair on B');
      t.equal(ikeSa(p.a).children[0]!.spiIn, x.spiIn, 'A: the IKE SA knows the surviving pair');
      t.equal(ikeSa(p.b).children[0]!.spiIn, y.spiIn, 'B: the IKE SA knows the surviving pair');
      t.equal(count(p, setup, ExchangeType.CREATE_CHILD_SA), 2, 'two CREATE_CHILD_SA exchanges');
      // Each side DELETEs the old pair; the loser DELETEs its redundant new pair as well.
      t.equal(count(p, setup, ExchangeType.INFORMATIONAL), 3, 'three DELETE exchanges');
      t.equal(downs.filter((d) => d.endsWith('rekey collision')).length, 1, 'one collision loser');
      // Per side: the old pair once, and the redundant new pair once.
      t.equal(downs.filter((d) => d.startsWith('a ')).length, 2, 'A took down two pairs');
      t.equal(downs.filter((d) => d.startsWith('b ')).length, 2, 'B took down two pairs');
      t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
      for (const d of downs) if (d.endsWith('rekey collision')) reasons.add(d[0]!);
    } finally {
      await p.stop();
    }
  }
  t.comment(`collision losers seen: ${[...reasons].join(', ')}`);
});

t.test('a lost rekey response: retransmitted request answered from the cache', async (t) => {
  const { p, setup } = await established();
  // The SA timers are unref'd: keep the process alive through the retransmission wait.
  const alive = setInterval(() => {}, 1000);
  t.teardown(async () => {
    clearInterval(alive);
    await p.stop();
  });
  const old = only(p.a);
  let dropped = 0;
  p.net.drop = (s) => s.exchange === ExchangeType.CREATE_CHILD_SA && s.response && dropped++ === 0;
  await rekey(p.a, old.spiIn);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && !ikeSa(p.a).busy);
  const ccs = p.net.log.slice(setup).filter((s) => s.exchange === ExchangeType.CREATE_CHILD_SA);
  const requests = ccs.filter((s) => !s.response);
  const responses = ccs.filter((s) => s.response);
  t.equal(requests.length, 2, 'the request went out twice');
  t.same(requests[1]!.data, requests[0]!.data, 'retransmitted request is byte-identical');
  t.equal(responses.length, 2, 'answered twice');
  t.same(responses[1]!.data, responses[0]!.data, 'second answer is the cached one, byte-identical');
  mirrored(t, only(p.a), only(p.b));
  t.not(only(p.a).spiIn, old.spiIn, 'a new pair');
  t.equal(ikeSa(p.a).children.length, 1);
  t.equal(ikeSa(p.b).children.length, 1);
  t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
});

function rekeyIke(s: Side): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!s.daemon.ike!.rekeyIke(ikeSa(s), (err) => (err ? reject(err) : resolve())))
      reject(new Error('rekeyIke refused'));
  });
}

t.test('simultaneous IKE SA rekey: one surviving IKE SA holds the CHILD_SA (10 fresh pairs)', async (t) => {
  for (let i = 0; i < 10; i++) {
    const { p, setup } = await established();
    try {
      let downs = 0;
      p.a.daemon.bus.on('child-down', () => downs++);
      p.b.daemon.bus.on('child-down', () => downs++);
      const before = only(p.a);
      const oldA = ikeSa(p.a);
      const oldB = ikeSa(p.b);
      await Promise.all([rekeyIke(p.a), rekeyIke(p.b)]);
      const live = (s: Side) => s.daemon.ike!.sasOf('t1').filter((x) => x.phase !== 'dead');
      await until(() => live(p.a).length === 1 && live(p.b).length === 1 && !ikeSa(p.a).busy);
      const x = ikeSa(p.a);
      const y = ikeSa(p.b);
      t.not(x, oldA, 'A: a new IKE SA');
      t.not(y, oldB, 'B: a new IKE SA');
      t.equal(x.phase, 'established');
      t.equal(y.phase, 'established');
      t.same([x.spiI, x.spiR], [y.spiI, y.spiR], 'both sides kept the same IKE SA');
      t.equal(x.children.length, 1, 'A: the CHILD_SA moved to the survivor');
      t.equal(y.children.length, 1, 'B: the CHILD_SA moved to the survivor');
      t.equal(downs, 0, 'no CHILD_SA went down');
      t.equal(only(p.a).spiIn, before.spiIn, 'the traffic SA stayed');
      t.equal(count(p, setup, ExchangeType.CREATE_CHILD_SA), 2, 'two CREATE_CHILD_SA exchanges');
      t.equal(count(p, setup, ExchangeType.INFORMATIONAL), 3, 'two DELETEs of the old, one of the loser');
      // The survivor works: a CHILD_SA rekey over it.
      await rekey(p.b, only(p.b).spiIn);
      await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
      mirrored(t, only(p.a), only(p.b));
      t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
    } finally {
      await p.stop();
    }
  }
});
