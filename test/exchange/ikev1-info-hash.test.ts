/**
 * Regressions found by the manager fuzz target (test/fuzz/manager.ts, `npm run fuzz`): a protected
 * IKEv1 informational (RFC 2409 §5.7) that decrypts but whose HASH(1) is missing or does not verify
 * was thrown as a plain error and counted `internal_error`. It is the peer's fault, not ours: it is
 * dropped as `invalid_hash_information` (RFC 2408 §5.15), its payloads are not acted on (a DELETE
 * without a valid HASH deletes nothing), and the SAs stay.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import type { IkeSaV1 } from '../../src/ike/v1/ike-sa.js';
import { deleteEsp, deleteIsakmp } from '../../src/ike/v1/informational.js';
import { ExchangeTypeV1, PayloadTypeV1 } from '../../src/ike/wire/v1/constants.js';
import type { PayloadV1 } from '../../src/ike/wire/v1/types.js';
import { A, conn, internal, mirror, pair, state, until } from './pair.js';

const v1: ConnectionConfig = conn('t1', {
  version: 1,
  mode: 'main',
  ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
  esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
});

/** Sends a protected informational from `sa` with exactly `ps` (no HASH(1) computed). */
function sendRaw(sa: IkeSaV1, ps: PayloadV1[]): void {
  const mid = sa.ctx.random.bytes(4).readUInt32BE(0) || 1;
  sa.send(mid, sa.encode(ExchangeTypeV1.INFORMATIONAL, mid, ps, true), { retransmit: false });
  sa.forget(mid);
}

t.test(
  'IKEv1: informational without or with a wrong HASH(1) is dropped, counted, not acted on',
  async (t) => {
    const p = await pair([v1], [mirror(v1)]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    const a = internal(p.a, 't1') as unknown as IkeSaV1;
    const spi = a.children[0]!.spiIn;
    const drops = () => p.b.daemon.status().drops.ike;
    // No HASH at all: the first payload is the DELETE of the ISAKMP SA.
    sendRaw(a, [deleteIsakmp(a)]);
    await until(() => (drops().invalid_hash_information ?? 0) === 1);
    // A HASH of the right length that does not verify, with a DELETE of the IPsec SA behind it.
    sendRaw(a, [{ type: PayloadTypeV1.HASH, data: Buffer.alloc(20, 0xab) } as PayloadV1, deleteEsp([spi])]);
    await until(() => (drops().invalid_hash_information ?? 0) === 2);
    t.equal(drops().internal_error ?? 0, 0, 'never an internal error');
    t.equal(state(p.b, 't1'), 'established', 'the ISAKMP SA stays');
    t.equal(p.b.dp.sas.size, 1, 'the IPsec SA stays');
    // The CBC IV chain is intact: a real informational (DPD) still gets through afterwards.
    const b = internal(p.b, 't1') as unknown as IkeSaV1;
    await until(() => b.quickModes.size === 0); // quick mode message 3 is a real sign of life
    const before = b.lastReceived;
    sendRaw(a, []); // an empty body has no HASH either: a third drop
    await until(() => (drops().invalid_hash_information ?? 0) === 3);
    t.equal(b.lastReceived, before, 'unauthenticated messages do not count as signs of life');
  },
);

t.test(
  'IKEv1: a message that decrypts but does not verify, from another address, moves nothing',
  async (t) => {
    // IKEv1 encryption has no integrity of its own: anyone who saw the cookies can send a body that
    // "decrypts" (to garbage). Behind a NAT (UDP encapsulation) an authenticated message from a new
    // address moves the SAs (peerSeen); an unverified one must not, nor count as a sign of life.
    const c = { ...v1, encapsulation: 'udp' as const };
    const p = await pair([c], [mirror(c, { encapsulation: 'auto' })]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && state(p.b, 't1') === 'established');
    const b = internal(p.b, 't1') as unknown as IkeSaV1;
    // B installs its pair when it sends quick mode message 2; message 3, a real sign of life, may
    // still be on its way. Only once it has arrived is lastReceived settled.
    await until(() => b.quickModes.size === 0);
    const seen = b.lastReceived;
    const remote = { ...b.remote };
    p.net.nat = (from) => (from.address === A ? { address: '192.0.2.66', port: 4777 } : from);
    const a = internal(p.a, 't1') as unknown as IkeSaV1;
    const drops = () => p.b.daemon.status().drops.ike.invalid_hash_information ?? 0;
    sendRaw(a, [{ type: PayloadTypeV1.HASH, data: Buffer.alloc(20, 1) } as PayloadV1]);
    await until(() => drops() === 1);
    t.same(b.remote, remote, 'the ISAKMP SA stays where it was');
    t.same([...p.b.dp.sas.values()][0]!.remote, remote, 'so does its IPsec SA');
    t.equal(b.lastReceived, seen, 'no sign of life either');
    // The same from the new address with a valid HASH (a real DPD) does move them.
    await p.a.daemon.ike!.protocol(a).liveness(a);
    await until(() => b.remote.address === '192.0.2.66');
    t.same(
      [...p.b.dp.sas.values()][0]!.remote,
      { address: '192.0.2.66', port: 4777 },
      'authenticated: moved',
    );
  },
);

t.test(
  'IKEv1: a recorded informational played back later is refused (its message ID is spent)',
  async (t) => {
    const p = await pair([v1], [mirror(v1)]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    const a = internal(p.a, 't1') as unknown as IkeSaV1;
    const before = p.net.log.length;
    await p.a.daemon.ike!.protocol(a).liveness(a); // R-U-THERE, answered R-U-THERE-ACK
    const probe = p.net.log
      .slice(before)
      .find((s) => s.from.address === A && s.exchange === ExchangeTypeV1.INFORMATIONAL)!;
    t.ok(probe, 'the R-U-THERE was seen on the wire');
    const answers = () => p.net.log.filter((s) => s.from.address !== A).length;
    const n = answers();
    const spent = () => p.b.daemon.status().drops.ike.unexpected ?? 0;
    const was = spent();
    p.b.transport.receive({ data: probe.data, local: probe.to, remote: probe.from });
    await until(() => spent() === was + 1);
    await new Promise((r) => setTimeout(r, 50));
    t.equal(answers(), n, 'no second R-U-THERE-ACK');
    t.equal(state(p.b, 't1'), 'established');
  },
);
