/**
 * IKEv1 aggressive mode with PSK (RFC 2409 §5.4) between two in-process daemons: three phase 1
 * messages then the unchanged quick mode; the responder's PSK chosen by the initiator's ID; a
 * wrong PSK; FQDN, USER_FQDN and KEY_ID identities; a peer that speaks only a NAT-T draft.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { p2Offer } from '../../src/ike/v1/p2-proposal.js';
import { VID_NATT } from '../../src/ike/v1/phase1.js';
import { EncapsulationMode, PayloadTypeV1 } from '../../src/ike/wire/v1/constants.js';
import { decodeMessageV1 } from '../../src/ike/wire/v1/message.js';
import { FakeNetwork } from './fake-network.js';
import { A, B, conn, mirror, pair, state, until } from './pair.js';

const agg = (over: Partial<ConnectionConfig> = {}): ConnectionConfig =>
  conn('t1', {
    version: 1,
    mode: 'aggressive',
    ike: { proposals: ['aes128-sha1-modp1024', 'aes256-sha256-modp1024'], lifetime: 3600 },
    esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1200 },
    ...over,
  });

/** Exchange type and sender of each distinct datagram (retransmissions left out). */
function exchanges(net: FakeNetwork): string[] {
  const seen = new Set<string>();
  return net.log
    .filter((x) => !seen.has(x.data.toString('hex')) && seen.add(x.data.toString('hex')))
    .map((x) => `${x.exchange} ${x.from.address === A ? 'A' : 'B'}`);
}

const IDS = [
  { kind: 'FQDN', a: '@gw-a.example.net', b: '@gw-b.example.net' },
  { kind: 'USER_FQDN', a: 'alice@example.net', b: 'bob@example.net' },
  { kind: 'KEY_ID', a: '@#0a0b0c0d', b: '@#deadbeef' },
  { kind: 'IPv4 address', a: A, b: B },
];

for (const id of IDS) {
  t.test(`aggressive mode + quick mode with ${id.kind} IDs`, async (t) => {
    const c = agg({ localId: id.a, remoteId: id.b });
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    t.equal(state(p.a, 't1'), 'established');
    t.equal(state(p.b, 't1'), 'established');
    t.same(
      exchanges(p.net),
      ['4 A', '4 B', '4 A', '32 A', '32 B', '32 A'],
      'aggressive mode 3 messages, quick mode 3',
    );
    const fromA = p.net.log
      .filter((x) => x.exchange === 4 && x.from.address === A)
      .map((x) => x.data[19]! & 1);
    t.same(
      [...new Set(fromA)],
      [0, 1],
      'the first message clear, the third encrypted (as strongSwan sends it)',
    );
    const [x] = [...p.a.dp.sas.values()];
    const [y] = [...p.b.dp.sas.values()];
    t.equal(x!.spiIn, y!.spiOut);
    t.same(x!.encrKeyOut, y!.encrKeyIn, 'keys mirror');
    t.same(p.a.failures, []);
    t.same(p.b.failures, []);
  });
}

