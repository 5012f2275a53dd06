/**
 * IKEv2 payloads (RFC 7296 §3.2 - §3.14, RFC 7383 §2.5). Each structure has an encodeX/decodeX
 * pair reading top to bottom in the same field order; decoders check every length before reading
 * and throw WireError naming the payload, field and numbers. No state, no I/O; decoded buffers are
 * copies, so callers may keep them after the datagram buffer is reused.
 */
import { WireError } from '../../errors.js';
import {
  ATTR_FORMAT_TV,
  CRITICAL_BIT,
  KEY_LENGTH_ATTR,
  MORE_PROPOSALS,
  MORE_TRANSFORMS,
  PayloadType,
  TransformType,
} from './constants.js';
import { decodeSelector, encodeSelector, SELECTOR_LENGTH } from './ts.js';
import type {
  AuthPayload,
  DeletePayload,
  IdPayload,
  KePayload,
  NoncePayload,
  NotifyPayload,
  Payload,
  Proposal,
  SaPayload,
  SkfPayload,
  SkPayload,
  TrafficSelector,
  Transform,
  TsPayload,
  UnknownPayload,
} from './types.js';

/** An unknown payload with the critical bit set: the caller answers UNSUPPORTED_CRITICAL_PAYLOAD. */
export class UnsupportedCriticalError extends WireError {
  readonly payloadType: number;
  constructor(payloadType: number) {
    super(`unsupported critical payload type ${payloadType}`);
    this.payloadType = payloadType;
  }
}

const GENERIC_HEADER_LENGTH = 4;
const MAX_PAYLOAD_LENGTH = 0xffff;
const NONCE_MIN = 16;
const NONCE_MAX = 256;
/** Defined by RFC 7296 but handed on as opaque bodies: known, so their critical bit is no error. */
const OPAQUE_KNOWN = new Set<number>([
  PayloadType.CERT,
  PayloadType.CERTREQ,
  PayloadType.CP,
  PayloadType.EAP,
]);

const nameOf = (type: number): string => PayloadType[type] ?? `type ${type}`;
const copy = (b: Buffer): Buffer => Buffer.from(b);

function fail(where: string, what: string): never {
  throw new WireError(`${where}: ${what}`);
}

function checkUint(where: string, field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) fail(where, `${field} ${v} out of range 0..${max}`);
}

function need(where: string, body: Buffer, min: number, field = 'payload'): void {
  if (body.length < min) fail(where, `${field} of ${body.length} bytes is shorter than ${min}`);
}

// ---- Generic payload header and the payload chain ----

export function encodeGenericHeader(next: number, critical: boolean, length: number): Buffer {
  checkUint('payload header', 'next payload', next, 0xff);
  if (!Number.isInteger(length) || length < GENERIC_HEADER_LENGTH || length > MAX_PAYLOAD_LENGTH) {
    fail('payload header', `length ${length} out of range 4..65535`);
  }
  const out = Buffer.alloc(GENERIC_HEADER_LENGTH);
  out.writeUInt8(next, 0);
  out.writeUInt8(critical ? CRITICAL_BIT : 0, 1);
  out.writeUInt16BE(length, 2);
  return out;
}

const isUnknown = (p: Payload): p is UnknownPayload => 'body' in p;
const isEncrypted = (p: Payload): p is SkPayload | SkfPayload =>
  !isUnknown(p) && (p.type === PayloadType.SK || p.type === PayloadType.SKF);

/** Chains the next-payload fields; an SK/SKF payload ends the chain with its inner type instead. */
export function encodePayloads(payloads: Payload[]): { first: number; bytes: Buffer } {
  const parts: Buffer[] = [];
  payloads.forEach((p, i) => {
    const last = i === payloads.length - 1;
    if (isEncrypted(p) && !last)
      fail(`${nameOf(p.type)} payload`, `must be last, found at ${i + 1} of ${payloads.length}`);
    const body = encodeBody(p);
    const length = GENERIC_HEADER_LENGTH + body.length;
    if (length > MAX_PAYLOAD_LENGTH) fail(`${nameOf(p.type)} payload`, `${length} bytes exceed 65535`);
    const next = isEncrypted(p) ? p.firstInner : last ? PayloadType.NONE : payloads[i + 1]!.type;
    parts.push(encodeGenericHeader(next, p.critical ?? false, length), body);
  });
  return { first: payloads[0]?.type ?? PayloadType.NONE, bytes: Buffer.concat(parts) };
}

