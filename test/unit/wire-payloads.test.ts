import t from 'tap';
import { WireError } from '../../src/errors.js';
import {
  AuthMethod,
  DhId,
  EncrId,
  EsnId,
  IdType,
  IntegId,
  NotifyType,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformType,
} from '../../src/ike/wire/constants.js';
import {
  decodePayloads,
  encodeGenericHeader,
  encodePayloads,
  UnsupportedCriticalError,
} from '../../src/ike/wire/payloads.js';
import { cidrToTs } from '../../src/ike/wire/ts.js';
import type { Payload } from '../../src/ike/wire/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const fill = (n: number, v: number) => Buffer.alloc(n, v);
/** One payload on the wire: generic header (next, flags, length) then body. */
function wire(next: number, body: string, flags = 0): Buffer {
  const b = hex(body);
  const head = Buffer.from([next, flags, 0, 0]);
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

const spi = hex('aabbccdd');
/** Every payload kind the codec knows, with its body laid out by hand from RFC 7296 §3 / RFC 7383. */
const SAMPLES: { name: string; payload: Payload; body: string }[] = [
  {
    name: 'SA (IKE proposal, key length attribute)',
    payload: {
      type: 33,
      proposals: [
        {
          num: 1,
          protocolId: ProtocolId.IKE,
          spi: Buffer.alloc(0),
          transforms: [
            { type: TransformType.ENCR, id: EncrId.AES_CBC, keyLength: 256 },
            { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
            { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
            { type: TransformType.DH, id: DhId.MODP2048 },
          ],
        },
      ],
    },
    body:
      '00 00 002c 01 01 00 04' +
      '03 00 000c 01 00 000c 800e 0100' +
      '03 00 0008 02 00 0005' +
      '03 00 0008 03 00 000c' +
      '00 00 0008 04 00 000e',
  },
  {
    name: 'SA (two ESP proposals with SPIs)',
    payload: {
      type: 33,
      proposals: [
        {
          num: 1,
          protocolId: ProtocolId.ESP,
          spi,
          transforms: [
            { type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 128 },
            { type: TransformType.ESN, id: EsnId.NO },
          ],
        },
        {
          num: 2,
          protocolId: ProtocolId.ESP,
          spi,
          transforms: [
            { type: TransformType.ENCR, id: EncrId.AES_CBC, keyLength: 128 },
            { type: TransformType.INTEG, id: IntegId.HMAC_SHA1_96 },
            { type: TransformType.ESN, id: EsnId.NO },
          ],
        },
      ],
    },
    body:
      '02 00 0020 01 03 04 02 aabbccdd 03 00 000c 01 00 0014 800e 0080 00 00 0008 05 00 0000' +
      '00 00 0028 02 03 04 03 aabbccdd 03 00 000c 01 00 000c 800e 0080 03 00 0008 03 00 0002 00 00 0008 05 00 0000',
  },
  {
    name: 'KE',
    payload: { type: 34, group: DhId.CURVE25519, data: fill(32, 0x11) },
    body: `001f 0000 ${'11'.repeat(32)}`,
  },
  {
    name: 'IDi (FQDN)',
    payload: { type: 35, idType: IdType.FQDN, data: Buffer.from('a.tsw.test') },
    body: `02 000000 ${Buffer.from('a.tsw.test').toString('hex')}`,
  },
  {
    name: 'IDr (IPv4)',
    payload: { type: 36, idType: IdType.IPV4_ADDR, data: hex('c0000202') },
    body: '01 000000 c0000202',
  },
  {
    name: 'AUTH',
    payload: { type: 39, method: AuthMethod.PSK, data: fill(32, 0x22) },
    body: `02 000000 ${'22'.repeat(32)}`,
  },
  { name: 'NONCE', payload: { type: 40, data: fill(32, 0x33) }, body: '33'.repeat(32) },
  {
    name: 'NONCE (critical bit set)',
    payload: { type: 40, data: fill(16, 0x34), critical: true },
    body: '34'.repeat(16),
  },
  {
    name: 'NOTIFY (status, no SPI)',
    payload: {
      type: 41,
      protocolId: 0,
      spi: Buffer.alloc(0),
      notifyType: NotifyType.NAT_DETECTION_SOURCE_IP,
      data: fill(20, 0x44),
    },
    body: `00 00 4004 ${'44'.repeat(20)}`,
  },
  {
    name: 'NOTIFY (REKEY_SA with ESP SPI)',
    payload: {
      type: 41,
      protocolId: ProtocolId.ESP,
      spi,
      notifyType: NotifyType.REKEY_SA,
      data: Buffer.alloc(0),
    },
    body: '03 04 4009 aabbccdd',
  },
  {
    name: 'NOTIFY (INVALID_KE_PAYLOAD)',
    payload: {
      type: 41,
      protocolId: 0,
      spi: Buffer.alloc(0),
      notifyType: NotifyType.INVALID_KE_PAYLOAD,
      data: hex('000e'),
    },
    body: '00 00 0011 000e',
  },
  {
    name: 'DELETE (two ESP SPIs)',
    payload: { type: 42, protocolId: ProtocolId.ESP, spiSize: 4, spis: [spi, hex('01020304')] },
    body: '03 04 0002 aabbccdd 01020304',
  },
  {
    name: 'DELETE (IKE SA)',
    payload: { type: 42, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] },
    body: '01 00 0000',
  },
  {
    name: 'VENDOR',
    payload: { type: 43, data: hex('882fe56d6fd20dbc2251613b2ebe5beb') },
    body: '882fe56d6fd20dbc2251613b2ebe5beb',
  },
  { name: 'VENDOR (empty)', payload: { type: 43, data: Buffer.alloc(0) }, body: '' },
  {
    name: 'TSi (IPv4 and IPv6 selectors)',
    payload: { type: 44, selectors: [cidrToTs('198.18.1.0/24'), cidrToTs('2001:db8:1::/48', 6, 443, 443)] },
    body:
      '02 000000' +
      '07 00 0010 0000 ffff c6120100 c61201ff' +
      '08 06 0028 01bb 01bb 20010db8000100000000000000000000 20010db80001ffffffffffffffffffff',
  },
  {
    name: 'TSr',
    payload: { type: 45, selectors: [cidrToTs('198.18.2.7')] },
    body: '01 000000 07 00 0010 0000 ffff c6120207 c6120207',
  },
  { name: 'CERTREQ (opaque)', payload: { type: 38, critical: false, body: hex('04 0102') }, body: '04 0102' },
  {
    name: 'CP (opaque, critical)',
    payload: { type: 47, critical: true, body: hex('01000000 0001 0000') },
    body: '01000000 0001 0000',
  },
  {
    name: 'unknown type 200 (not critical)',
    payload: { type: 200, critical: false, body: hex('deadbeef') },
    body: 'deadbeef',
  },
  {
    name: 'SK',
    payload: { type: 46, firstInner: PayloadType.IDi, data: fill(48, 0x55) },
    body: '55'.repeat(48),
  },
  {
    name: 'SKF (first fragment)',
    payload: {
      type: 53,
      firstInner: PayloadType.IDi,
      fragmentNumber: 1,
      totalFragments: 3,
      data: fill(40, 0x66),
    },
    body: `0001 0003 ${'66'.repeat(40)}`,
  },
  {
    name: 'SKF (later fragment)',
    payload: { type: 53, firstInner: 0, fragmentNumber: 3, totalFragments: 3, data: fill(40, 0x67) },
    body: `0003 0003 ${'67'.repeat(40)}`,
  },
];

t.test('generic payload header', async (t) => {
  t.same(encodeGenericHeader(PayloadType.NOTIFY, true, 12), hex('29 80 000c'));
  t.same(encodeGenericHeader(0, false, 65535), hex('00 00 ffff'));
  t.match(wireError(() => encodeGenericHeader(0, false, 3)).message, /length 3 out of range/);
  t.match(wireError(() => encodeGenericHeader(0, false, 65536)).message, /length 65536 out of range/);
  t.match(wireError(() => encodeGenericHeader(256, false, 4)).message, /next payload 256/);
});

t.test('every payload kind: object -> bytes -> object and bytes -> object -> bytes', async (t) => {
  for (const { name, payload, body } of SAMPLES) {
    const isSk = payload.type === 46 || payload.type === 53;
    const next = isSk && 'firstInner' in payload ? payload.firstInner : 0;
    const expected = wire(next, body, payload.critical ? 0x80 : 0);
    const { first, bytes } = encodePayloads([payload]);
    t.equal(first, payload.type, `${name}: first`);
    t.equal(bytes.toString('hex'), expected.toString('hex'), `${name}: encodes as laid out`);
    const decoded = decodePayloads(first, expected);
    t.strictSame(decoded, [payload], `${name}: decodes to the same object`);
    t.same(encodePayloads(decoded).bytes, expected, `${name}: re-encodes to the same bytes`);
  }
});

t.test('a chain of every kind links next-payload fields and ends in SK', async (t) => {
  const chain = [
    ...SAMPLES.filter((s) => s.payload.type !== 46 && s.payload.type !== 53),
    SAMPLES.find((s) => s.payload.type === 46)!,
  ];
  const payloads = chain.map((s) => s.payload);
  const { first, bytes } = encodePayloads(payloads);
  t.equal(first, PayloadType.SA);
  const nexts: number[] = [];
  for (let off = 0; off < bytes.length; off += bytes.readUInt16BE(off + 2)) nexts.push(bytes[off]!);
  t.strictSame(nexts, [...payloads.slice(1).map((p) => p.type), PayloadType.IDi]);
  const decoded = decodePayloads(first, bytes);
  t.strictSame(decoded, payloads);
  t.same(encodePayloads(decoded).bytes, bytes);
  t.strictSame(decodePayloads(0, Buffer.alloc(0)), [], 'an empty chain');
  t.strictSame(encodePayloads([]), { first: 0, bytes: Buffer.alloc(0) });
});

t.test('decoded buffers are copies', async (t) => {
  const buf = wire(0, '33'.repeat(16));
  const [nonce] = decodePayloads(PayloadType.NONCE, buf);
  buf.fill(0);
  t.same(nonce && 'data' in nonce ? nonce.data : null, fill(16, 0x33));
});

t.test('transform attributes: unknown TV and TLV ones are skipped', async (t) => {
  const sa = wire(0, '00 00 001e 01 01 00 01' + '00 00 0016 01 00 000c 8001 0005 0002 0002 abcd 800e 0080');
  t.strictSame(decodePayloads(PayloadType.SA, sa), [
    {
      type: 33,
      proposals: [
        { num: 1, protocolId: 1, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 12, keyLength: 128 }] },
      ],
    },
  ]);
});

