/**
 * Security issue #11 item 10e: an IKE_AUTH request with a malformed ID payload is answered
 * AUTHENTICATION_FAILED and the responder's half-open SA ends at once (RFC 7296 §2.21.2), instead
 * of the request being dropped and the SA left to time out. Side A's own IKE_AUTH is dropped on the
 * wire; the test sends one made with A's keys in its place.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { openMessage, sealMessage } from '../../src/ike/v2/protect.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import { encodeHeader, HEADER_LENGTH } from '../../src/ike/wire/header.js';
import { encodeGenericHeader, encodePayloads } from '../../src/ike/wire/payloads.js';
import type { NotifyPayload, Payload } from '../../src/ike/wire/types.js';
import { A, B, conn, internal, mirror, pair, until } from './pair.js';

async function halfOpen() {
  const c = conn('t1');
  // A keeps retransmitting its (dropped) IKE_AUTH for the whole test.
  const p = await pair([c], [mirror(c)], { timing: { retransmitBase: 500, retransmitTries: 10 } });
  p.net.drop = (s) => s.exchange === ExchangeType.IKE_AUTH && !s.response;
  const bSas = () => p.b.daemon.ike!.sasOf('t1');
  const armed = () => {
    try {
      return internal(p.a, 't1').skIn !== undefined;
    } catch {
      return false; // A's SA not there yet
    }
  };
  await until(() => bSas().some((s) => s.phase === 'auth') && armed());
  const a = internal(p.a, 't1');
  const header = {
    spiI: a.spiI,
    spiR: a.spiR,
    version: 0x20,
    exchange: ExchangeType.IKE_AUTH,
    flags: HeaderFlag.INITIATOR,
    messageId: 1,
  };
  const inject = (data: Buffer) =>
    p.b.daemon.ike!.handle({ data, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
  /** The notifies of B's IKE_AUTH response, opened with A's keys. */
  const answer = async (): Promise<number[]> => {
    await until(() => p.net.log.some((s) => s.exchange === ExchangeType.IKE_AUTH && s.response));
    const r = p.net.log.find((s) => s.exchange === ExchangeType.IKE_AUTH && s.response)!;
    return openMessage(r.data, a.skIn!)
      .payloads.filter((x): x is NotifyPayload => x.type === PayloadType.NOTIFY)
      .map((n) => n.notifyType);
  };
  return { p, a, header, inject, answer, bSas };
}

t.test('an ID_IPV4_ADDR of 3 bytes: AUTHENTICATION_FAILED, the half-open SA is gone', async (t) => {
  const { p, a, header, inject, answer, bSas } = await halfOpen();
  t.teardown(p.stop);
  const payloads: Payload[] = [
    { type: PayloadType.IDi, idType: 1, data: Buffer.from([192, 0, 2]) },
    { type: PayloadType.AUTH, method: 2, data: randomBytes(32) },
  ];
  inject(sealMessage(header, payloads, a.skOut!));
  t.same(await answer(), [NotifyType.AUTHENTICATION_FAILED]);
  t.ok(
    bSas().every((s) => s.phase !== 'auth'),
    'no half-open SA left on B',
  );
  t.ok(
    p.b.failures.some((f) => f.reason === 'auth_failed' && /ID_IPV4_ADDR of 3 bytes/.test(f.detail)),
    'B reports why',
  );
});

t.test(
  'an ID payload shorter than its own header: AUTHENTICATION_FAILED, the half-open SA is gone',
  async (t) => {
    const { p, a, header, inject, answer, bSas } = await halfOpen();
    t.teardown(p.stop);
    // IDi with a 2-byte body (an ID payload needs 4: type and reserved), then AUTH.
    const auth = encodePayloads([{ type: PayloadType.AUTH, method: 2, data: randomBytes(32) }]);
    const plain = Buffer.concat([
      encodeGenericHeader(PayloadType.AUTH, false, 6),
      Buffer.from([1, 0]),
      auth.bytes,
    ]);
    const sk = a.skOut!;
    const bodyLen = sk.sealedLength(plain.length);
    const total = HEADER_LENGTH + 4 + bodyLen;
    const aad = Buffer.concat([
      encodeHeader({ ...header, nextPayload: PayloadType.SK, length: total }),
      encodeGenericHeader(PayloadType.IDi, false, 4 + bodyLen),
    ]);
    inject(Buffer.concat([aad, sk.seal(plain, aad)]));
    t.same(await answer(), [NotifyType.AUTHENTICATION_FAILED]);
    t.ok(
      bSas().every((s) => s.phase !== 'auth'),
      'no half-open SA left on B',
    );
    t.equal(p.b.daemon.ike!.dropped.get('malformed'), 1, 'counted as malformed');
  },
);