/** Decodes the chain starting with type `first`; `buf` must hold exactly the chain. */
export function decodePayloads(first: number, buf: Buffer): Payload[] {
  const out: Payload[] = [];
  let type = first;
  let off = 0;
  while (type !== PayloadType.NONE) {
    const where = `${nameOf(type)} payload at offset ${off}`;
    if (buf.length - off < GENERIC_HEADER_LENGTH)
      fail(where, `${buf.length - off} bytes left for a 4-byte header`);
    const next = buf.readUInt8(off);
    const critical = (buf.readUInt8(off + 1) & CRITICAL_BIT) !== 0;
    const length = buf.readUInt16BE(off + 2);
    if (length < GENERIC_HEADER_LENGTH) fail(where, `length ${length} is below 4`);
    if (length > buf.length - off) fail(where, `length ${length} exceeds the ${buf.length - off} bytes left`);
    const body = buf.subarray(off + GENERIC_HEADER_LENGTH, off + length);
    off += length;
    out.push(decodeBody(type, next, critical, body));
    if (type === PayloadType.SK || type === PayloadType.SKF) {
      if (off !== buf.length)
        fail(`${nameOf(type)} payload`, `must be last, ${buf.length - off} bytes follow`);
      return out;
    }
    type = next;
  }
  if (off !== buf.length) fail('payload chain', `${buf.length - off} bytes after the last payload`);
  return out;
}

type Known = Exclude<Payload, UnknownPayload>;
/** The payload interface whose `type` admits K (IdPayload for both 35 and 36). */
type Of<K extends number> = Known extends infer P
  ? P extends Known
    ? K extends P['type']
      ? P
      : never
    : never
  : never;
interface Codec<P extends Known> {
  encode(p: P): Buffer;
  /** `next` is the generic header's next-payload field, the first inner type for SK/SKF. */
  decode(body: Buffer, type: P['type'], next: number): P;
}

/** The payloads the codec interprets; every other type stays an opaque UnknownPayload. */
const CODECS: { [K in Known['type']]: Codec<Of<K>> } = {
  33: { encode: encodeSa, decode: decodeSa },
  34: { encode: encodeKe, decode: decodeKe },
  35: { encode: encodeId, decode: decodeId },
  36: { encode: encodeId, decode: decodeId },
  39: { encode: encodeAuth, decode: decodeAuth },
  40: { encode: encodeNonce, decode: decodeNonce },
  41: { encode: encodeNotify, decode: decodeNotify },
  42: { encode: encodeDelete, decode: decodeDelete },
  43: { encode: (p) => copy(p.data), decode: (body) => ({ type: 43, data: copy(body) }) },
  44: { encode: encodeTs, decode: decodeTs },
  45: { encode: encodeTs, decode: decodeTs },
  46: {
    encode: (p) => copy(p.data),
    decode: (body, _, next) => ({ type: 46, firstInner: next, data: copy(body) }),
  },
  53: { encode: encodeSkf, decode: decodeSkf },
};

const codecOf = (type: number): Codec<Known> | undefined =>
  Object.hasOwn(CODECS, type) ? (CODECS[type as Known['type']] as Codec<Known>) : undefined;

function encodeBody(p: Payload): Buffer {
  if (!isUnknown(p)) return codecOf(p.type)!.encode(p);
  checkUint('payload', 'type', p.type, 0xff);
  if (p.type === PayloadType.NONE || p.type === PayloadType.SK || p.type === PayloadType.SKF) {
    fail('payload', `type ${p.type} cannot be sent as an opaque payload`);
  }
  return copy(p.body);
}

function decodeBody(type: number, next: number, critical: boolean, body: Buffer): Payload {
  const codec = codecOf(type);
  if (!codec) {
    if (critical && !OPAQUE_KNOWN.has(type)) throw new UnsupportedCriticalError(type);
    return { type, critical, body: copy(body) };
  }
  const p = codec.decode(body, type as Known['type'], next);
  return critical ? { ...p, critical } : p;
}

// ---- SA payload, proposals and transforms (RFC 7296 §3.3) ----

function encodeSa(p: SaPayload): Buffer {
  if (p.proposals.length === 0) fail('SA payload', 'no proposals');
  return Buffer.concat(p.proposals.map((pr, i) => encodeProposal(pr, i === p.proposals.length - 1)));
}

