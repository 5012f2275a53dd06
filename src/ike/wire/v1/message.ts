/**
 * Whole ISAKMP messages (RFC 2408 §3.1): the header shared with IKEv2 (../header.ts) with major
 * version 1, then either the payload chain in clear or, with the E flag, ciphertext that stays
 * opaque here: decryption (and the padding it leaves, RFC 2409 §5.3) is the caller's, which then
 * calls decodePayloadsV1 on the plaintext.
 */
import { WireError } from '../../../errors.js';
import { decodeHeader, encodeHeader, HEADER_LENGTH, peekVersion } from '../header.js';
import { HeaderFlagV1 } from './constants.js';
import { decodeChainV1, encodePayloadsV1, splitPayloadsV1 } from './payloads.js';
import type { EncryptedMessageV1, MessageV1, PayloadV1, RawPayloadV1 } from './types.js';

const IKEV1_MAJOR = 1;

export const isEncryptedV1 = (m: MessageV1): m is EncryptedMessageV1 => 'ciphertext' in m;

/** The E flag must say what the message holds: payloads in clear, or ciphertext. */
export function encodeMessageV1(m: MessageV1): Buffer {
  const encrypted = isEncryptedV1(m);
  if (((m.header.flags & HeaderFlagV1.ENCRYPTION) !== 0) !== encrypted) {
    throw new WireError(
      `ISAKMP header: E flag ${encrypted ? 'clear on ciphertext' : 'set on clear payloads'}`,
    );
  }
  const { first, bytes } = encrypted
    ? { first: m.firstPayload, bytes: m.ciphertext }
    : encodePayloadsV1(m.payloads);
  const header = encodeHeader({ ...m.header, nextPayload: first, length: HEADER_LENGTH + bytes.length });
  return Buffer.concat([header, bytes]);
}

/**
 * The minor version is kept but not checked (RFC 2408 §5.1 leaves it to the implementation;
 * strongSwan sends 0). The length field must cover the datagram exactly, as in IKEv2.
 */
export function decodeMessageV1(buf: Buffer): MessageV1 {
  const major = peekVersion(buf);
  if (major !== IKEV1_MAJOR) throw new WireError(`ISAKMP header: major version ${major} is not 1`);
  const h = decodeHeader(buf);
  if (h.length !== buf.length) {
    throw new WireError(`ISAKMP message: ${buf.length - h.length} bytes beyond the length field ${h.length}`);
  }
  const header = {
    spiI: h.spiI,
    spiR: h.spiR,
    version: h.version,
    exchange: h.exchange,
    flags: h.flags,
    messageId: h.messageId,
  };
  const body = buf.subarray(HEADER_LENGTH);
  if ((h.flags & HeaderFlagV1.ENCRYPTION) !== 0) {
    return { header, firstPayload: h.nextPayload, ciphertext: Buffer.from(body) };
  }
  return { header, payloads: decodeChainV1(h.nextPayload, body, false) };
}

/** Decrypted payloads: the chain ends at next payload 0 and the cipher padding after it is ignored. */
export function decodePayloadsV1(first: number, plaintext: Buffer): PayloadV1[] {
  return decodeChainV1(first, plaintext, true);
}

/**
 * Each payload's bytes as on the wire, for the hashes over raw payloads: HASH_I/HASH_R take the
 * SA and ID bodies (`SAi_b`, `IDii_b`, RFC 2409 §5), quick mode's HASH(1)/HASH(2) everything after
 * the HASH payload with generic headers but without padding (§5.5). Pass the clear body of a
 * message, or decrypted plaintext with `padded` true.
 */
export function rawPayloadsV1(first: number, body: Buffer, padded = false): RawPayloadV1[] {
  return splitPayloadsV1(first, body, padded);
}