t.test('with a NAT (faked by encapsulation: udp) the third message and ESP go by port 4500', async (t) => {
  const c = agg({ encapsulation: 'udp' });
  const p = await pair([c], [mirror(c, { encapsulation: 'auto' })]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const fromA = p.net.log.filter((x) => x.exchange === 4 && x.from.address === A);
  t.same(
    [...new Set(fromA.map((x) => `${x.from.port}>${x.to.port} ${x.data[19]! & 1}`))],
    ['500>500 0', '4500>4500 1'],
  );
  const [y] = [...p.b.dp.sas.values()];
  t.equal(y!.encapsulation, 'udp');
  t.same(y!.remote, { address: A, port: 4500 }, "B's ESP goes to A's port 4500");
  t.same(p.b.failures, []);
});

t.test('the responder picks the connection, and so the PSK, by the initiator ID', async (t) => {
  const one = agg({ localId: '@a1.example', remoteId: '@b.example', psk: Buffer.from('first key') });
  const two = agg({ localId: '@a2.example', remoteId: '@b.example', psk: Buffer.from('second key') });
  const b1 = mirror(one, { name: 't1' });
  const b2 = mirror(two, { name: 't2' });
  const p = await pair([two], [b1, b2]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  t.equal(state(p.b, 't2'), 'established', 'the second connection, by IDii');
  t.not(state(p.b, 't1'), 'established');
  t.same(p.b.failures, []);
});

t.test('wrong PSK: HASH_R fails on the initiator, counted; the responder gives up; no SAs', async (t) => {
  const c = agg({ localId: '@gw-a.example.net', remoteId: '@gw-b.example.net' });
  const p = await pair([c], [mirror(c, { psk: Buffer.from('another secret entirely') })]);
  t.teardown(p.stop);
  await until(() => p.a.failures.some((f) => f.reason === 'auth_failed'));
  t.match(p.a.failures[0]!.detail, /HASH_R of 'gw-b.example.net' does not verify/);
  t.equal(p.a.daemon.ike!.dropped.get('auth_failed'), 1, 'counted as a drop');
  // The initiator sends no third message: the responder retransmits its answer, then gives up.
  await until(() => p.b.failures.some((f) => f.reason === 'timeout'));
  t.match(p.b.failures[0]!.detail, /no answer in aggressive mode/);
  t.equal(p.a.dp.sas.size + p.b.dp.sas.size, 0);
  t.not(state(p.a, 't1'), 'established');
  t.not(state(p.b, 't1'), 'established');
  t.notMatch(JSON.stringify(p.a.failures), /secret|correct horse/, 'no key in the failure');
});

t.test('a main mode connection does not answer aggressive mode', async (t) => {
  const c = agg();
  const p = await pair([c], [mirror(c, { mode: 'main' })], { timing: { retransmitTries: 1 } });
  t.teardown(p.stop);
  await until(() => (p.b.daemon.ike!.dropped.get('no_connection') ?? 0) > 0);
  await until(() => p.a.failures.some((f) => f.reason === 'timeout'));
  t.equal(p.a.dp.sas.size + p.b.dp.sas.size, 0);
});

t.test('a phase 1 message after establishment, even of the other mode, is dropped and counted', async (t) => {
  const c = agg();
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const drops = () => [...p.b.daemon.ike!.dropped.values()].reduce((x, y) => x + y, 0);
  const before = drops();
  const third = p.net.log.find((x) => x.exchange === 4 && x.from.address === A && (x.data[19]! & 1) === 1)!;
  for (const exchange of [4, 2]) {
    const m = Buffer.from(third.data);
    m[18] = exchange;
    m[m.length - 1]! ^= 0x55;
    p.a.transport.send(third.from, third.to, m);
  }
  await until(() => drops() >= before + 2);
  t.equal(state(p.b, 't1'), 'established');
  t.same(p.b.failures, []);
});

/**
 * A peer that knows only the drafts: the initiator's RFC 3947 vendor ID is blanked on the wire,
 * so the responder sees only draft-ietf-ipsec-nat-t-ike-02\n and both sides must use NAT-D
 * payload type 130 instead of 20 (RFC 3947 replaced the drafts' private numbers).
 */
function draftOnly(): FakeNetwork {
  const net = new FakeNetwork();
  net.drop = (s) => {
    const at = s.from.address === A ? s.data.indexOf(VID_NATT) : -1;
    if (at >= 0) s.data.fill(0x5a, at, at + VID_NATT.length);
    return false;
  };
  return net;
}

function natDTypes(data: Buffer): number[] {
  const m = decodeMessageV1(data);
  if (!('payloads' in m)) return [];
  return m.payloads
    .map((x) => x.type)
    .filter((x) => x === PayloadTypeV1.NAT_D || x === PayloadTypeV1.NAT_D_DRAFT);
}

for (const mode of ['aggressive', 'main'] as const) {
  t.test(`${mode} mode with a draft-only NAT-T peer: NAT-D payloads of type 130`, async (t) => {
    const c = agg({ mode });
    const p = await pair([c], [mirror(c)], { net: draftOnly() });
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    const phase1 = p.net.log.filter((x) => x.exchange === (mode === 'main' ? 2 : 4));
    const fromB = phase1.filter((x) => x.from.address === B && (x.data[19]! & 1) === 0);
    // Retransmissions repeat the same payloads: the distinct types, and that there were some.
    const types = fromB.flatMap((x) => natDTypes(x.data));
    t.ok(types.length >= 2);
    t.same([...new Set(types)], [130], 'the responder sends draft NAT-D');
    if (mode === 'main') {
      const fromA = phase1.filter((x) => x.from.address === A && (x.data[19]! & 1) === 0);
      t.same([...new Set(fromA.flatMap((x) => natDTypes(x.data)))], [130], 'and so does the initiator');
    }
    t.same(p.a.failures, []);
    t.same(p.b.failures, []);
  });
}

t.test('an RFC 3947 peer gets NAT-D type 20 in aggressive mode', async (t) => {
  const c = agg();
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const second = p.net.log.filter((x) => x.exchange === 4 && x.from.address === B)[0]!;
  t.same(natDTypes(second.data), [20, 20]);
  t.same(p.a.failures, []);
});

t.test(
  "quick mode offers the drafts' UDP tunnel mode (61443) to a draft-only peer, RFC 3947's (3) else",
  async (t) => {
    const modes = (draft: boolean) =>
      p2Offer(agg(), Buffer.alloc(4, 1), true, draft).flatMap((p) =>
        p.transforms.flatMap((x) => x.attrs.filter((a) => a.type === 4).map((a) => a.value)),
      );
    t.same([...new Set(modes(true))], [EncapsulationMode.UDP_TUNNEL_DRAFT]);
    t.same([...new Set(modes(false))], [EncapsulationMode.UDP_TUNNEL]);
  },
);
