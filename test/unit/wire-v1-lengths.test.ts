/**
 * ISAKMP payload decoding refuses every malformed length with a WireError: truncated and
 * overlong bodies, proposal and transform lengths inconsistent with the SA payload and with
 * each other, and encode refuses what it could not decode back.
 */
import t from 'tap';
import { WireError } from '../../src/errors.js';
import { IdTypeV1, KEY_IKE } from '../../src/ike/wire/v1/index.js';
import { decodeChainV1, encodeGenericHeaderV1, encodePayloadsV1 } from '../../src/ike/wire/v1/payloads.js';
import type { PayloadV1 } from '../../src/ike/wire/v1/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** One payload on the wire: generic header (next, reserved, length) then body. */
function wire(next: number, body: string | Buffer, reserved = 0): Buffer {
  const b = typeof body === 'string' ? hex(body) : body;
  const head = Buffer.from([next, reserved, 0, 0]);
  head.writeUInt16BE(4 + b.length, 2);
  return Buffer.concat([head, b]);
}
const decode = (type: number, body: string | Buffer) => decodeChainV1(type, wire(0, body), false);

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('expected a WireError');
}

const TRANSFORM = (attrs: string) => {
  const b = hex(`00 00 0000 01 ${KEY_IKE.toString(16).padStart(2, '0')} 0000 ${attrs}`);
  b.writeUInt16BE(b.length, 2);
  return b;
};
const PROPOSAL = (transforms: Buffer, count = 1, spi = '') => {
  const b = Buffer.concat([
    hex(`00 00 0000 01 01 ${(spi.length / 2).toString(16).padStart(2, '0')} 0${count} ${spi}`),
    transforms,
  ]);
  b.writeUInt16BE(b.length, 2);
  return b;
};
const SA = (proposals: Buffer) => Buffer.concat([hex('00000001 00000001'), proposals]);

/** A copy of `buf` with octets overwritten: [offset, value, width] each. */
function patch(buf: Buffer, ...edits: [number, number, 1 | 2][]): Buffer {
  const b = Buffer.from(buf);
  for (const [off, v, w] of edits) b.writeUIntBE(v, off, w);
  return b;
}

/** DOI, situation, one proposal (at 8; transforms at 16) with one transform of TV and TLV attributes. */
const GOOD_SA = SA(PROPOSAL(TRANSFORM('800b 0001 000c 0004 00015180')));
const SA_CASES: [string, Buffer, RegExp][] = [
  ['SA body shorter than DOI + situation', hex('00000001'), /shorter than 8/],
  ['DOI 0', patch(GOOD_SA, [3, 0, 1]), /DOI 0 is not IPsec/],
  ['secrecy situation', patch(GOOD_SA, [7, 2, 1]), /situation 2/],
  ['no proposal', hex('00000001 00000001'), /0 bytes left for the 8-byte header/],
  ['proposal length beyond the SA', patch(GOOD_SA, [10, 200, 2]), /length 200 outside/],
  ['proposal length below 8', patch(GOOD_SA, [10, 4, 2]), /length 4 outside/],
  [
    'proposal shorter than its transform',
    patch(GOOD_SA, [10, GOOD_SA.length - 12, 2]),
    /after the last proposal/,
  ],
  ['bytes after the last proposal', Buffer.concat([GOOD_SA, hex('00')]), /1 bytes after the last proposal/],
  ['proposal next payload neither P nor 0', patch(GOOD_SA, [8, 7, 1]), /next payload 7 is neither 0 nor 2/],
  ['proposal announces P, nothing follows', patch(GOOD_SA, [8, 2, 1]), /0 bytes left/],
  ['transform next payload neither T nor 0', patch(GOOD_SA, [16, 2, 1]), /neither 0 nor 3/],
  [
    'more transforms than announced',
    SA(PROPOSAL(Buffer.concat([patch(TRANSFORM(''), [0, 3, 1]), TRANSFORM('')]), 1)),
    /beyond the 1 announced/,
  ],
  ['fewer transforms than announced', SA(PROPOSAL(TRANSFORM(''), 2)), /1 transforms, 2 announced/],
  ['no transforms', SA(PROPOSAL(Buffer.alloc(0), 0)), /no transforms/],
  [
    'SPI size beyond the proposal',
    patch(SA(PROPOSAL(Buffer.alloc(0))), [14, 255, 1]),
    /SPI size 255 exceeds/,
  ],
  ['transform length beyond the proposal', patch(GOOD_SA, [18, 100, 2]), /length 100 outside/],
  [
    'TLV attribute longer than the transform',
    SA(PROPOSAL(TRANSFORM('000c 0008 00015180'))),
    /8 value bytes, 4 left/,
  ],
  ['half an attribute', SA(PROPOSAL(TRANSFORM('800b'))), /2 bytes left for a 4-byte attribute/],
  [
    'proposal numbers going down',
    SA(Buffer.concat([patch(PROPOSAL(TRANSFORM('')), [0, 2, 1], [4, 2, 1]), PROPOSAL(TRANSFORM(''))])),
    /number 1 below the previous 2/,
  ],
];

