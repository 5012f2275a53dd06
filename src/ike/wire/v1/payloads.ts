/**
 * ISAKMP payloads (RFC 2408 §3.2 - §3.15, RFC 3947 §3.2/§5.2, mode-config §3.2) and the payload
 * chain. Each structure has an encodeX/decodeX pair in the same field order; decoders check every
 * length before reading and throw WireError naming payload, field and numbers. No state, no I/O;
 * decoded buffers are copies.
 *
 * The chain differs from IKEv2 in two ways. There is no critical bit: the generic header's
 * second octet is RESERVED (RFC 2408 §3.2) and kept as received. And an encrypted body is padded
 * to the cipher block size with nothing in any length field covering the padding (RFC 2409
 * §5.3; strongSwan pads), so after decryption the chain ends at next payload 0 and whatever
 * follows is padding, which `splitPayloadsV1(..., true)` tolerates.
 */
import { formatAddress, parseAddress } from '../ts.js';
import { decodeAttributes, encodeAttributes } from './attributes.js';
import { IdTypeV1, PayloadTypeV1 } from './constants.js';
import { decodeSa, encodeSa } from './sa.js';
import type {
  AttrPayloadV1,
  CertPayloadV1,
  CertReqPayloadV1,
  DataPayloadV1,
  DeletePayloadV1,
  IdPayloadV1,
  NatOaPayloadV1,
  NotifyPayloadV1,
  PayloadV1,
  RawPayloadV1,
  SaPayloadV1,
  UnknownPayloadV1,
} from './types.js';
import { checkUint, copy, fail, fields, need } from './util.js';

const GENERIC_HEADER_LENGTH = 4;
const MAX_PAYLOAD_LENGTH = 0xffff;
/** RFC 2409 §5: "The length of nonce payload MUST be between 8 and 256 bytes inclusive." */
const NONCE_MIN = 8;
const NONCE_MAX = 256;

const nameOf = (type: number): string => PayloadTypeV1[type] ?? `type ${type}`;

// ---- Generic payload header and the payload chain ----

export function encodeGenericHeaderV1(next: number, reserved: number, length: number): Buffer {
  if (!Number.isInteger(length) || length < GENERIC_HEADER_LENGTH || length > MAX_PAYLOAD_LENGTH) {
    fail('payload header', `length ${length} out of range 4..65535`);
  }
  return fields('payload header', [
    ['next payload', next, 1],
    ['reserved', reserved, 1],
    ['length', length, 2],
  ]);
}

const isUnknown = (p: PayloadV1): p is UnknownPayloadV1 => 'body' in p;

/** Chains the next-payload fields; adds no padding (the caller pads before encrypting). */
export function encodePayloadsV1(payloads: PayloadV1[]): { first: number; bytes: Buffer } {
  const parts: Buffer[] = [];
  payloads.forEach((p, i) => {
    const body = encodeBody(p);
    const next = payloads[i + 1]?.type ?? PayloadTypeV1.NONE;
    parts.push(encodeGenericHeaderV1(next, p.reserved ?? 0, GENERIC_HEADER_LENGTH + body.length), body);
  });
  return { first: payloads[0]?.type ?? PayloadTypeV1.NONE, bytes: Buffer.concat(parts) };
}

/**
 * Walks the chain starting with type `first` and returns each payload as on the wire. Without
 * `padded`, `buf` must hold exactly the chain; with it, bytes after the last payload are padding.
 */
export function splitPayloadsV1(first: number, buf: Buffer, padded = false): RawPayloadV1[] {
  const out: RawPayloadV1[] = [];
  let off = 0;
  for (let type = first; type !== PayloadTypeV1.NONE; ) {
    const where = `${nameOf(type)} payload at offset ${off}`;
    if (buf.length - off < GENERIC_HEADER_LENGTH) {
      fail(where, `${buf.length - off} bytes left for a 4-byte header`);
    }
    const next = buf.readUInt8(off);
    const length = buf.readUInt16BE(off + 2);
    if (length < GENERIC_HEADER_LENGTH) fail(where, `length ${length} is below 4`);
    if (length > buf.length - off) fail(where, `length ${length} exceeds the ${buf.length - off} bytes left`);
    const raw = copy(buf.subarray(off, off + length));
    out.push({ type, next, raw, body: raw.subarray(GENERIC_HEADER_LENGTH) });
    off += length;
    type = next;
  }
  if (!padded && off !== buf.length)
    fail('payload chain', `${buf.length - off} bytes after the last payload`);
  return out;
}

