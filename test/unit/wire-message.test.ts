import { readdirSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { WireError } from '../../src/errors.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage, peekVersion } from '../../src/ike/wire/message.js';
import { cidrToTs } from '../../src/ike/wire/ts.js';
import type { IkeMessage } from '../../src/ike/wire/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const FIXTURES = new URL('../../../test/fixtures/strongswan/', import.meta.url);

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('expected a WireError');
}

const header = {
  spiI: hex('0102030405060708'),
  spiR: hex('a1a2a3a4a5a6a7a8'),
  version: 0x20,
  exchange: ExchangeType.IKE_AUTH,
  flags: HeaderFlag.INITIATOR,
  messageId: 1,
};

/** Every payload kind in one message; codec-wise legal even if no exchange would carry them all. */
const kitchenSink: IkeMessage = {
  header,
  payloads: [
    {
      type: 33,
      proposals: [
        {
          num: 1,
          protocolId: 3,
          spi: hex('c0ffee01'),
          transforms: [
            { type: 1, id: 20, keyLength: 256 },
            { type: 5, id: 0 },
          ],
        },
        {
          num: 2,
          protocolId: 3,
          spi: hex('c0ffee01'),
          transforms: [
            { type: 1, id: 12, keyLength: 128 },
            { type: 3, id: 12 },
          ],
        },
      ],
    },
    { type: 34, group: 14, data: Buffer.alloc(256, 7) },
    { type: 35, idType: 2, data: Buffer.from('a.tsw.test') },
    { type: 36, idType: 5, data: hex('20010db8000000000000000000000001') },
    { type: 39, method: 2, data: Buffer.alloc(32, 9) },
    { type: 40, data: Buffer.alloc(32, 3) },
    {
      type: 41,
      protocolId: 0,
      spi: Buffer.alloc(0),
      notifyType: NotifyType.INITIAL_CONTACT,
      data: Buffer.alloc(0),
    },
    { type: 41, protocolId: 3, spi: hex('c0ffee02'), notifyType: NotifyType.REKEY_SA, data: Buffer.alloc(0) },
    { type: 42, protocolId: 3, spiSize: 4, spis: [hex('c0ffee03'), hex('c0ffee04')] },
    { type: 43, data: Buffer.from('twinsec') },
    { type: 44, selectors: [cidrToTs('198.18.1.0/24'), cidrToTs('2001:db8:1::/48', 17, 500, 500)] },
    { type: 45, selectors: [cidrToTs('198.18.2.0/24')] },
    { type: 37, critical: false, body: hex('04 3082') },
    { type: 47, critical: false, body: hex('01000000 0001 0000') },
    { type: 48, critical: false, body: hex('01 07 0005 01') },
    { type: 46, firstInner: PayloadType.IDi, data: Buffer.alloc(64, 0x5a) },
  ],
};

const fragment: IkeMessage = {
  header,
  payloads: [
    {
      type: 53,
      firstInner: PayloadType.IDi,
      fragmentNumber: 1,
      totalFragments: 2,
      data: Buffer.alloc(40, 1),
    },
  ],
};

const captures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .map((f) => ({ name: f, buf: hex(readFileSync(new URL(f, FIXTURES), 'utf8')) }));

const corpus = [
  { name: 'kitchen sink', buf: encodeMessage(kitchenSink) },
  { name: 'fragment', buf: encodeMessage(fragment) },
  { name: 'empty INFORMATIONAL', buf: encodeMessage({ header, payloads: [] }) },
  ...captures,
];

t.test('message round trips both ways', async (t) => {
  for (const m of [kitchenSink, fragment, { header, payloads: [] }]) {
    const buf = encodeMessage(m);
    t.equal(buf.readUInt32BE(24), buf.length, 'length field');
    t.equal(buf[16], m.payloads[0]?.type ?? 0, 'next payload in the header');
    const decoded = decodeMessage(buf);
    t.strictSame(decoded, m);
    t.same(encodeMessage(decoded), buf);
  }
});

