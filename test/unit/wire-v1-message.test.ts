/**
 * Whole ISAKMP messages: the shared header with major version 1, the E flag deciding between
 * clear payloads and opaque ciphertext, padding after decryption, the raw payload view, and a
 * mutation fuzz over valid messages in which only WireError may ever be thrown.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { WireError } from '../../src/errors.js';
import { ExchangeTypeV1, HeaderFlagV1, NotifyTypeV1 } from '../../src/ike/wire/v1/index.js';
import {
  decodeMessageV1,
  decodePayloadsV1,
  encodeMessageV1,
  isEncryptedV1,
  rawPayloadsV1,
} from '../../src/ike/wire/v1/message.js';
import { encodePayloadsV1 } from '../../src/ike/wire/v1/payloads.js';
import type { HeaderV1, MessageV1, PayloadV1 } from '../../src/ike/wire/v1/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('expected a WireError');
}

const header = (flags = 0, exchange = ExchangeTypeV1.INFORMATIONAL): HeaderV1 => ({
  spiI: hex('0102030405060708'),
  spiR: hex('1112131415161718'),
  version: 0x10,
  exchange,
  flags,
  messageId: 0xdeadbeef,
});
const dpd: PayloadV1[] = [
  { type: 8, data: Buffer.alloc(20, 0xaa) },
  {
    type: 11,
    doi: 1,
    protocolId: 1,
    spi: hex('01020304050607081112131415161718'),
    notifyType: NotifyTypeV1.R_U_THERE,
    data: hex('00000001'),
  },
];

t.test('a message in clear: header fields, next payload and length', async (t) => {
  const m: MessageV1 = { header: header(), payloads: dpd };
  const buf = encodeMessageV1(m);
  t.equal(buf.subarray(0, 16).toString('hex'), '01020304050607081112131415161718', 'cookies');
  t.strictSame([buf[16], buf[17], buf[18], buf[19]], [8, 0x10, 5, 0], 'next, version, exchange, flags');
  t.equal(buf.readUInt32BE(20), 0xdeadbeef, 'message ID');
  t.equal(buf.readUInt32BE(24), buf.length, 'length');
  t.equal(buf.length, 28 + 24 + 32);
  t.strictSame(decodeMessageV1(buf), m);
  t.strictSame(encodeMessageV1({ header: header(), payloads: [] }).length, 28, 'no payloads');
});

t.test('an encrypted message: ciphertext opaque, decoded after decryption with its padding', async (t) => {
  const { first, bytes } = encodePayloadsV1(dpd);
  t.equal(bytes.length, 56, 'encode adds no padding');
  const padded = Buffer.concat([bytes, Buffer.alloc(8, 0x07)]);
  const m: MessageV1 = { header: header(HeaderFlagV1.ENCRYPTION), firstPayload: first, ciphertext: padded };
  const buf = encodeMessageV1(m);
  t.equal(buf[16], 8, 'next payload is the first inner one');
  t.equal(buf.readUInt32BE(24), 28 + 64);
  const back = decodeMessageV1(buf);
  t.ok(isEncryptedV1(back));
  t.strictSame(back, m);
  t.strictSame(decodePayloadsV1(first, padded), dpd, 'padding after next payload 0 is ignored');
  t.strictSame(decodePayloadsV1(first, bytes), dpd, 'and so is its absence');
  t.strictSame(decodePayloadsV1(0, Buffer.alloc(16)), [], 'an empty chain in one block of padding');
  t.match(wireError(() => decodePayloadsV1(first, bytes.subarray(0, 40))).message, /exceeds/);
});

t.test('the E flag must match what the message holds', async (t) => {
  t.match(
    wireError(() => encodeMessageV1({ header: header(HeaderFlagV1.ENCRYPTION), payloads: dpd })).message,
    /E flag set on clear payloads/,
  );
  t.match(
    wireError(() => encodeMessageV1({ header: header(), firstPayload: 8, ciphertext: Buffer.alloc(16) }))
      .message,
    /E flag clear on ciphertext/,
  );
  // Commit and authentication-only flags pass through untouched.
  const flags = HeaderFlagV1.COMMIT | HeaderFlagV1.AUTHENTICATION_ONLY;
  t.equal(decodeMessageV1(encodeMessageV1({ header: header(flags), payloads: dpd })).header.flags, flags);
});

t.test('header checks', async (t) => {
  const buf = encodeMessageV1({ header: header(), payloads: dpd });
  const v2 = Buffer.from(buf);
  v2[17] = 0x20;
  t.match(wireError(() => decodeMessageV1(v2)).message, /major version 2 is not 1/);
  const minor = Buffer.from(buf);
  minor[17] = 0x11;
  t.equal(decodeMessageV1(minor).header.version, 0x11, 'the minor version is kept');
  t.match(wireError(() => decodeMessageV1(buf.subarray(0, 27))).message, /shorter than the 28-byte header/);
  const long = Buffer.from(buf);
  long.writeUInt32BE(buf.length + 1, 24);
  t.match(wireError(() => decodeMessageV1(long)).message, /exceeds the/);
  const short = Buffer.from(buf);
  short.writeUInt32BE(buf.length - 1, 24);
  t.match(wireError(() => decodeMessageV1(short)).message, /1 bytes beyond the length field/);
  t.match(
    wireError(() => decodeMessageV1(Buffer.concat([buf, hex('00')]))).message,
    /beyond the length field/,
  );
  const truncated = buf.subarray(0, buf.length - 4);
  const fixed = Buffer.from(truncated);
  fixed.writeUInt32BE(fixed.length, 24);
  t.match(wireError(() => decodeMessageV1(fixed)).message, /exceeds/);
  const badSpi = { header: { ...header(), spiI: Buffer.alloc(4) }, payloads: [] };
  t.match(wireError(() => encodeMessageV1(badSpi)).message, /initiator SPI is 4 bytes/);
});

t.test('raw payloads: bytes as on the wire, copies', async (t) => {
  const { first, bytes } = encodePayloadsV1(dpd);
  const raw = rawPayloadsV1(first, bytes);
  t.strictSame(
    raw.map((r) => [r.type, r.next, r.raw.length, r.body.length]),
    [
      [8, 11, 24, 20],
      [11, 0, 32, 28],
    ],
  );
  t.equal(Buffer.concat(raw.map((r) => r.raw)).toString('hex'), bytes.toString('hex'));
  const source = Buffer.from(bytes);
  const kept = rawPayloadsV1(first, source)[0]!.body;
  source.fill(0);
  t.equal(kept[0], 0xaa, 'not a view of the datagram');
  t.match(wireError(() => rawPayloadsV1(first, Buffer.concat([bytes, hex('00')]))).message, /after the last/);
  t.equal(rawPayloadsV1(first, Buffer.concat([bytes, hex('00')]), true).length, 2, 'padded');
});

// ---- Fuzz: mutations of valid messages only ever throw WireError, and what decodes is stable ----

const DIR = new URL('../../../test/fixtures/strongswan/v1/', import.meta.url);
const read = (f: string) => Buffer.from(readFileSync(new URL(f, DIR), 'utf8').trim(), 'hex');
/** Clear messages as captured, and the decrypted bodies re-wrapped as clear messages. */
const corpus: Buffer[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .flatMap((f) => {
    const buf = read(f);
    if ((buf[19]! & HeaderFlagV1.ENCRYPTION) === 0) return [buf];
    const m = decodeMessageV1(buf);
    if (!isEncryptedV1(m)) return [];
    const payloads = decodePayloadsV1(m.firstPayload, read(f.replace(/\.hex$/, '.plain')));
    return [buf, encodeMessageV1({ header: { ...m.header, flags: 0 }, payloads })];
  });

/** Every payload type the codec knows, and one it does not. */
const TYPES = [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 20, 21, 130, 131, 99];

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const describe = (e: unknown) => `threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;

/** As after decryption: the body after the header is a chain followed by any padding. */
function checkPadded(buf: Buffer): string | null {
  if (buf.length < 28) return null;
  let payloads: PayloadV1[];
  try {
    payloads = decodePayloadsV1(buf[16]!, buf.subarray(28));
  } catch (e) {
    return e instanceof WireError ? null : describe(e);
  }
  try {
    const { first, bytes } = encodePayloadsV1(payloads);
    return isDeepStrictEqual(decodePayloadsV1(first, bytes), payloads) ? null : 'padded chain not stable';
  } catch (e) {
    return `re-encoding padded ${describe(e)}`;
  }
}

function check(buf: Buffer): string | null {
  let m: MessageV1;
  try {
    m = decodeMessageV1(buf);
  } catch (e) {
    return e instanceof WireError ? null : describe(e);
  }
  try {
    return isDeepStrictEqual(decodeMessageV1(encodeMessageV1(m)), m) ? null : 'not stable under re-encoding';
  } catch (e) {
    return `re-encoding ${describe(e)}`;
  }
}

t.test('fuzz: byte flips, splices and garbage only ever throw WireError', async (t) => {
  const seed = 0x69736b31;
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const failures: string[] = [];
  const run = (kind: string, i: number, buf: Buffer) => {
    const why = check(buf) ?? checkPadded(buf);
    if (why && failures.length < 5) failures.push(`${kind} #${i} (${buf.toString('hex')}): ${why}`);
  };
  t.ok(corpus.length >= 25, `${corpus.length} messages to mutate`);
  for (let i = 0; i < 5000; i++) {
    const buf = Buffer.from(corpus[int(corpus.length)]!);
    // Mostly past the header, where the payload and SA parsers get exercised.
    for (let k = 1 + int(4); k > 0; k--) buf[rand() < 0.9 ? 28 + int(buf.length - 28) : int(28)] = int(256);
    run('flip', i, buf);
  }
  for (let i = 0; i < 2000; i++) {
    const orig = corpus[int(corpus.length)]!;
    const at = 28 + int(orig.length - 28);
    const insert = Buffer.from(Array.from({ length: int(16) }, () => int(256)));
    const buf = Buffer.concat([
      orig.subarray(0, at),
      insert,
      orig.subarray(Math.min(orig.length, at + int(16))),
    ]);
    buf.writeUInt32BE(buf.length, 24);
    run('splice', i, buf);
  }
  for (let i = 0; i < 2000; i++) {
    const buf = Buffer.from(Array.from({ length: int(300) }, () => int(256)));
    if (buf.length >= 28 && rand() < 0.8) {
      buf[16] = TYPES[int(TYPES.length)]!;
      buf[17] = 0x10;
      buf[19] &= ~HeaderFlagV1.ENCRYPTION;
      buf.writeUInt32BE(buf.length, 24);
    }
    run('garbage', i, buf);
  }
  // Well-formed chains of random payloads with random short bodies: every decoder's own checks.
  for (let i = 0; i < 4000; i++) {
    const parts = Array.from({ length: 1 + int(4) }, () => ({
      type: TYPES[int(TYPES.length)]!,
      body: Buffer.from(Array.from({ length: int(40) }, () => int(256))),
    }));
    const chain = parts.map((p, k) => {
      const head = Buffer.from([parts[k + 1]?.type ?? 0, 0, 0, 0]);
      head.writeUInt16BE(4 + p.body.length, 2);
      return Buffer.concat([head, p.body]);
    });
    const buf = Buffer.concat([Buffer.alloc(28), ...chain, Buffer.alloc(rand() < 0.5 ? int(16) : 0)]);
    buf[16] = parts[0]!.type;
    buf[17] = 0x10;
    buf.writeUInt32BE(buf.length, 24);
    run('chain', i, buf);
  }
  t.strictSame(failures, [], `seed ${seed}: 13000 inputs`);
});
