/**
 * Hostile and garbled IKEv1 input against two established daemons: every message of a real main
 * mode, quick mode and informational exchange, mutated thousands of ways (bit flips, truncation,
 * length fields, message IDs, trailing bytes), is dropped and counted; nothing throws, the SAs stay,
 * and the CBC IV chains stay in step (RFC 2409 App. B), shown by a quick mode afterwards and by a
 * garbled copy of a quick-mode answer that arrives just before the real one.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { ExchangeTypeV1 } from '../../src/ike/wire/v1/constants.js';
import type { Sent } from './fake-network.js';
import { conn, mirror, pair, type Side, state, until } from './pair.js';

const QM = ExchangeTypeV1.QUICK;

const v1: ConnectionConfig = conn('t1', {
  version: 1,
  mode: 'main',
  ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
  esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
});

/** A deterministic generator, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function mutate(d: Buffer, r: () => number): Buffer {
  const x = Buffer.from(d);
  const at = (n: number) => Math.floor(r() * n);
  switch (at(6)) {
    case 0: // flip bits anywhere after the cookies (they only route the message)
      for (let i = 0, n = 1 + at(4); i < n; i++) x[16 + at(x.length - 16)]! ^= 1 << at(8);
      return x;
    case 1: // truncated
      return x.subarray(0, at(x.length));
    case 2: // a header length that lies
      x.writeUInt32BE(at(2 * x.length + 64), 24);
      return x;
    case 3: // another message ID (a made-up exchange under the real cookies)
      x.writeUInt32BE(Math.floor(r() * 0xffff_ffff), 20);
      return x;
    case 4: // a payload length inside (first generic header, clear messages) or ciphertext garbage
      x.writeUInt16BE(at(0x10000), 30);
      return x;
    default: // trailing bytes
      return Buffer.concat([x, Buffer.alloc(1 + at(40), at(256))]);
  }
}

const children = (s: Side) => [...s.dp.sas.keys()].sort();
const dropped = (s: Side) => Object.values(s.daemon.status().drops.ike).reduce((a, b) => a + b, 0);

async function rekeyFrom(s: Side): Promise<void> {
  // Mutated first messages under the real initiator cookie open half-open SAs beside it.
  const view = s.daemon.ike!.sasOf('t1').find((v) => v.phase === 'established')!;
  const spi = view.children[0]!.spiIn;
  await new Promise<void>((resolve, reject) => {
    if (!s.daemon.ike!.rekeyChild(view, spi, (err) => (err ? reject(err) : resolve())))
      reject(new Error('refused'));
  });
}

t.test('thousands of mutated copies of real messages: dropped and counted, nothing moves', async (t) => {
  const p = await pair([v1], [mirror(v1)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  await rekeyFrom(p.a); // a second quick mode and an informational DELETE in the log
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const real: Sent[] = [...p.net.log];
  const before = { a: children(p.a), b: children(p.b), da: dropped(p.a), db: dropped(p.b) };
  const r = prng(0x7715ec);
  let sent = 0;
  for (let round = 0; round < 100; round++) {
    for (const s of real) {
      p.net.deliver(s.from, s.to, mutate(s.data, r));
      sent++;
    }
    await new Promise((res) => setImmediate(res));
  }
  await new Promise((res) => setTimeout(res, 200));
  t.ok(sent > 1000, `${sent} mutated datagrams`);
  t.equal(state(p.a, 't1'), 'established');
  t.equal(state(p.b, 't1'), 'established');
  t.same(children(p.a), before.a, 'A keeps its IPsec SA');
  t.same(children(p.b), before.b, 'B keeps its IPsec SA');
  const established = (s: Side) => s.daemon.ike!.sasOf('t1').filter((v) => v.phase === 'established').length;
  t.equal(established(p.a), 1, 'one ISAKMP SA established on A');
  t.equal(established(p.b), 1, 'one ISAKMP SA established on B');
  t.ok(dropped(p.a) + dropped(p.b) - before.da - before.db > 0, 'drops counted');
  // The chains are intact: a quick mode each way still completes.
  for (const side of [p.a, p.b]) {
    await rekeyFrom(side);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  }
  const [x] = [...p.a.dp.sas.values()];
  const [y] = [...p.b.dp.sas.values()];
  t.equal(x!.spiIn, y!.spiOut, 'a fresh mirrored pair');
});

t.test('a garbled copy of the quick-mode answer just before the real one: the chain holds', async (t) => {
  const p = await pair([v1], [mirror(v1)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  let garbled = 0;
  const prev = p.net.drop;
  p.net.drop = (s) => {
    // B's QM2 of the rekey (the first QM message from B): a garbled copy goes first, same header.
    if (s.exchange === QM && s.from.address === p.b.daemon.config.connections.t1!.local && garbled === 0) {
      garbled++;
      const bad = Buffer.from(s.data);
      for (let i = 28; i < bad.length; i++) bad[i] = bad[i]! ^ 0x5a;
      p.net.deliver(s.from, s.to, bad);
      setImmediate(() => p.net.deliver(s.from, s.to, s.data));
      return true;
    }
    return prev(s);
  };
  const spiBefore = [...p.a.dp.sas.keys()][0];
  await rekeyFrom(p.a);
  t.equal(garbled, 1, 'the garbled copy went first');
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && !p.a.dp.sas.has(spiBefore!));
  t.same(p.a.failures, [], 'the rekey did not fail');
});

t.test('every message duplicated and the copy late: each negotiation comes up, nothing fails', async (t) => {
  const r = prng(0xd0b1e);
  for (let i = 0; i < 8; i++) {
    const p = await pair([v1], [mirror(v1)]);
    // The copy arrives 1-80 ms later: after the answer to it, often after the next message.
    const copies = new WeakSet<Buffer>();
    p.net.drop = (s) => {
      if (!copies.has(s.data)) {
        const copy = Buffer.from(s.data);
        copies.add(copy);
        setTimeout(() => p.net.deliver(s.from, s.to, copy), 1 + Math.floor(r() * 80));
      }
      return false;
    };
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 5000);
    await new Promise((res) => setTimeout(res, 150));
    t.same([...p.a.failures, ...p.b.failures], [], `round ${i}: no failure on either side`);
    t.equal(p.a.dp.sas.size + p.b.dp.sas.size, 2, `round ${i}: one pair`);
    await p.stop();
  }
});
