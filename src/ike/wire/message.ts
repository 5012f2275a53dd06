/** Whole IKEv2 messages: header plus IKEv2 payload chain (RFC 7296 §3). Encrypted bodies stay opaque. */
import { WireError } from '../../errors.js';
import { decodeHeader, encodeHeader, HEADER_LENGTH, peekVersion } from './header.js';
import { decodePayloads, encodePayloads } from './payloads.js';
import type { IkeMessage } from './types.js';

const IKEV2_MAJOR = 2;

export { peekVersion } from './header.js';

export function encodeMessage(m: IkeMessage): Buffer {
  const { first, bytes } = encodePayloads(m.payloads);
  const header = encodeHeader({ ...m.header, nextPayload: first, length: HEADER_LENGTH + bytes.length });
  return Buffer.concat([header, bytes]);
}

/** The minor version is kept but not checked: RFC 7296 §2.5 says to ignore it. */
export function decodeMessage(buf: Buffer): IkeMessage {
  const major = peekVersion(buf);
  if (major !== IKEV2_MAJOR) throw new WireError(`IKE header: major version ${major} is not 2`);
  const h = decodeHeader(buf);
  if (h.length !== buf.length) {
    throw new WireError(`IKE message: ${buf.length - h.length} bytes beyond the length field ${h.length}`);
  }
  return {
    header: {
      spiI: h.spiI,
      spiR: h.spiR,
      version: h.version,
      exchange: h.exchange,
      flags: h.flags,
      messageId: h.messageId,
    },
    payloads: decodePayloads(h.nextPayload, buf.subarray(HEADER_LENGTH, h.length)),
  };
}