function decodeSa(body: Buffer): SaPayload {
  const proposals: Proposal[] = [];
  for (const [i, part] of splitSubstructures('SA payload', 'proposal', body, MORE_PROPOSALS).entries()) {
    const proposal = decodeProposal(`SA payload: proposal ${i + 1}`, part);
    const prev = proposals[i - 1];
    if (prev && proposal.num !== prev.num + 1) {
      fail(`SA payload: proposal ${i + 1}`, `number ${proposal.num} does not follow ${prev.num}`);
    }
    proposals.push(proposal);
  }
  return { type: 33, proposals };
}

/**
 * Cuts a run of proposals or transforms apart. Each starts with last-substructure (1 octet,
 * 0 or `more`), reserved (1) and length (2); `max` bounds how many the parent announced.
 */
function splitSubstructures(where: string, what: string, buf: Buffer, more: number, max = 255): Buffer[] {
  const parts: Buffer[] = [];
  for (let off = 0, last = more; last === more; ) {
    const at = `${where}: ${what} ${parts.length + 1}`;
    if (parts.length === max) fail(at, `beyond the ${max} announced`);
    if (buf.length - off < 8) fail(at, `${buf.length - off} bytes left for the 8-byte header`);
    last = buf.readUInt8(off);
    const length = buf.readUInt16BE(off + 2);
    if (last !== 0 && last !== more) fail(at, `last-substructure value ${last} is neither 0 nor ${more}`);
    if (length < 8 || length > buf.length - off) fail(at, `length ${length} outside 8..${buf.length - off}`);
    parts.push(buf.subarray(off, off + length));
    off += length;
    if (last === 0 && off !== buf.length) fail(where, `${buf.length - off} bytes after the last ${what}`);
  }
  return parts;
}

function encodeProposal(p: Proposal, last: boolean): Buffer {
  const where = `SA payload: proposal ${p.num}`;
  checkUint(where, 'number', p.num, 0xff);
  checkUint(where, 'protocol ID', p.protocolId, 0xff);
  checkUint(where, 'SPI size', p.spi.length, 0xff);
  if (p.transforms.length === 0 || p.transforms.length > 0xff)
    fail(where, `${p.transforms.length} transforms`);
  const transforms = p.transforms.map((t, i) => encodeTransform(where, t, i === p.transforms.length - 1));
  const head = Buffer.alloc(8);
  head.writeUInt8(last ? 0 : MORE_PROPOSALS, 0);
  head.writeUInt8(p.num, 4);
  head.writeUInt8(p.protocolId, 5);
  head.writeUInt8(p.spi.length, 6);
  head.writeUInt8(p.transforms.length, 7);
  const out = Buffer.concat([head, p.spi, ...transforms]);
  if (out.length > MAX_PAYLOAD_LENGTH) fail(where, `${out.length} bytes exceed 65535`);
  out.writeUInt16BE(out.length, 2);
  return out;
}

/** `buf` is the whole proposal substructure, its 8-byte header included. */
function decodeProposal(where: string, buf: Buffer): Proposal {
  const num = buf.readUInt8(4);
  const protocolId = buf.readUInt8(5);
  const spiSize = buf.readUInt8(6);
  const count = buf.readUInt8(7);
  if (num === 0) fail(where, 'number 0 (numbering starts at 1)');
  if (8 + spiSize > buf.length) fail(where, `SPI size ${spiSize} exceeds proposal length ${buf.length}`);
  if (count === 0) fail(where, 'no transforms');
  const parts = splitSubstructures(where, 'transform', buf.subarray(8 + spiSize), MORE_TRANSFORMS, count);
  if (parts.length !== count) fail(where, `${parts.length} transforms, ${count} announced`);
  const transforms = parts.map((t, i) => decodeTransform(`${where}, transform ${i + 1}`, t));
  return { num, protocolId, spi: copy(buf.subarray(8, 8 + spiSize)), transforms };
}

function encodeTransform(where: string, t: Transform, last: boolean): Buffer {
  checkUint(where, 'transform type', t.type, 0xff);
  checkUint(where, 'transform ID', t.id, 0xffff);
  const out = Buffer.alloc(t.keyLength === undefined ? 8 : 12);
  out.writeUInt8(last ? 0 : MORE_TRANSFORMS, 0);
  out.writeUInt16BE(out.length, 2);
  out.writeUInt8(t.type, 4);
  out.writeUInt16BE(t.id, 6);
  if (t.keyLength !== undefined) {
    checkUint(where, 'key length', t.keyLength, 0xffff);
    out.writeUInt16BE(ATTR_FORMAT_TV | KEY_LENGTH_ATTR, 8);
    out.writeUInt16BE(t.keyLength, 10);
  }
  return out;
}

