/**
 * Encrypted messages (RFC 7296 §3.14, RFC 5282): wraps inner payloads in an SK payload and back.
 * The AAD / integrity input is every byte of the message before the IV, so the header is built
 * with its final length before sealing.
 */
import { WireError } from '../../errors.js';
import type { SkProtector } from '../crypto/sk.js';
import { PayloadType } from '../wire/constants.js';
import { decodeHeader, encodeHeader, HEADER_LENGTH } from '../wire/header.js';
import {
  decodePayloads,
  encodeGenericHeader,
  encodePayloads,
  UnsupportedCriticalError,
} from '../wire/payloads.js';
import type { IkeHeader, IkeMessage, Payload, SkPayload } from '../wire/types.js';

/**
 * A message whose integrity check passed but whose inner payloads are malformed: it came from
 * whoever holds the SA's keys, so it may be answered (an IKE_AUTH request: AUTHENTICATION_FAILED).
 */
export class SealedWireError extends WireError {}

export function sealMessage(header: IkeMessage['header'], inner: Payload[], sk: SkProtector): Buffer {
  const { first, bytes: plain } = inner.length ? encodePayloads(inner) : { first: 0, bytes: Buffer.alloc(0) };
  const bodyLen = sk.sealedLength(plain.length);
  const total = HEADER_LENGTH + 4 + bodyLen;
  const aad = Buffer.concat([
    encodeHeader({ ...header, nextPayload: PayloadType.SK, length: total }),
    encodeGenericHeader(first, false, 4 + bodyLen),
  ]);
  return Buffer.concat([aad, sk.seal(plain, aad)]);
}

export interface OpenedMessage {
  header: IkeHeader;
  payloads: Payload[];
}

/** Decrypts and decodes; throws WireError (bad structure) or CryptoError (bad ICV/padding). */
export function openMessage(buf: Buffer, sk: SkProtector): OpenedMessage {
  const header = decodeHeader(buf);
  const outer = decodePayloads(header.nextPayload, buf.subarray(HEADER_LENGTH, header.length));
  const skp = outer.find((p): p is SkPayload => p.type === PayloadType.SK);
  if (!skp) throw new WireError('expected an encrypted (SK) payload');
  if (outer[outer.length - 1] !== skp) throw new WireError('SK payload is not the last payload');
  const aad = buf.subarray(0, header.length - skp.data.length);
  const plain = sk.open(skp.data, aad);
  let inner: Payload[] = [];
  try {
    if (plain.length) inner = decodePayloads(skp.firstInner, plain);
  } catch (err) {
    if (err instanceof WireError && !(err instanceof UnsupportedCriticalError))
      throw new SealedWireError(err.message);
    throw err;
  }
  return { header, payloads: [...outer.filter((p) => p !== skp), ...inner] };
}
