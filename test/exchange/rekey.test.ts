/**
 * CREATE_CHILD_SA between two in-process daemons: CHILD_SA rekeys (with and without PFS) and IKE
 * SA rekeys, started from either side, named exchange by exchange.
 */
import t, { type Test } from 'tap';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import { ChildSa } from '../../src/ike/core/child-sa.js';
import type { IkeSaView as IkeSa } from '../../src/ike/core/view.js';
import type { V2Child } from '../../src/ike/v2/ike-sa.js';
import { notifies } from '../../src/ike/v2/payload-find.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../src/ike/wire/constants.js';
import { A, B, conn, internal, mirror, pair, type Side, state, until } from './pair.js';

const step = (ex: string, resp: boolean, from: string, to: string): string =>
  `${ex} ${resp ? 'response' : 'request'} ${from} -> ${to}`;
const other = (x: string): string => (x === A ? B : A);
const CCS = (from: string): string[] => [
  step('CREATE_CHILD_SA', false, from, other(from)),
  step('CREATE_CHILD_SA', true, other(from), from),
];
const INFO = (from: string): string[] => [
  step('INFORMATIONAL', false, from, other(from)),
  step('INFORMATIONAL', true, other(from), from),
];

function mirrored(t: Test, x: ChildSaSpec, y: ChildSaSpec): void {
  t.equal(x.spiIn, y.spiOut, 'SPIs mirror');
  t.equal(x.spiOut, y.spiIn, 'SPIs mirror');
  t.same(x.encrKeyOut, y.encrKeyIn, 'encryption keys mirror');
  t.same(x.encrKeyIn, y.encrKeyOut, 'encryption keys mirror');
  t.notSame(x.encrKeyIn, x.encrKeyOut, 'the two directions use different keys');
  t.same(x.integKeyOut, y.integKeyIn, 'integrity keys mirror');
  t.same(x.integKeyIn, y.integKeyOut, 'integrity keys mirror');
}

const only = (s: Side): ChildSaSpec => {
  if (s.dp.sas.size !== 1) throw new Error(`expected one SA, have ${s.dp.sas.size}`);
  return [...s.dp.sas.values()][0]!;
};
const ikeSa = (s: Side) => internal(s, 't1');

async function established(espProposal = 'aes256gcm16', peerEsp = espProposal) {
  const c = conn('t1', { esp: { proposals: [espProposal], lifetime: 600 } });
  const p = await pair([c], [mirror(c, { esp: { proposals: [peerEsp], lifetime: 600 } })]);
  await until(
    () =>
      state(p.a, 't1') === 'established' &&
      state(p.b, 't1') === 'established' &&
      p.a.dp.sas.size === 1 &&
      p.b.dp.sas.size === 1,
  );
  return { p, setup: p.net.steps().length };
}

function rekeyOnce(s: Side): Promise<void> {
  const sa = ikeSa(s);
  const spiIn = sa.children[0]!.spiIn;
  return new Promise((resolve, reject) => {
    if (!s.daemon.ike!.rekeyChild(sa, spiIn, (err) => (err ? reject(err) : resolve())))
      reject(new Error('rekeyChild refused'));
  });
}

for (const [who, label] of [
  ['a', 'the IKE initiator'],
  ['b', 'the IKE responder'],
] as const) {
  t.test(`CHILD_SA rekey started by ${label}: new pair mirrored, old pair gone after DELETE`, async (t) => {
    const { p, setup } = await established('aes128-sha256');
    t.teardown(p.stop);
    const oldA = only(p.a);
    const oldB = only(p.b);
    const starter = p[who];
    await rekeyOnce(starter);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    const from = who === 'a' ? A : B;
    t.same(p.net.steps().slice(setup), [...CCS(from), ...INFO(from)]);
    const x = only(p.a);
    const y = only(p.b);
    mirrored(t, x, y);
    t.not(x.spiIn, oldA.spiIn, 'new inbound SPI on A');
    t.not(y.spiIn, oldB.spiIn, 'new inbound SPI on B');
    t.notSame(x.encrKeyIn, oldA.encrKeyIn, 'fresh keys');
    t.equal(x.integ, 'sha256');
    t.same(x.tsLocal, ['198.18.1.0/24']);
    t.same(y.tsLocal, ['198.19.1.0/24']);
    t.equal(ikeSa(p.a).children.length, 1);
    t.equal(ikeSa(p.b).children.length, 1);
    t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
    // Several rekeys in a row keep working on the same IKE SA.
    await rekeyOnce(p.a);
    await rekeyOnce(p.b);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    mirrored(t, only(p.a), only(p.b));
  });
}