/** Only Key Length is kept; other attributes are skipped, so they do not survive a re-encode. */
function decodeTransform(where: string, buf: Buffer): Transform {
  const t: Transform = { type: buf.readUInt8(4), id: buf.readUInt16BE(6) };
  where = `${where} (${TransformType[t.type] ?? `type ${t.type}`} ${t.id})`;
  for (let off = 8; off < buf.length; ) {
    if (buf.length - off < 4) fail(where, `${buf.length - off} bytes left for a 4-byte attribute`);
    const raw = buf.readUInt16BE(off);
    const attr = raw & ~ATTR_FORMAT_TV;
    const tv = (raw & ATTR_FORMAT_TV) !== 0;
    const size = tv ? 4 : 4 + buf.readUInt16BE(off + 2);
    if (size > buf.length - off) fail(where, `attribute ${attr} of ${size} bytes, ${buf.length - off} left`);
    if (attr === KEY_LENGTH_ATTR) {
      if (!tv) fail(where, 'key length attribute in TLV format');
      if (t.keyLength !== undefined) fail(where, 'key length attribute repeated');
      t.keyLength = buf.readUInt16BE(off + 2);
    }
    off += size;
  }
  return t;
}

// ---- KE, ID, AUTH, NONCE (RFC 7296 §3.4 - §3.9) ----

function encodeKe(p: KePayload): Buffer {
  checkUint('KE payload', 'DH group', p.group, 0xffff);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(p.group, 0);
  return Buffer.concat([head, p.data]);
}

function decodeKe(body: Buffer): KePayload {
  need('KE payload', body, 4);
  return { type: 34, group: body.readUInt16BE(0), data: copy(body.subarray(4)) };
}

function encodeId(p: IdPayload): Buffer {
  checkUint(`${nameOf(p.type)} payload`, 'ID type', p.idType, 0xff);
  const head = Buffer.alloc(4);
  head.writeUInt8(p.idType, 0);
  return Buffer.concat([head, p.data]);
}

function decodeId(body: Buffer, type: 35 | 36): IdPayload {
  need(`${nameOf(type)} payload`, body, 4);
  return { type, idType: body.readUInt8(0), data: copy(body.subarray(4)) };
}

function encodeAuth(p: AuthPayload): Buffer {
  checkUint('AUTH payload', 'auth method', p.method, 0xff);
  const head = Buffer.alloc(4);
  head.writeUInt8(p.method, 0);
  return Buffer.concat([head, p.data]);
}

function decodeAuth(body: Buffer): AuthPayload {
  need('AUTH payload', body, 4);
  return { type: 39, method: body.readUInt8(0), data: copy(body.subarray(4)) };
}

function checkNonce(length: number): void {
  if (length < NONCE_MIN || length > NONCE_MAX)
    fail('NONCE payload', `nonce of ${length} bytes outside 16..256`);
}

function encodeNonce(p: NoncePayload): Buffer {
  checkNonce(p.data.length);
  return copy(p.data);
}

function decodeNonce(body: Buffer): NoncePayload {
  checkNonce(body.length);
  return { type: 40, data: copy(body) };
}

// ---- NOTIFY and DELETE (RFC 7296 §3.10, §3.11) ----

function encodeNotify(p: NotifyPayload): Buffer {
  checkUint('NOTIFY payload', 'protocol ID', p.protocolId, 0xff);
  checkUint('NOTIFY payload', 'SPI size', p.spi.length, 0xff);
  checkUint('NOTIFY payload', 'notify type', p.notifyType, 0xffff);
  const head = Buffer.alloc(4);
  head.writeUInt8(p.protocolId, 0);
  head.writeUInt8(p.spi.length, 1);
  head.writeUInt16BE(p.notifyType, 2);
  return Buffer.concat([head, p.spi, p.data]);
}

function decodeNotify(body: Buffer): NotifyPayload {
  need('NOTIFY payload', body, 4);
  const spiSize = body.readUInt8(1);
  if (4 + spiSize > body.length)
    fail('NOTIFY payload', `SPI size ${spiSize} exceeds payload length ${body.length}`);
  return {
    type: 41,
    protocolId: body.readUInt8(0),
    spi: copy(body.subarray(4, 4 + spiSize)),
    notifyType: body.readUInt16BE(2),
    data: copy(body.subarray(4 + spiSize)),
  };
}

