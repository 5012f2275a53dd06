/**
 * The SA payload (RFC 2408 §3.4) with its nested Proposal (§3.5) and Transform (§3.6) payloads,
 * in the IPsec DOI (RFC 2407 §4.6.1). Unlike IKEv2 the nested payloads are chained by real
 * next-payload values (P = 2, T = 3, last 0); proposals with equal numbers form one AND bundle
 * (§4.2), so numbers only have to be non-decreasing. The SA body is what HASH_I/HASH_R cover
 * (`SAi_b`, RFC 2409 §5), so nothing here normalises what it reads.
 */
import { decodeAttributes, encodeAttributes } from './attributes.js';
import { DOI_IPSEC, PayloadTypeV1, SIT_IDENTITY_ONLY } from './constants.js';
import type { ProposalV1, SaPayloadV1, TransformV1 } from './types.js';
import { copy, fail, fields, need } from './util.js';

const SUB_HEADER = 8;
const MAX_LENGTH = 0xffff;

export function encodeSa(p: SaPayloadV1): Buffer {
  if (p.proposals.length === 0) fail('SA payload', 'no proposals');
  const head = fields('SA payload', [
    ['DOI', p.doi, 4],
    ['situation', p.situation, 4],
  ]);
  const last = p.proposals.length - 1;
  return Buffer.concat([head, ...p.proposals.map((pr, i) => encodeProposal(pr, i === last))]);
}

/**
 * Only the IPsec DOI with SIT_IDENTITY_ONLY is understood: the secrecy and integrity situations
 * (RFC 2407 §4.2.2/§4.2.3) append labelled-domain data of their own layout before the proposals.
 */
export function decodeSa(body: Buffer): SaPayloadV1 {
  const where = 'SA payload';
  need(where, body, 8);
  const doi = body.readUInt32BE(0);
  const situation = body.readUInt32BE(4);
  if (doi !== DOI_IPSEC) fail(where, `DOI ${doi} is not IPsec (1)`);
  if (situation !== SIT_IDENTITY_ONLY) fail(where, `situation ${situation} is not SIT_IDENTITY_ONLY`);
  const proposals: ProposalV1[] = [];
  for (const [i, part] of split(where, 'proposal', body.subarray(8), PayloadTypeV1.P).entries()) {
    const proposal = decodeProposal(`${where}: proposal ${i + 1}`, part);
    const prev = proposals[i - 1];
    if (prev && proposal.num < prev.num) {
      fail(`${where}: proposal ${i + 1}`, `number ${proposal.num} below the previous ${prev.num}`);
    }
    proposals.push(proposal);
  }
  return { type: 1, doi, situation, proposals };
}

/**
 * Cuts a run of proposals or transforms apart. Each starts with next payload (1 octet, `more`
 * or 0), reserved (1) and length (2); `max` bounds how many the parent announced.
 */
function split(where: string, what: string, buf: Buffer, more: number, max = 255): Buffer[] {
  const parts: Buffer[] = [];
  for (let off = 0, next = more; next === more; ) {
    const at = `${where}: ${what} ${parts.length + 1}`;
    if (parts.length === max) fail(at, `beyond the ${max} announced`);
    if (buf.length - off < SUB_HEADER) fail(at, `${buf.length - off} bytes left for the 8-byte header`);
    next = buf.readUInt8(off);
    const length = buf.readUInt16BE(off + 2);
    if (next !== 0 && next !== more) fail(at, `next payload ${next} is neither 0 nor ${more}`);
    if (length < SUB_HEADER || length > buf.length - off) {
      fail(at, `length ${length} outside 8..${buf.length - off}`);
    }
    parts.push(buf.subarray(off, off + length));
    off += length;
    if (next === 0 && off !== buf.length) fail(where, `${buf.length - off} bytes after the last ${what}`);
  }
  return parts;
}

function withLength(where: string, out: Buffer): Buffer {
  if (out.length > MAX_LENGTH) fail(where, `${out.length} bytes exceed 65535`);
  out.writeUInt16BE(out.length, 2);
  return out;
}

function encodeProposal(p: ProposalV1, last: boolean): Buffer {
  const where = `SA payload: proposal ${p.num}`;
  if (p.transforms.length === 0) fail(where, 'no transforms');
  const head = fields(where, [
    ['next payload', last ? 0 : PayloadTypeV1.P, 1],
    ['reserved', 0, 1],
    ['length', 0, 2],
    ['number', p.num, 1],
    ['protocol ID', p.protocolId, 1],
    ['SPI size', p.spi.length, 1],
    ['transform count', p.transforms.length, 1],
  ]);
  const n = p.transforms.length - 1;
  const transforms = p.transforms.map((t, i) => encodeTransform(where, t, i === n));
  return withLength(where, Buffer.concat([head, p.spi, ...transforms]));
}

/** `buf` is the whole proposal, its 8-byte header included. */
function decodeProposal(where: string, buf: Buffer): ProposalV1 {
  const num = buf.readUInt8(4);
  const protocolId = buf.readUInt8(5);
  const spiSize = buf.readUInt8(6);
  const count = buf.readUInt8(7);
  if (SUB_HEADER + spiSize > buf.length)
    fail(where, `SPI size ${spiSize} exceeds proposal length ${buf.length}`);
  if (count === 0) fail(where, 'no transforms');
  const parts = split(where, 'transform', buf.subarray(SUB_HEADER + spiSize), PayloadTypeV1.T, count);
  if (parts.length !== count) fail(where, `${parts.length} transforms, ${count} announced`);
  const transforms = parts.map((t, i) => decodeTransform(`${where}, transform ${i + 1}`, t));
  return { num, protocolId, spi: copy(buf.subarray(SUB_HEADER, SUB_HEADER + spiSize)), transforms };
}

function encodeTransform(where: string, t: TransformV1, last: boolean): Buffer {
  where = `${where}, transform ${t.num}`;
  const head = fields(where, [
    ['next payload', last ? 0 : PayloadTypeV1.T, 1],
    ['reserved', 0, 1],
    ['length', 0, 2],
    ['number', t.num, 1],
    ['transform ID', t.id, 1],
    ['reserved', 0, 2],
  ]);
  return withLength(where, Buffer.concat([head, encodeAttributes(where, t.attributes)]));
}

function decodeTransform(where: string, buf: Buffer): TransformV1 {
  return {
    num: buf.readUInt8(4),
    id: buf.readUInt8(5),
    attributes: decodeAttributes(where, buf.subarray(SUB_HEADER)),
  };
}