t.test('version dispatch', async (t) => {
  const buf = encodeMessage(kitchenSink);
  t.equal(peekVersion(buf), 2);
  const v1 = Buffer.from(buf);
  v1[17] = 0x10;
  t.equal(peekVersion(v1), 1);
  t.match(wireError(() => decodeMessage(v1)).message, /major version 1 is not 2/);
  const minor = Buffer.from(buf);
  minor[17] = 0x21;
  t.equal(decodeMessage(minor).header.version, 0x21, 'a higher minor version is accepted');
  t.match(
    wireError(() => peekVersion(buf.subarray(0, 20))).message,
    /20 bytes is shorter than the 28-byte header/,
  );
});

t.test('bytes beyond the length field are rejected', async (t) => {
  const buf = Buffer.concat([encodeMessage(kitchenSink), hex('00')]);
  t.match(wireError(() => decodeMessage(buf)).message, /1 bytes beyond the length field/);
});

t.test('every truncated prefix throws WireError', async (t) => {
  for (const { name, buf } of corpus) {
    let bad = 0;
    for (let n = 0; n < buf.length; n++) {
      const cut = Buffer.from(buf.subarray(0, n));
      // With the length field patched the cut reaches the payload parser instead of the header check.
      if (n >= 28) cut.writeUInt32BE(n, 24);
      try {
        decodeMessage(cut);
        bad++;
      } catch (e) {
        if (!(e instanceof WireError)) bad++;
      }
    }
    t.equal(bad, 0, `${name}: ${buf.length} prefixes`);
  }
});

/** mulberry32: small, seedable, good enough to pick bytes. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Decoding either throws WireError, or yields a message that re-encodes and decodes to itself. */
function check(buf: Buffer): string | null {
  let m: IkeMessage;
  try {
    m = decodeMessage(buf);
  } catch (e) {
    return e instanceof WireError
      ? null
      : `threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  }
  try {
    return isDeepStrictEqual(decodeMessage(encodeMessage(m)), m) ? null : 'not stable under re-encoding';
  } catch (e) {
    return `re-encoding threw ${(e as Error).message}`;
  }
}

t.test('fuzz: byte flips, splices and garbage only ever throw WireError', async (t) => {
  const seed = 0x7475736b;
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const failures: string[] = [];
  const run = (kind: string, i: number, buf: Buffer) => {
    const why = check(buf);
    if (why && failures.length < 5) failures.push(`${kind} #${i} (${buf.toString('hex')}): ${why}`);
  };
  for (let i = 0; i < 4000; i++) {
    const { buf: orig } = corpus[int(corpus.length)]!;
    const buf = Buffer.from(orig);
    // Mostly flips past the header, where the payload parser gets exercised.
    for (let k = 1 + int(4); k > 0; k--) buf[rand() < 0.9 ? 28 + int(buf.length - 28) : int(28)] = int(256);
    run('flip', i, buf);
  }
  for (let i = 0; i < 1500; i++) {
    const { buf: orig } = corpus[int(corpus.length)]!;
    const at = 28 + int(orig.length - 28);
    const cut = int(16);
    const insert = Buffer.from(Array.from({ length: int(16) }, () => int(256)));
    const buf = Buffer.concat([orig.subarray(0, at), insert, orig.subarray(Math.min(orig.length, at + cut))]);
    buf.writeUInt32BE(buf.length, 24);
    run('splice', i, buf);
  }
  for (let i = 0; i < 1500; i++) {
    const buf = Buffer.from(Array.from({ length: int(300) }, () => int(256)));
    if (buf.length >= 28 && rand() < 0.8) {
      buf[16] = 33 + int(21);
      buf[17] = 0x20;
      buf.writeUInt32BE(buf.length, 24);
    }
    run('garbage', i, buf);
  }
  t.strictSame(failures, [], `seed ${seed}: 7000 inputs`);
});