function encodeDelete(p: DeletePayload): Buffer {
  checkUint('DELETE payload', 'protocol ID', p.protocolId, 0xff);
  checkUint('DELETE payload', 'SPI size', p.spiSize, 0xff);
  checkUint('DELETE payload', 'SPI count', p.spis.length, 0xffff);
  if (p.spiSize === 0 && p.spis.length > 0) fail('DELETE payload', `SPI size 0 with ${p.spis.length} SPIs`);
  for (const spi of p.spis) {
    if (spi.length !== p.spiSize)
      fail('DELETE payload', `SPI of ${spi.length} bytes, SPI size is ${p.spiSize}`);
  }
  const head = Buffer.alloc(4);
  head.writeUInt8(p.protocolId, 0);
  head.writeUInt8(p.spiSize, 1);
  head.writeUInt16BE(p.spis.length, 2);
  return Buffer.concat([head, ...p.spis]);
}

function decodeDelete(body: Buffer): DeletePayload {
  need('DELETE payload', body, 4);
  const spiSize = body.readUInt8(1);
  const count = body.readUInt16BE(2);
  if (spiSize === 0 && count > 0) fail('DELETE payload', `SPI size 0 with ${count} SPIs`);
  if (spiSize * count !== body.length - 4) {
    fail(
      'DELETE payload',
      `${count} SPIs of ${spiSize} bytes do not fill the ${body.length - 4} bytes present`,
    );
  }
  const spis: Buffer[] = [];
  for (let i = 0; i < count; i++) spis.push(copy(body.subarray(4 + i * spiSize, 4 + (i + 1) * spiSize)));
  return { type: 42, protocolId: body.readUInt8(0), spiSize, spis };
}

// ---- Traffic selectors (RFC 7296 §3.13) ----

function encodeTs(p: TsPayload): Buffer {
  const where = `${nameOf(p.type)} payload`;
  if (p.selectors.length === 0 || p.selectors.length > 0xff) fail(where, `${p.selectors.length} selectors`);
  const head = Buffer.alloc(4);
  head.writeUInt8(p.selectors.length, 0);
  return Buffer.concat([
    head,
    ...p.selectors.map((s, i) => encodeSelector(`${where}: selector ${i + 1}`, s)),
  ]);
}

function decodeTs(body: Buffer, type: 44 | 45): TsPayload {
  const where = `${nameOf(type)} payload`;
  need(where, body, 4);
  const count = body.readUInt8(0);
  if (count === 0) fail(where, 'no selectors');
  const selectors: TrafficSelector[] = [];
  let off = 4;
  for (let i = 1; i <= count; i++) {
    const at = `${where}: selector ${i} of ${count}`;
    if (body.length - off < 4) fail(at, `${body.length - off} bytes left for a selector header`);
    const tsType = body.readUInt8(off);
    const length = body.readUInt16BE(off + 2);
    const expected = SELECTOR_LENGTH[tsType];
    if (expected === undefined) fail(at, `unsupported TS type ${tsType}`);
    if (length !== expected) fail(at, `length ${length}, type ${tsType} needs ${expected}`);
    if (length > body.length - off) fail(at, `length ${length} exceeds the ${body.length - off} bytes left`);
    selectors.push(decodeSelector(body.subarray(off, off + length)));
    off += length;
  }
  if (off !== body.length) fail(where, `${body.length - off} bytes after the last selector`);
  return { type, selectors };
}

// ---- Encrypted fragment (RFC 7383 §2.5); the plain SK payload body is opaque ----

function encodeSkf(p: SkfPayload): Buffer {
  checkFragment(p.fragmentNumber, p.totalFragments);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(p.fragmentNumber, 0);
  head.writeUInt16BE(p.totalFragments, 2);
  return Buffer.concat([head, p.data]);
}

function decodeSkf(body: Buffer, _type: 53, next: number): SkfPayload {
  need('SKF payload', body, 4);
  const fragmentNumber = body.readUInt16BE(0);
  const totalFragments = body.readUInt16BE(2);
  checkFragment(fragmentNumber, totalFragments);
  return { type: 53, firstInner: next, fragmentNumber, totalFragments, data: copy(body.subarray(4)) };
}

function checkFragment(num: number, total: number): void {
  checkUint('SKF payload', 'total fragments', total, 0xffff);
  if (!Number.isInteger(num) || num < 1 || num > total) {
    fail('SKF payload', `fragment number ${num} outside 1..${total}`);
  }
}