t.test('critical bit: unknown payloads throw, known ones do not', async (t) => {
  const chain = Buffer.concat([wire(200, '33'.repeat(16)), wire(0, 'beef', 0x80)]);
  const err = wireError(() => decodePayloads(PayloadType.NONCE, chain));
  t.type(err, UnsupportedCriticalError);
  t.equal((err as UnsupportedCriticalError).payloadType, 200);
  t.equal(err.code, 'ERR_WIRE');
  t.strictSame(decodePayloads(PayloadType.CERTREQ, wire(0, '04', 0x80)), [
    { type: 38, critical: true, body: hex('04') },
  ]);
  t.strictSame(decodePayloads(3, wire(0, 'ab')), [{ type: 3, critical: false, body: hex('ab') }]);
  t.throws(() => decodePayloads(3, wire(0, 'ab', 0x80)), UnsupportedCriticalError);
});

const SA = PayloadType.SA;
const TS = PayloadType.TSi;
const prop = (head: string, transforms: string) => `${head} ${transforms}`;
const T_ENC = '00 00 0008 01 00 000c';

/** [name, first payload type, chain bytes, expected message] */
const BAD: [string, number, Buffer, RegExp][] = [
  ['header cut', 40, hex('0000'), /NONCE payload at offset 0: 2 bytes left for a 4-byte header/],
  ['length below 4', 40, hex('00000003'), /length 3 is below 4/],
  ['length past the end', 43, hex('00000010 00000000'), /length 16 exceeds the 8 bytes left/],
  ['bytes after the chain', 43, Buffer.concat([wire(0, 'ab'), hex('00')]), /1 bytes after the last payload/],
  ['chain runs off the end', 43, wire(43, 'ab'), /VENDOR payload at offset 5: 0 bytes left/],
  [
    'SK not last',
    46,
    Buffer.concat([wire(35, 'ab'), hex('00000004')]),
    /SK payload: must be last, 4 bytes follow/,
  ],
  ['SA empty', SA, wire(0, ''), /SA payload: proposal 1: 0 bytes left for the 8-byte header/],
  [
    'SA bad last',
    SA,
    wire(0, prop('01 00 0010 01 01 00 01', T_ENC)),
    /proposal 1: last-substructure value 1 is neither 0 nor 2/,
  ],
  [
    'SA proposal length 7',
    SA,
    wire(0, prop('00 00 0007 01 01 00 01', T_ENC)),
    /proposal 1: length 7 outside 8\.\.16/,
  ],
  [
    'SA proposal too long',
    SA,
    wire(0, prop('00 00 0064 01 01 00 01', T_ENC)),
    /proposal 1: length 100 outside 8\.\.16/,
  ],
  ['SA more announced', SA, wire(0, prop('02 00 0010 01 01 00 01', T_ENC)), /proposal 2: 0 bytes left/],
  [
    'SA trailing',
    SA,
    wire(0, `${prop('00 00 0010 01 01 00 01', T_ENC)} 00`),
    /1 bytes after the last proposal/,
  ],
  [
    'SA numbering gap',
    SA,
    wire(0, `${prop('02 00 0010 01 01 00 01', T_ENC)} ${prop('00 00 0010 03 01 00 01', T_ENC)}`),
    /proposal 2: number 3 does not follow 1/,
  ],
  ['SA number 0', SA, wire(0, prop('00 00 0010 00 01 00 01', T_ENC)), /number 0/],
  [
    'SA SPI too long',
    SA,
    wire(0, prop('00 00 0010 01 03 09 01', T_ENC)),
    /SPI size 9 exceeds proposal length 16/,
  ],
  ['SA no transforms', SA, wire(0, '00 00 0008 01 01 00 00'), /proposal 1: no transforms/],
  ['SA fewer transforms', SA, wire(0, prop('00 00 0010 01 01 00 02', T_ENC)), /1 transforms, 2 announced/],
  [
    'SA more transforms',
    SA,
    wire(0, prop('00 00 0018 01 01 00 01', `03 00 0008 01 00 000c ${T_ENC}`)),
    /transform 2: beyond the 1 announced/,
  ],
  [
    'transform bad last',
    SA,
    wire(0, prop('00 00 0010 01 01 00 01', '02 00 0008 01 00 000c')),
    /neither 0 nor 3/,
  ],
  [
    'transform length 7',
    SA,
    wire(0, prop('00 00 0010 01 01 00 01', '00 00 0007 01 00 000c')),
    /transform 1: length 7 outside 8\.\.8/,
  ],
  [
    'key length as TLV',
    SA,
    wire(0, prop('00 00 0016 01 01 00 01', '00 00 000e 01 00 000c 000e 0002 0100')),
    /\(ENCR 12\): key length attribute in TLV format/,
  ],
  [
    'key length twice',
    SA,
    wire(0, prop('00 00 0018 01 01 00 01', '00 00 0010 01 00 000c 800e 0080 800e 0100')),
    /key length attribute repeated/,
  ],
  [
    'attribute cut',
    SA,
    wire(0, prop('00 00 0012 01 01 00 01', '00 00 000a 01 00 000c 800e')),
    /2 bytes left for a 4-byte attribute/,
  ],
  [
    'TLV attribute overflows',
    SA,
    wire(0, prop('00 00 0014 01 01 00 01', '00 00 000c 01 00 000c 0001 0010')),
    /attribute 1 of 20 bytes, 4 left/,
  ],
  ['KE short', 34, wire(0, '001f00'), /KE payload: payload of 3 bytes is shorter than 4/],
  ['IDi short', 35, wire(0, '02'), /IDi payload: payload of 1 bytes is shorter than 4/],
  ['IDr short', 36, wire(0, ''), /IDr payload: payload of 0 bytes/],
  ['AUTH short', 39, wire(0, '0200'), /AUTH payload: payload of 2 bytes/],
  ['NONCE short', 40, wire(0, '00'.repeat(15)), /NONCE payload: nonce of 15 bytes outside 16\.\.256/],
  ['NONCE long', 40, wire(0, '00'.repeat(257)), /nonce of 257 bytes/],
  ['NOTIFY short', 41, wire(0, '0000'), /NOTIFY payload: payload of 2 bytes/],
  [
    'NOTIFY SPI size',
    41,
    wire(0, '03 09 4009 aabbccdd'),
    /NOTIFY payload: SPI size 9 exceeds payload length 8/,
  ],
  ['DELETE short', 42, wire(0, '0304'), /DELETE payload: payload of 2 bytes/],
  [
    'DELETE count',
    42,
    wire(0, '03 04 0002 aabbccdd 010203'),
    /2 SPIs of 4 bytes do not fill the 7 bytes present/,
  ],
  [
    'DELETE too few',
    42,
    wire(0, '03 04 0001 aabbccdd 01020304'),
    /1 SPIs of 4 bytes do not fill the 8 bytes/,
  ],
  ['DELETE size 0', 42, wire(0, '01 00 0001'), /SPI size 0 with 1 SPIs/],
  ['TS short', TS, wire(0, '01'), /TSi payload: payload of 1 bytes/],
  ['TS none', TS, wire(0, '00 000000'), /TSi payload: no selectors/],
  [
    'TS count',
    TS,
    wire(0, '02 000000 07 00 0010 0000 ffff c6120100 c61201ff'),
    /selector 2 of 2: 0 bytes left for a selector header/,
  ],
  [
    'TS type',
    45,
    wire(0, '01 000000 09 00 0010 0000 ffff c6120100 c61201ff'),
    /TSr payload: selector 1 of 1: unsupported TS type 9/,
  ],
  [
    'TS v4 length',
    TS,
    wire(0, '01 000000 07 00 0028 0000 ffff c6120100 c61201ff'),
    /length 40, type 7 needs 16/,
  ],
  [
    'TS v6 cut',
    TS,
    wire(0, `01 000000 08 00 0028 0000 ffff ${'00'.repeat(12)}`),
    /length 40 exceeds the 20 bytes left/,
  ],
  [
    'TS trailing',
    TS,
    wire(0, '01 000000 07 00 0010 0000 ffff c6120100 c61201ff 00'),
    /1 bytes after the last selector/,
  ],
  ['SKF short', 53, wire(0, '000100'), /SKF payload: payload of 3 bytes/],
  ['SKF number 0', 53, wire(35, '0000 0003'), /fragment number 0 outside 1\.\.3/],
  ['SKF number past total', 53, wire(35, '0004 0003'), /fragment number 4 outside 1\.\.3/],
];