t.test('SA, proposal and transform lengths are checked', async (t) => {
  t.equal(decode(1, GOOD_SA).length, 1, 'the well-formed one decodes');
  for (const [name, body, re] of SA_CASES) t.match(wireError(() => decode(1, body)).message, re, name);
});

t.test('other payloads: short, overlong and inconsistent bodies', async (t) => {
  const cases: [string, number, string, RegExp][] = [
    ['ID without its 4-byte head', 5, '020000', /ID payload: payload of 3 bytes is shorter than 4/],
    ['CERT without encoding', 6, '', /CERT payload/],
    ['CR without type', 7, '', /CR payload/],
    ['NONCE of 7 bytes', 10, '00'.repeat(7), /outside 8..256/],
    ['NONCE of 257 bytes', 10, '00'.repeat(257), /outside 8..256/],
    ['N without its 8-byte head', 11, '00000001 01 00 00', /N payload: payload of 7 bytes/],
    ['N SPI size beyond the payload', 11, '00000001 01 10 8d28 0000', /SPI size 16 exceeds/],
    ['D without its 8-byte head', 12, '00000001 03 04', /D payload: payload of 6 bytes/],
    ['D SPIs short of the count', 12, '00000001 03 04 0002 aaaaaaaa', /2 SPIs of 4 bytes do not fill the 4/],
    ['D SPIs beyond the count', 12, '00000001 03 04 0001 aaaaaaaa bb', /do not fill the 5/],
    ['D SPI size 0 with a count', 12, '00000001 03 00 0001 aa', /1 SPIs of 0 bytes/],
    ['ATTR without its head', 14, '01', /ATTR payload/],
    ['ATTR with a cut attribute', 14, '01 00 0000 0001 0004 0a00', /2 value bytes|4 value bytes, 2 left/],
    ['NAT-OA of an unknown ID type', 21, '02 000000 c0000201', /neither IPV4_ADDR nor IPV6_ADDR/],
    ['NAT-OA IPv4 with extra bytes', 21, '01 000000 c000020100', /9 bytes, ID type 1 needs 8/],
    ['NAT-OA IPv6 cut short', 131, '05 000000 20010db8', /8 bytes, ID type 5 needs 20/],
    ['NAT-OA without its head', 21, '01', /shorter than 4/],
  ];
  for (const [name, type, body, re] of cases) t.match(wireError(() => decode(type, body)).message, re, name);
});