/** Decodes the chain starting with type `first`; see splitPayloadsV1 for `padded`. */
export function decodeChainV1(first: number, buf: Buffer, padded: boolean): PayloadV1[] {
  return splitPayloadsV1(first, buf, padded).map((r) => {
    const p = decodeBody(r.type, r.body);
    const reserved = r.raw.readUInt8(1);
    return reserved === 0 ? p : { ...p, reserved };
  });
}

type Known = Exclude<PayloadV1, UnknownPayloadV1>;
/** The payload interface whose `type` admits K (DataPayloadV1 for KE, HASH, NONCE, ...). */
type Of<K extends number> = Known extends infer P
  ? P extends Known
    ? K extends P['type']
      ? P
      : never
    : never
  : never;
interface Codec<P extends Known> {
  encode(p: P): Buffer;
  decode(body: Buffer, type: P['type']): P;
}

const data: Codec<DataPayloadV1> = {
  encode: (p) => copy(p.data),
  decode: (b, type) => ({ type, data: copy(b) }),
};
const nonce: Codec<DataPayloadV1> = {
  encode: (p) => copy(checkNonce(p.data)),
  decode: (b) => ({ type: 10, data: copy(checkNonce(b)) }),
};
const natOa: Codec<NatOaPayloadV1> = { encode: encodeNatOa, decode: decodeNatOa };

/** The payloads the codec interprets; every other type stays an opaque UnknownPayloadV1. */
const CODECS: { [K in Known['type']]: Codec<Of<K>> } = {
  1: { encode: encodeSa, decode: (b): SaPayloadV1 => decodeSa(b) },
  4: data,
  5: { encode: encodeId, decode: decodeId },
  6: { encode: encodeCert, decode: decodeCert },
  7: { encode: encodeCertReq, decode: decodeCertReq },
  8: data,
  9: data,
  10: nonce,
  11: { encode: encodeNotify, decode: decodeNotify },
  12: { encode: encodeDelete, decode: decodeDelete },
  13: data,
  14: { encode: encodeAttr, decode: decodeAttr },
  20: data,
  21: natOa,
  130: data,
  131: natOa,
};

const codecOf = (type: number): Codec<Known> | undefined =>
  Object.hasOwn(CODECS, type) ? (CODECS[type as Known['type']] as Codec<Known>) : undefined;

function encodeBody(p: PayloadV1): Buffer {
  if (!isUnknown(p)) return codecOf(p.type)!.encode(p);
  checkUint('payload', 'type', p.type, 0xff);
  if (p.type === PayloadTypeV1.NONE || codecOf(p.type)) {
    fail('payload', `type ${p.type} cannot be sent as an opaque payload`);
  }
  return copy(p.body);
}

function decodeBody(type: number, body: Buffer): PayloadV1 {
  const codec = codecOf(type);
  return codec ? codec.decode(body, type as Known['type']) : { type, body: copy(body) };
}

function checkNonce(b: Buffer): Buffer {
  if (b.length < NONCE_MIN || b.length > NONCE_MAX)
    fail('NONCE payload', `nonce of ${b.length} bytes outside 8..256`);
  return b;
}

// ---- ID (RFC 2407 §4.6.2), CERT and CR (RFC 2408 §3.9, §3.10) ----

function encodeId(p: IdPayloadV1): Buffer {
  const head = fields('ID payload', [
    ['ID type', p.idType, 1],
    ['protocol ID', p.protocolId, 1],
    ['port', p.port, 2],
  ]);
  return Buffer.concat([head, p.data]);
}

function decodeId(body: Buffer): IdPayloadV1 {
  need('ID payload', body, 4);
  return {
    type: 5,
    idType: body.readUInt8(0),
    protocolId: body.readUInt8(1),
    port: body.readUInt16BE(2),
    data: copy(body.subarray(4)),
  };
}

function encodeCert(p: CertPayloadV1): Buffer {
  return Buffer.concat([fields('CERT payload', [['encoding', p.encoding, 1]]), p.data]);
}

function decodeCert(body: Buffer): CertPayloadV1 {
  need('CERT payload', body, 1);
  return { type: 6, encoding: body.readUInt8(0), data: copy(body.subarray(1)) };
}

function encodeCertReq(p: CertReqPayloadV1): Buffer {
  return Buffer.concat([fields('CR payload', [['certificate type', p.certType, 1]]), p.authority]);
}

function decodeCertReq(body: Buffer): CertReqPayloadV1 {
  need('CR payload', body, 1);
  return { type: 7, certType: body.readUInt8(0), authority: copy(body.subarray(1)) };
}

