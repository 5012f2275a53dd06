/**
 * ISAKMP payloads laid out by hand from RFC 2408 §3, RFC 2407 §4.6, RFC 3947 and mode-config:
 * each encodes to the bytes written here and decodes back to the same object (length checks:
 * wire-v1-lengths.test.ts).
 */
import t from 'tap';
import { WireError } from '../../src/errors.js';
import {
  attributeNumber,
  DOI_IPSEC,
  EncapsulationMode,
  EspTransformId,
  findAttribute,
  IdTypeV1,
  NotifyTypeV1,
  numberAttribute,
  Phase1Attr,
  Phase2Attr,
  ProtocolIdV1,
  SIT_IDENTITY_ONLY,
} from '../../src/ike/wire/v1/index.js';
import { decodeChainV1, encodePayloadsV1 } from '../../src/ike/wire/v1/payloads.js';
import type { PayloadV1 } from '../../src/ike/wire/v1/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** One payload on the wire: generic header (next, reserved, length) then body. */
function wire(next: number, body: string | Buffer, reserved = 0): Buffer {
  const b = typeof body === 'string' ? hex(body) : body;
  const head = Buffer.from([next, reserved, 0, 0]);
  head.writeUInt16BE(4 + b.length, 2);
  return Buffer.concat([head, b]);
}

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('expected a WireError');
}

const SA_BODY = `00000001 00000001
  00 00 0034 01 03 04 02 aabbccdd
    03 00 0018 01 0c 0000  8006 0080  8004 0003  0002 0004 00015180
    00 00 0010 02 03 0000  8004 0001  8005 0002`;

const SAMPLES: { name: string; payload: PayloadV1; body: string }[] = [
  {
    name: 'SA (ESP proposal, two transforms, TV and 4-byte TLV attributes)',
    payload: {
      type: 1,
      doi: DOI_IPSEC,
      situation: SIT_IDENTITY_ONLY,
      proposals: [
        {
          num: 1,
          protocolId: ProtocolIdV1.IPSEC_ESP,
          spi: hex('aabbccdd'),
          transforms: [
            {
              num: 1,
              id: EspTransformId.ESP_AES_CBC,
              attributes: [
                { type: Phase2Attr.KEY_LENGTH, value: 128 },
                { type: Phase2Attr.ENCAPSULATION_MODE, value: EncapsulationMode.UDP_TUNNEL },
                { type: Phase2Attr.SA_LIFE_DURATION, value: hex('00015180') },
              ],
            },
            {
              num: 2,
              id: EspTransformId.ESP_3DES,
              attributes: [
                { type: Phase2Attr.ENCAPSULATION_MODE, value: EncapsulationMode.TUNNEL },
                { type: Phase2Attr.AUTHENTICATION_ALGORITHM, value: 2 },
              ],
            },
          ],
        },
      ],
    },
    body: SA_BODY,
  },
  {
    name: 'SA (AH+ESP bundle: two proposals numbered 1)',
    payload: {
      type: 1,
      doi: DOI_IPSEC,
      situation: SIT_IDENTITY_ONLY,
      proposals: [
        { num: 1, protocolId: 2, spi: hex('00000001'), transforms: [{ num: 1, id: 3, attributes: [] }] },
        { num: 1, protocolId: 3, spi: hex('00000002'), transforms: [{ num: 1, id: 12, attributes: [] }] },
      ],
    },
    body: `00000001 00000001
      02 00 0014 01 02 04 01 00000001  00 00 0008 01 03 0000
      00 00 0014 01 03 04 01 00000002  00 00 0008 01 0c 0000`,
  },
  { name: 'KE', payload: { type: 4, data: hex('0102030405') }, body: '0102030405' },
  {
    name: 'ID (phase 2 subnet, UDP port 500)',
    payload: {
      type: 5,
      idType: IdTypeV1.IPV4_ADDR_SUBNET,
      protocolId: 17,
      port: 500,
      data: hex('c6120100ffffff00'),
    },
    body: '04 11 01f4 c6120100ffffff00',
  },
  { name: 'CERT', payload: { type: 6, encoding: 4, data: hex('3082') }, body: '04 3082' },
  { name: 'CR', payload: { type: 7, certType: 4, authority: Buffer.alloc(0) }, body: '04' },
  { name: 'HASH', payload: { type: 8, data: hex('11'.repeat(20)) }, body: '11'.repeat(20) },
  { name: 'SIG', payload: { type: 9, data: hex('22'.repeat(8)) }, body: '22'.repeat(8) },
  {
    name: 'NONCE (8 bytes, the RFC 2409 minimum)',
    payload: { type: 10, data: hex('33'.repeat(8)) },
    body: '33'.repeat(8),
  },
  {
    name: 'N (DPD R-U-THERE with cookies and a sequence number)',
    payload: {
      type: 11,
      doi: DOI_IPSEC,
      protocolId: ProtocolIdV1.ISAKMP,
      spi: hex('01'.repeat(16)),
      notifyType: NotifyTypeV1.R_U_THERE,
      data: hex('00000007'),
    },
    body: `00000001 01 10 8d28 ${'01'.repeat(16)} 00000007`,
  },
  {
    name: 'N (NO-PROPOSAL-CHOSEN, no SPI)',
    payload: {
      type: 11,
      doi: DOI_IPSEC,
      protocolId: 3,
      spi: Buffer.alloc(0),
      notifyType: 14,
      data: Buffer.alloc(0),
    },
    body: '00000001 03 00 000e',
  },
  {
    name: 'D (two ESP SPIs)',
    payload: {
      type: 12,
      doi: DOI_IPSEC,
      protocolId: 3,
      spiSize: 4,
      spis: [hex('aaaaaaaa'), hex('bbbbbbbb')],
    },
    body: '00000001 03 04 0002 aaaaaaaa bbbbbbbb',
  },
  {
    name: 'VID',
    payload: { type: 13, data: hex('afcad71368a1f1c96b8696fc77570100') },
    body: 'afcad71368a1f1c96b8696fc77570100',
  },
  {
    name: 'ATTR (mode-config REPLY: INTERNAL_IP4_ADDRESS as TLV, XAUTH_STATUS as TV)',
    payload: {
      type: 14,
      cfgType: 2,
      identifier: 0x1234,
      attributes: [
        { type: 1, value: hex('0a000001') },
        { type: 16527, value: 1 },
      ],
    },
    body: '02 00 1234 0001 0004 0a000001 c08f 0001',
  },
  { name: 'NAT-D', payload: { type: 20, data: hex('44'.repeat(20)) }, body: '44'.repeat(20) },
  { name: 'NAT-D (draft 130)', payload: { type: 130, data: hex('55'.repeat(16)) }, body: '55'.repeat(16) },
  {
    name: 'NAT-OA (IPv4)',
    payload: { type: 21, idType: IdTypeV1.IPV4_ADDR, address: '192.0.2.7' },
    body: '01 000000 c0000207',
  },
  {
    name: 'NAT-OA (draft 131, IPv6)',
    payload: { type: 131, idType: IdTypeV1.IPV6_ADDR, address: '2001:db8::1' },
    body: '05 000000 20010db8000000000000000000000001',
  },
  { name: 'unknown (private use 200)', payload: { type: 200, body: hex('abcdef') }, body: 'abcdef' },
  {
    name: 'unknown with a reserved octet',
    payload: { type: 15, reserved: 0x80, body: hex('01') },
    body: '01',
  },
];