t.test('make-before-break: the responder installs the new pair before answering', async (t) => {
  const { p } = await established();
  t.teardown(p.stop);
  const sizes: number[] = [];
  const before = p.net.drop;
  p.net.drop = (s) => {
    if (s.exchange === ExchangeType.CREATE_CHILD_SA && s.response) sizes.push(p.b.dp.sas.size);
    return before(s);
  };
  await rekeyOnce(p.a);
  t.same(sizes, [2], 'old and new pair both installed when the response leaves');
  await until(() => p.b.dp.sas.size === 1);
});

t.test('PFS: KE in the CHILD_SA rekey, keys mirrored', async (t) => {
  const { p, setup } = await established('aes256gcm16-x25519');
  t.teardown(p.stop);
  const dhs: unknown[] = [];
  p.a.daemon.bus.on('child-up', (e) => dhs.push(e.dh));
  p.b.daemon.bus.on('child-up', (e) => dhs.push(e.dh));
  const old = only(p.a);
  await rekeyOnce(p.a);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  t.same(p.net.steps().slice(setup), [...CCS(A), ...INFO(A)]);
  t.same(dhs, ['x25519', 'x25519'], 'both sides negotiated the PFS group');
  mirrored(t, only(p.a), only(p.b));
  t.not(only(p.a).spiIn, old.spiIn);
});

t.test('PFS: INVALID_KE_PAYLOAD makes the initiator retry with the group asked for', async (t) => {
  const { p, setup } = await established('aes256gcm16-ecp256-x25519', 'aes256gcm16-x25519');
  t.teardown(p.stop);
  const dhs: unknown[] = [];
  p.b.daemon.bus.on('child-up', (e) => dhs.push(e.dh));
  await rekeyOnce(p.a);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  t.same(p.net.steps().slice(setup), [...CCS(A), ...CCS(A), ...INFO(A)]);
  t.same(dhs, ['x25519']);
  mirrored(t, only(p.a), only(p.b));
});

t.test('PFS required by the responder but no KE sent: INVALID_KE_PAYLOAD, nothing changes', async (t) => {
  const { p } = await established('aes256gcm16', 'aes256gcm16-x25519');
  t.teardown(p.stop);
  const before = [only(p.a).spiIn, only(p.b).spiIn];
  const err = await rekeyOnce(p.a).then(
    () => null,
    (e: Error & { reason?: string }) => e,
  );
  // A offers no DH group at all, so B's x25519 requirement cannot be met.
  t.equal(err?.reason, 'no_proposal_chosen');
  t.same([only(p.a).spiIn, only(p.b).spiIn], before, 'old pair untouched');
  t.equal(state(p.a, 't1'), 'established');
});

t.test('unknown REKEY_SA SPI: CHILD_SA_NOT_FOUND', async (t) => {
  const { p } = await established();
  t.teardown(p.stop);
  const sa = internal(p.a, 't1');
  const real = sa.children[0]!;
  // A CHILD_SA this IKE SA never had: the peer knows no such SPI either.
  const fake = new ChildSa<V2Child>(
    p.a.daemon.bus,
    { ...real, connection: 't1', spiIn: 0x1234, tsLocal: [...real.tsLocal], tsRemote: [...real.tsRemote] },
    real.proto,
  );
  const err = await p.a.daemon
    .ike!.protocol(sa)
    .rekeyChild(sa, fake)
    .then(
      () => new Error('rekeyed') as Error & { reason?: string },
      (e: Error & { reason?: string }) => e,
    );
  t.equal(err.reason, 'child_sa_not_found');
  t.equal(p.a.dp.sas.size, 1);
  t.equal(p.b.dp.sas.size, 1);
});

