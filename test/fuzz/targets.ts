/**
 * Fuzz targets for the wire decoders, shared by the short CI run (test/unit/fuzz.test.ts) and the
 * long runs (`npm run fuzz`, bench/fuzz.ts). Inputs are real strongSwan messages from the captures
 * in test/fixtures/strongswan (the corpus) mutated by a seeded generator, so any failure replays.
 *
 * The contract each target checks: a decoder either returns or throws a TwinsecError (WireError,
 * IkeError, CryptoError): anything else (a TypeError, a RangeError from a Buffer read, a hang) is a
 * bug. Whatever decodes also re-encodes to bytes that decode to the same thing (mirrored codecs).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { TwinsecError } from '../../src/errors.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import { decodeMessageV1, decodePayloadsV1, encodeMessageV1 } from '../../src/ike/wire/v1/message.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/strongswan/', import.meta.url));

function hexFiles(dir: string, ext: string): Buffer[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => Buffer.from(readFileSync(dir + f, 'utf8').trim(), 'hex'));
}

/** The seeds: every captured IKEv2 and IKEv1 message, and the decrypted IKEv1 bodies. */
export function corpus(): { v2: Buffer[]; v1: Buffer[]; v1Plain: { first: number; plain: Buffer }[] } {
  const v1 = hexFiles(`${FIXTURES}v1/`, '.hex');
  const v1Plain: { first: number; plain: Buffer }[] = [];
  for (const f of readdirSync(`${FIXTURES}v1/`)
    .filter((x) => x.endsWith('.plain'))
    .sort()) {
    const plain = Buffer.from(readFileSync(`${FIXTURES}v1/${f}`, 'utf8').trim(), 'hex');
    const msg = Buffer.from(
      readFileSync(`${FIXTURES}v1/${f.replace(/\.plain$/, '.hex')}`, 'utf8').trim(),
      'hex',
    );
    v1Plain.push({ first: msg[16]!, plain });
  }
  return { v2: hexFiles(FIXTURES, '.hex'), v1, v1Plain };
}

/** xorshift32: fast, seeded, good enough to pick mutations. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** One mutation of `d`: bit flips, byte sets at length fields, truncation, splices, growth. */
export function mutate(d: Buffer, r: () => number, other: Buffer): Buffer {
  const at = (n: number) => Math.floor(r() * n);
  const x = Buffer.from(d);
  const rounds = 1 + at(3);
  let out = x;
  for (let i = 0; i < rounds && out.length > 0; i++) {
    switch (at(8)) {
      case 0:
        out[at(out.length)]! ^= 1 << at(8);
        break;
      case 1: // an interesting byte anywhere (lengths, types, counts)
        out[at(out.length)] = [0, 1, 0x7f, 0x80, 0xff, 4, 8, 28][at(8)]!;
        break;
      case 2: // a 16-bit field (payload lengths sit at even offsets after the header)
        if (out.length > 2)
          out.writeUInt16BE([0, 1, 3, 4, 0xffff, out.length, at(0x10000)][at(7)]!, at(out.length - 1));
        break;
      case 3:
        out = out.subarray(0, at(out.length + 1));
        break;
      case 4: // the header's length field
        if (out.length >= 28) out.writeUInt32BE([0, 28, out.length, out.length + 4, at(0x10000)][at(5)]!, 24);
        break;
      case 5: // splice in another message's tail
        out = Buffer.concat([out.subarray(0, at(out.length)), other.subarray(at(other.length))]);
        break;
      case 6:
        out = Buffer.concat([out, Buffer.alloc(1 + at(64), at(256))]);
        break;
      default: // next-payload type bytes at random offsets
        out[at(out.length)] = at(256);
    }
  }
  return out;
}

export interface Outcome {
  decoded: number;
  refused: number;
}

/** A failure: the input and what went wrong, for the corpus of regressions. */
export class FuzzFailure extends Error {
  constructor(
    readonly target: string,
    readonly input: Buffer,
    readonly cause: unknown,
  ) {
    super(
      `${target}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)} on ${input.toString('hex')}`,
    );
  }
}

function guard(target: string, input: Buffer, fn: () => void, o: Outcome): void {
  try {
    fn();
    o.decoded++;
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    if (err instanceof TwinsecError) {
      o.refused++;
      return;
    }
    throw new FuzzFailure(target, input, err);
  }
}

export type Target = (input: Buffer, o: Outcome) => void;

export const TARGETS: Record<string, { seeds: () => Buffer[]; run: Target }> = {
  /** IKEv2 header and payload chain (RFC 7296 §3), then the mirror: encode, decode, same. */
  'ikev2-decode': {
    seeds: () => corpus().v2,
    run: (input, o) =>
      guard(
        'ikev2-decode',
        input,
        () => {
          const m = decodeMessage(input);
          const again = decodeMessage(encodeMessage(m));
          if (!isDeepStrictEqual(again, m))
            throw new FuzzFailure('ikev2-decode', input, new Error('not mirrored'));
        },
        o,
      ),
  },
  /** ISAKMP header and clear payload chain (RFC 2408 §3), then the mirror. */
  'ikev1-decode': {
    seeds: () => corpus().v1,
    run: (input, o) =>
      guard(
        'ikev1-decode',
        input,
        () => {
          const m = decodeMessageV1(input);
          if ('payloads' in m) {
            const again = decodeMessageV1(encodeMessageV1(m));
            if (!isDeepStrictEqual(again, m))
              throw new FuzzFailure('ikev1-decode', input, new Error('not mirrored'));
          }
        },
        o,
      ),
  },
  /** Decrypted IKEv1 bodies (padding after the chain): the first payload type is the input's first byte. */
  'ikev1-plain': {
    seeds: () => corpus().v1Plain.map((p) => Buffer.concat([Buffer.from([p.first]), p.plain])),
    run: (input, o) =>
      guard('ikev1-plain', input, () => void decodePayloadsV1(input[0] ?? 0, input.subarray(1)), o),
  },
};

/** Runs `n` mutated inputs through a target; throws FuzzFailure on the first contract breach. */
export function fuzz(name: string, n: number, seed: number): Outcome {
  const t = TARGETS[name]!;
  const seeds = t.seeds();
  const r = prng(seed);
  const o: Outcome = { decoded: 0, refused: 0 };
  for (const s of seeds) t.run(s, o);
  for (let i = 0; i < n; i++) {
    const base = seeds[Math.floor(r() * seeds.length)]!;
    const other = seeds[Math.floor(r() * seeds.length)]!;
    t.run(mutate(base, r, other), o);
  }
  return o;
}