t.test('every payload kind round-trips through its hand-made bytes', async (t) => {
  for (const { name, payload, body } of SAMPLES) {
    const reserved = 'reserved' in payload ? (payload.reserved ?? 0) : 0;
    const bytes = wire(0, body, reserved);
    const enc = encodePayloadsV1([payload]);
    t.equal(enc.first, payload.type, `${name}: first`);
    t.equal(enc.bytes.toString('hex'), bytes.toString('hex'), `${name}: encode`);
    t.strictSame(decodeChainV1(payload.type, bytes, false), [payload], `${name}: decode`);
  }
});

t.test('the chain links next payloads and keeps each reserved octet', async (t) => {
  const payloads = SAMPLES.map((s) => s.payload);
  const { first, bytes } = encodePayloadsV1(payloads);
  t.equal(first, 1);
  t.strictSame(decodeChainV1(first, bytes, false), payloads);
  const ke = { type: 4 as const, reserved: 0x01, data: hex('00') };
  const { bytes: b } = encodePayloadsV1([ke, { type: 13, data: hex('01') }]);
  t.equal(b.toString('hex'), '0d010005' + '00' + '00000005' + '01');
  t.strictSame(decodeChainV1(4, b, false), [ke, { type: 13, data: hex('01') }]);
  t.strictSame(encodePayloadsV1([]), { first: 0, bytes: Buffer.alloc(0) });
});

t.test('attributes: TV and TLV read as numbers, form preserved', async (t) => {
  t.equal(attributeNumber({ type: 12, value: 28800 }), 28800);
  t.equal(attributeNumber({ type: 12, value: hex('00015180') }), 86400);
  t.equal(attributeNumber({ type: 12, value: hex('010000000000') }), 2 ** 40);
  t.match(wireError(() => attributeNumber({ type: 12, value: Buffer.alloc(0) })).message, /not a number/);
  t.match(wireError(() => attributeNumber({ type: 12, value: Buffer.alloc(7) })).message, /not a number/);
  t.strictSame(numberAttribute(12, 3960), { type: 12, value: 3960 }, 'TV when it fits');
  t.strictSame(numberAttribute(12, 95040), { type: 12, value: hex('00017340') }, '4-byte TLV otherwise');
  t.match(wireError(() => numberAttribute(12, 2 ** 32)).message, /out of range/);
  const attrs = [{ type: Phase1Attr.LIFE_DURATION, value: 3600 }];
  t.equal(findAttribute(attrs, Phase1Attr.LIFE_DURATION), attrs[0]);
  t.equal(findAttribute(attrs, Phase1Attr.KEY_LENGTH), undefined);
  // The same value in the two forms is two encodings: neither is normalised into the other.
  const tv = encodePayloadsV1([{ type: 14, cfgType: 1, identifier: 0, attributes: [{ type: 2, value: 1 }] }]);
  const tlv = encodePayloadsV1([
    { type: 14, cfgType: 1, identifier: 0, attributes: [{ type: 2, value: hex('0001') }] },
  ]);
  t.equal(tv.bytes.subarray(8).toString('hex'), '80020001');
  t.equal(tlv.bytes.subarray(8).toString('hex'), '000200020001');
});