t.test('malformed payloads throw WireError with a precise message', async (t) => {
  for (const [name, first, buf, message] of BAD) {
    t.match(wireError(() => decodePayloads(first, buf)).message, message, name);
  }
});

t.test('encode refuses what decode would refuse', async (t) => {
  const sk = SAMPLES.find((s) => s.payload.type === 46)!.payload;
  const nonce = { type: 40, data: fill(16, 1) } as const;
  const cases: [string, Payload[], RegExp][] = [
    ['SK not last', [sk, nonce], /SK payload: must be last, found at 1 of 2/],
    ['short nonce', [{ type: 40, data: fill(15, 1) }], /nonce of 15 bytes/],
    ['no proposals', [{ type: 33, proposals: [] }], /SA payload: no proposals/],
    [
      'no transforms',
      [{ type: 33, proposals: [{ num: 1, protocolId: 1, spi: Buffer.alloc(0), transforms: [] }] }],
      /proposal 1: 0 transforms/,
    ],
    [
      'key length range',
      [
        {
          type: 33,
          proposals: [
            {
              num: 1,
              protocolId: 1,
              spi: Buffer.alloc(0),
              transforms: [{ type: 1, id: 12, keyLength: 70000 }],
            },
          ],
        },
      ],
      /key length 70000/,
    ],
    [
      'DELETE SPI size',
      [{ type: 42, protocolId: 3, spiSize: 4, spis: [hex('0102')] }],
      /SPI of 2 bytes, SPI size is 4/,
    ],
    [
      'DELETE size 0',
      [{ type: 42, protocolId: 1, spiSize: 0, spis: [Buffer.alloc(0)] }],
      /SPI size 0 with 1 SPIs/,
    ],
    ['TS empty', [{ type: 44, selectors: [] }], /TSi payload: 0 selectors/],
    ['too big', [{ type: 43, data: Buffer.alloc(65532) }], /VENDOR payload: 65536 bytes exceed 65535/],
    [
      'opaque SK',
      [{ type: 46, critical: false, body: Buffer.alloc(4) }],
      /type 46 cannot be sent as an opaque payload/,
    ],
    ['opaque type range', [{ type: 300, critical: false, body: Buffer.alloc(4) }], /type 300 out of range/],
    ['KE group', [{ type: 34, group: 65536, data: Buffer.alloc(4) }], /DH group 65536/],
    [
      'NOTIFY type',
      [{ type: 41, protocolId: 0, spi: Buffer.alloc(0), notifyType: -1, data: Buffer.alloc(0) }],
      /notify type -1/,
    ],
    [
      'SKF numbers',
      [{ type: 53, firstInner: 0, fragmentNumber: 2, totalFragments: 1, data: Buffer.alloc(0) }],
      /fragment number 2 outside 1\.\.1/,
    ],
  ];
  for (const [name, payloads, message] of cases) {
    t.match(wireError(() => encodePayloads(payloads)).message, message, name);
  }
});
