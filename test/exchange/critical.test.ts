/**
 * Unknown payloads (RFC 7296 §2.5): one with the critical bit set is answered
 * UNSUPPORTED_CRITICAL_PAYLOAD carrying its type, unencrypted in IKE_SA_INIT and inside SK later;
 * one without the bit is skipped and the message processed as if it were not there.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { notifies } from '../../src/ike/v2/payload-find.js';
import { ExchangeType, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import type { Payload } from '../../src/ike/wire/types.js';
import { A, B, conn, internal, mirror, pair, state, until } from './pair.js';

const UNKNOWN = 200;

/** A's first IKE_SA_INIT again, under a new initiator SPI, with one unknown payload appended. */
function initWithUnknown(first: Buffer, critical: boolean): Buffer {
  const m = decodeMessage(first);
  const extra: Payload = { type: UNKNOWN, critical, body: Buffer.from('ignored?') };
  return encodeMessage({ header: { ...m.header, spiI: randomBytes(8) }, payloads: [...m.payloads, extra] });
}

t.test('IKE_SA_INIT with an unknown critical payload: UNSUPPORTED_CRITICAL_PAYLOAD, no state', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const req = initWithUnknown(p.net.log[0]!.data, true);
  const before = p.net.log.length;
  const sas = p.b.daemon.ike!.table.size;
  p.b.daemon.ike!.handle({ data: req, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
  const answer = p.net.log
    .slice(before)
    .find((s) => s.from.address === B && s.exchange === ExchangeType.IKE_SA_INIT);
  t.ok(answer, 'answered');
  const m = decodeMessage(answer!.data);
  t.same(m.header.spiI, req.subarray(0, 8), 'to the sender');
  const n = notifies(m.payloads, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD);
  t.equal(n.length, 1, 'UNSUPPORTED_CRITICAL_PAYLOAD');
  t.same([...n[0]!.data], [UNKNOWN], 'carrying the payload type (one octet)');
  t.equal(m.payloads.length, 1, 'and nothing else');
  t.equal(p.b.daemon.ike!.table.size, sas, 'no SA kept for it');
});

t.test('IKE_SA_INIT with an unknown non-critical payload is answered normally', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const before = p.net.log.length;
  const req = initWithUnknown(p.net.log[0]!.data, false);
  p.b.daemon.ike!.handle({ data: req, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
  const answer = p.net.log.slice(before).find((s) => s.from.address === B);
  const m = decodeMessage(answer!.data);
  t.ok(
    m.payloads.some((x) => x.type === PayloadType.SA) && m.payloads.some((x) => x.type === PayloadType.KE),
    'SA and KE',
  );
  t.equal(notifies(m.payloads, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD).length, 0);
});

t.test('an encrypted request with an unknown critical payload: answered inside SK, SA kept', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  const sa = internal(p.a, 't1');
  const crit = await sa.request(ExchangeType.INFORMATIONAL, [
    { type: UNKNOWN, critical: true, body: Buffer.alloc(8) },
  ]);
  const n = notifies(crit.payloads, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD);
  t.equal(n.length, 1, 'UNSUPPORTED_CRITICAL_PAYLOAD (decrypted from the SK payload)');
  t.same([...n[0]!.data], [UNKNOWN]);
  t.equal(p.b.daemon.ike!.dropped.get('unsupported_critical'), 1, 'counted');
  t.equal(state(p.b, 't1'), 'established', 'the IKE SA stays');
  const plain = await sa.request(ExchangeType.INFORMATIONAL, [
    { type: UNKNOWN, critical: false, body: Buffer.alloc(8) },
  ]);
  t.same(plain.payloads, [], 'a non-critical one is skipped: an empty (liveness) answer');
  t.equal(state(p.a, 't1'), 'established');
});