t.test('the generic header and the chain', async (t) => {
  const vid = wire(0, '01');
  t.match(
    wireError(() => decodeChainV1(13, vid.subarray(0, 3), false)).message,
    /3 bytes left for a 4-byte header/,
  );
  const short = Buffer.from(vid);
  short.writeUInt16BE(3, 2);
  t.match(wireError(() => decodeChainV1(13, short, false)).message, /length 3 is below 4/);
  const long = Buffer.from(vid);
  long.writeUInt16BE(6, 2);
  t.match(wireError(() => decodeChainV1(13, long, false)).message, /length 6 exceeds the 5 bytes left/);
  const next = Buffer.from(vid);
  next[0] = 13;
  t.match(
    wireError(() => decodeChainV1(13, next, false)).message,
    /0 bytes left for a 4-byte header/,
    'next names a missing payload',
  );
  t.match(
    wireError(() => decodeChainV1(13, Buffer.concat([vid, hex('00')]), false)).message,
    /1 bytes after the last payload/,
  );
  t.strictSame(
    decodeChainV1(13, Buffer.concat([vid, hex('0000')]), true),
    [{ type: 13, data: hex('01') }],
    'padded',
  );
  t.strictSame(decodeChainV1(0, hex('ffff'), true), [], 'nothing but padding');
  t.match(wireError(() => encodeGenericHeaderV1(0, 0, 3)).message, /length 3 out of range/);
  t.match(wireError(() => encodeGenericHeaderV1(256, 0, 4)).message, /next payload 256/);
  t.match(wireError(() => encodeGenericHeaderV1(0, 256, 4)).message, /reserved 256/);
});

const ENCODE_CASES: [string, PayloadV1, RegExp][] = [
  ['SA without proposals', { type: 1, doi: 1, situation: 1, proposals: [] }, /no proposals/],
  [
    'proposal without transforms',
    {
      type: 1,
      doi: 1,
      situation: 1,
      proposals: [{ num: 1, protocolId: 3, spi: Buffer.alloc(4), transforms: [] }],
    },
    /no transforms/,
  ],
  [
    'transform ID 256',
    {
      type: 1,
      doi: 1,
      situation: 1,
      proposals: [
        { num: 1, protocolId: 3, spi: Buffer.alloc(4), transforms: [{ num: 1, id: 256, attributes: [] }] },
      ],
    },
    /transform ID 256/,
  ],
  [
    'attribute type 0x8000',
    { type: 14, cfgType: 1, identifier: 0, attributes: [{ type: 0x8000, value: 1 }] },
    /attribute type 32768/,
  ],
  [
    'TV value 0x10000',
    { type: 14, cfgType: 1, identifier: 0, attributes: [{ type: 1, value: 0x10000 }] },
    /TV value 65536/,
  ],
  [
    'TLV value of 65536 bytes',
    { type: 14, cfgType: 1, identifier: 0, attributes: [{ type: 1, value: Buffer.alloc(0x10000) }] },
    /TLV length 65536/,
  ],
  ['ID port 65536', { type: 5, idType: 1, protocolId: 0, port: 65536, data: Buffer.alloc(4) }, /port 65536/],
  [
    'N DOI above 32 bits',
    { type: 11, doi: 2 ** 32, protocolId: 0, spi: Buffer.alloc(0), notifyType: 1, data: Buffer.alloc(0) },
    /DOI/,
  ],
  [
    'D SPI of the wrong size',
    { type: 12, doi: 1, protocolId: 3, spiSize: 4, spis: [Buffer.alloc(3)] },
    /SPI of 3 bytes, SPI size is 4/,
  ],
  ['NONCE of 4 bytes', { type: 10, data: Buffer.alloc(4) }, /outside 8..256/],
  [
    'NAT-OA type/address mismatch',
    { type: 21, idType: IdTypeV1.IPV6_ADDR, address: '192.0.2.1' },
    /ID type 5 with a 4-byte address/,
  ],
  ['NAT-OA not an address', { type: 21, idType: IdTypeV1.IPV4_ADDR, address: 'nope' }, /not an IP address/],
  [
    'opaque payload of a known type',
    { type: 13, body: Buffer.alloc(1) },
    /cannot be sent as an opaque payload/,
  ],
  ['opaque payload of type 0', { type: 0, body: Buffer.alloc(1) }, /cannot be sent/],
  ['payload over 65535 bytes', { type: 13, data: Buffer.alloc(0xffff) }, /out of range 4..65535/],
];

t.test('encode refuses what it could not decode back', async (t) => {
  for (const [name, p, re] of ENCODE_CASES) t.match(wireError(() => encodePayloadsV1([p])).message, re, name);
});