// ---- NOTIFY and DELETE (RFC 2408 §3.14, §3.15): both lead with a 4-byte DOI ----

function encodeNotify(p: NotifyPayloadV1): Buffer {
  const head = fields('N payload', [
    ['DOI', p.doi, 4],
    ['protocol ID', p.protocolId, 1],
    ['SPI size', p.spi.length, 1],
    ['notify type', p.notifyType, 2],
  ]);
  return Buffer.concat([head, p.spi, p.data]);
}

function decodeNotify(body: Buffer): NotifyPayloadV1 {
  need('N payload', body, 8);
  const spiSize = body.readUInt8(5);
  if (8 + spiSize > body.length)
    fail('N payload', `SPI size ${spiSize} exceeds payload length ${body.length}`);
  return {
    type: 11,
    doi: body.readUInt32BE(0),
    protocolId: body.readUInt8(4),
    spi: copy(body.subarray(8, 8 + spiSize)),
    notifyType: body.readUInt16BE(6),
    data: copy(body.subarray(8 + spiSize)),
  };
}

function encodeDelete(p: DeletePayloadV1): Buffer {
  for (const spi of p.spis) {
    if (spi.length !== p.spiSize) fail('D payload', `SPI of ${spi.length} bytes, SPI size is ${p.spiSize}`);
  }
  const head = fields('D payload', [
    ['DOI', p.doi, 4],
    ['protocol ID', p.protocolId, 1],
    ['SPI size', p.spiSize, 1],
    ['SPI count', p.spis.length, 2],
  ]);
  return Buffer.concat([head, ...p.spis]);
}

/** An ISAKMP SA is deleted by its two cookies (SPI size 16, RFC 2408 §3.15). */
function decodeDelete(body: Buffer): DeletePayloadV1 {
  need('D payload', body, 8);
  const spiSize = body.readUInt8(5);
  const count = body.readUInt16BE(6);
  if (spiSize * count !== body.length - 8) {
    fail('D payload', `${count} SPIs of ${spiSize} bytes do not fill the ${body.length - 8} bytes present`);
  }
  const spis: Buffer[] = [];
  for (let i = 0; i < count; i++) spis.push(copy(body.subarray(8 + i * spiSize, 8 + (i + 1) * spiSize)));
  return { type: 12, doi: body.readUInt32BE(0), protocolId: body.readUInt8(4), spiSize, spis };
}

// ---- Attribute payload (draft-dukes-ike-mode-cfg §3.2) ----

function encodeAttr(p: AttrPayloadV1): Buffer {
  const head = fields('ATTR payload', [
    ['type', p.cfgType, 1],
    ['reserved', 0, 1],
    ['identifier', p.identifier, 2],
  ]);
  return Buffer.concat([head, encodeAttributes('ATTR payload', p.attributes)]);
}

function decodeAttr(body: Buffer): AttrPayloadV1 {
  need('ATTR payload', body, 4);
  return {
    type: 14,
    cfgType: body.readUInt8(0),
    identifier: body.readUInt16BE(2),
    attributes: decodeAttributes('ATTR payload', body.subarray(4)),
  };
}

// ---- NAT-OA (RFC 3947 §5.2): ID type, 3 reserved octets, an IPv4 or IPv6 address ----

const NAT_OA_ADDRESS: Readonly<Record<number, number>> = {
  [IdTypeV1.IPV4_ADDR]: 4,
  [IdTypeV1.IPV6_ADDR]: 16,
};

function encodeNatOa(p: NatOaPayloadV1): Buffer {
  const where = `${nameOf(p.type)} payload`;
  const addr = parseAddress(p.address);
  if (NAT_OA_ADDRESS[p.idType] !== addr.length)
    fail(where, `ID type ${p.idType} with a ${addr.length}-byte address`);
  return Buffer.concat([
    fields(where, [
      ['ID type', p.idType, 1],
      ['reserved', 0, 3],
    ]),
    addr,
  ]);
}

function decodeNatOa(body: Buffer, type: 21 | 131): NatOaPayloadV1 {
  const where = `${nameOf(type)} payload`;
  need(where, body, 4);
  const idType = body.readUInt8(0);
  const size = NAT_OA_ADDRESS[idType];
  if (size === undefined) fail(where, `ID type ${idType} is neither IPV4_ADDR nor IPV6_ADDR`);
  if (body.length !== 4 + size) fail(where, `${body.length} bytes, ID type ${idType} needs ${4 + size}`);
  return { type, idType, address: formatAddress(body.subarray(4)) };
}