t.test('a CREATE_CHILD_SA for an additional CHILD_SA is answered NO_ADDITIONAL_SAS', async (t) => {
  const { p } = await established();
  t.teardown(p.stop);
  const sa = internal(p.a, 't1');
  const ps = await sa
    .request(ExchangeType.CREATE_CHILD_SA, [
      {
        type: PayloadType.SA,
        proposals: [
          {
            num: 1,
            protocolId: ProtocolId.ESP,
            spi: Buffer.from('01020304', 'hex'),
            transforms: [
              { type: 1, id: 20, keyLength: 256 },
              { type: 5, id: 0 },
            ],
          },
        ],
      },
      { type: PayloadType.NONCE, data: Buffer.alloc(32, 7) },
      { type: PayloadType.TSi, selectors: sa.children[0]!.proto.tsLocal },
      { type: PayloadType.TSr, selectors: sa.children[0]!.proto.tsRemote },
    ])
    .then((m) => m.payloads);
  t.equal(notifies(ps as never, NotifyType.NO_ADDITIONAL_SAS).length, 1);
  t.equal(p.b.dp.sas.size, 1);
  t.equal(state(p.b, 't1'), 'established');
});

for (const [who, label] of [
  ['a', 'the IKE initiator'],
  ['b', 'the IKE responder'],
] as const) {
  t.test(`IKE SA rekey started by ${label}: children move, old SA deleted, new SA works`, async (t) => {
    const { p, setup } = await established();
    t.teardown(p.stop);
    const starter = p[who];
    const old = ikeSa(starter);
    const oldSpis = [old.spiI.toString('hex'), old.spiR.toString('hex')];
    const childA = only(p.a);
    const childB = only(p.b);
    const downs: unknown[] = [];
    p.a.daemon.bus.on('child-down', (e) => downs.push(e));
    p.b.daemon.bus.on('child-down', (e) => downs.push(e));
    const fresh = await new Promise<IkeSa>((resolve, reject) =>
      starter.daemon.ike!.rekeyIke(old, (err, f) => (err ? reject(err) : resolve(f!))),
    );
    await until(() => p.a.daemon.ike!.sasOf('t1').length === 1 && p.b.daemon.ike!.sasOf('t1').length === 1);
    const from = who === 'a' ? A : B;
    t.same(p.net.steps().slice(setup), [...CCS(from), ...INFO(from)]);
    const na = ikeSa(p.a);
    const nb = ikeSa(p.b);
    t.equal(na.spiI.toString('hex'), nb.spiI.toString('hex'), 'same new SPIs on both sides');
    t.equal(na.spiR.toString('hex'), nb.spiR.toString('hex'));
    t.notOk(oldSpis.includes(na.spiI.toString('hex')), 'new initiator SPI');
    t.notOk(oldSpis.includes(na.spiR.toString('hex')), 'new responder SPI');
    t.equal(fresh, starter === p.a ? na : nb);
    t.equal(fresh.initiator, true, 'the rekey initiator initiates the new IKE SA');
    t.same(na.keys!.skD.equals(old.keys!.skD), false, 'new SK_d');
    t.same(na.keys!.skEi, nb.keys!.skEi, 'IKE keys agree');
    t.same(downs, [], 'no CHILD_SA removed');
    t.equal(only(p.a).spiIn, childA.spiIn, 'CHILD_SA kept on A');
    t.equal(only(p.b).spiIn, childB.spiIn, 'CHILD_SA kept on B');
    t.equal(na.children.length, 1);
    t.equal(nb.children.length, 1);
    t.equal(state(p.a, 't1'), 'established');
    t.equal(state(p.b, 't1'), 'established');
    // The new IKE SA carries exchanges from message ID 0: rekey a CHILD_SA over it, from A.
    const before = p.net.steps().length;
    await rekeyOnce(p.a);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    t.same(p.net.steps().slice(before), [...CCS(A), ...INFO(A)]);
    mirrored(t, only(p.a), only(p.b));
    t.equal(p.a.failures.length + p.b.failures.length, 0, 'no failures');
  });
}
