/** IKE header (RFC 7296 §3.1): 28 octets in front of every IKEv2 (and IKEv1) message. */
import { WireError } from '../../errors.js';
import type { IkeHeader } from './types.js';

export const HEADER_LENGTH = 28;
const SPI_LENGTH = 8;

export function encodeHeader(h: IkeHeader): Buffer {
  if (h.spiI.length !== SPI_LENGTH)
    throw new WireError(`IKE header: initiator SPI is ${h.spiI.length} bytes, not 8`);
  if (h.spiR.length !== SPI_LENGTH)
    throw new WireError(`IKE header: responder SPI is ${h.spiR.length} bytes, not 8`);
  checkUint('next payload', h.nextPayload, 0xff);
  checkUint('version', h.version, 0xff);
  checkUint('exchange type', h.exchange, 0xff);
  checkUint('flags', h.flags, 0xff);
  checkUint('message ID', h.messageId, 0xffffffff);
  checkUint('length', h.length, 0xffffffff);
  if (h.length < HEADER_LENGTH) throw new WireError(`IKE header: length ${h.length} is below 28`);
  const out = Buffer.alloc(HEADER_LENGTH);
  h.spiI.copy(out, 0);
  h.spiR.copy(out, 8);
  out.writeUInt8(h.nextPayload, 16);
  out.writeUInt8(h.version, 17);
  out.writeUInt8(h.exchange, 18);
  out.writeUInt8(h.flags, 19);
  out.writeUInt32BE(h.messageId, 20);
  out.writeUInt32BE(h.length, 24);
  return out;
}

/** Checks the length field against `buf` but not the version: IKEv1 shares this header. */
/** Major version of a datagram (1 or 2): the core dispatches on it before any version's codec runs. */
export function peekVersion(buf: Buffer): number {
  if (buf.length < HEADER_LENGTH) {
    throw new WireError(`IKE header: message of ${buf.length} bytes is shorter than the 28-byte header`);
  }
  return buf.readUInt8(17) >> 4;
}

export function decodeHeader(buf: Buffer): IkeHeader {
  if (buf.length < HEADER_LENGTH) {
    throw new WireError(`IKE header: message of ${buf.length} bytes is shorter than the 28-byte header`);
  }
  const length = buf.readUInt32BE(24);
  if (length < HEADER_LENGTH) throw new WireError(`IKE header: length field ${length} is below 28`);
  if (length > buf.length) {
    throw new WireError(`IKE header: length field ${length} exceeds the ${buf.length} bytes received`);
  }
  return {
    spiI: Buffer.from(buf.subarray(0, 8)),
    spiR: Buffer.from(buf.subarray(8, 16)),
    nextPayload: buf.readUInt8(16),
    version: buf.readUInt8(17),
    exchange: buf.readUInt8(18),
    flags: buf.readUInt8(19),
    messageId: buf.readUInt32BE(20),
    length,
  };
}

function checkUint(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError(`IKE header: ${field} ${v} out of range`);
}
