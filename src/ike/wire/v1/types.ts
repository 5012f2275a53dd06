/**
 * Data shapes of ISAKMP (IKEv1) messages, RFC 2408 §3 with the IPsec DOI (RFC 2407 §4.6) and
 * NAT-T (RFC 3947 §3.2, §5.2). Pure data: payloads.ts/sa.ts/message.ts encode and decode these,
 * mirrored. Reserved octets are zero on the wire except the generic header's, which is kept
 * (`reserved`, absent when 0) so that any payload re-encodes byte for byte.
 */
import type { IkeHeader } from '../types.js';

/**
 * A data attribute (RFC 2408 §3.3). A number is the TV form (AF bit set, 2-byte value); a Buffer
 * is the TLV form (AF bit clear, any length). The form is kept as received because HASH_I/HASH_R
 * and the quick-mode hashes cover these bytes; `attributeNumber` reads either form.
 */
export interface DataAttribute {
  type: number;
  value: number | Buffer;
}

/** A Transform payload (RFC 2408 §3.6) nested in a Proposal. */
export interface TransformV1 {
  num: number;
  /** KEY_IKE (1) in phase 1; an ESP/AH transform ID in phase 2. */
  id: number;
  attributes: DataAttribute[];
}

/** A Proposal payload (RFC 2408 §3.5); equal numbers mean an AND bundle (e.g. AH with ESP). */
export interface ProposalV1 {
  num: number;
  protocolId: number;
  /** Empty (or 8/16 bytes, cookies) for ISAKMP, 4 bytes for ESP/AH. */
  spi: Buffer;
  transforms: TransformV1[];
}

interface Base {
  /** The generic header's reserved octet when not 0 (RFC 2408 has no critical bit). */
  reserved?: number;
}

export interface SaPayloadV1 extends Base {
  type: 1;
  doi: number;
  situation: number;
  proposals: ProposalV1[];
}
/** KE, HASH, SIG, NONCE, VID, NAT-D (and its draft number): a body that is just bytes. */
export interface DataPayloadV1 extends Base {
  type: 4 | 8 | 9 | 10 | 13 | 20 | 130;
  data: Buffer;
}
/** RFC 2407 §4.6.2: in phase 1 protocol and port are 0 or the UDP/500 of the IKE socket. */
export interface IdPayloadV1 extends Base {
  type: 5;
  idType: number;
  protocolId: number;
  port: number;
  data: Buffer;
}
export interface CertPayloadV1 extends Base {
  type: 6;
  encoding: number;
  data: Buffer;
}
export interface CertReqPayloadV1 extends Base {
  type: 7;
  certType: number;
  authority: Buffer;
}
export interface NotifyPayloadV1 extends Base {
  type: 11;
  doi: number;
  protocolId: number;
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}
export interface DeletePayloadV1 extends Base {
  type: 12;
  doi: number;
  protocolId: number;
  spiSize: number;
  spis: Buffer[];
}
/** Attribute payload of XAUTH / mode-config (draft-dukes-ike-mode-cfg §3.2). */
export interface AttrPayloadV1 extends Base {
  type: 14;
  /** ISAKMP_CFG_REQUEST 1, REPLY 2, SET 3, ACK 4. */
  cfgType: number;
  identifier: number;
  attributes: DataAttribute[];
}
/** NAT-OA (RFC 3947 §5.2): the original address as the peer saw it. */
export interface NatOaPayloadV1 extends Base {
  type: 21 | 131;
  idType: number; // IPV4_ADDR or IPV6_ADDR
  address: string;
}
/** Any payload the codec does not interpret, kept byte-exact. */
export interface UnknownPayloadV1 {
  type: number;
  reserved?: number;
  body: Buffer;
}

export type PayloadV1 =
  | SaPayloadV1
  | DataPayloadV1
  | IdPayloadV1
  | CertPayloadV1
  | CertReqPayloadV1
  | NotifyPayloadV1
  | DeletePayloadV1
  | AttrPayloadV1
  | NatOaPayloadV1
  | UnknownPayloadV1;

export type HeaderV1 = Omit<IkeHeader, 'nextPayload' | 'length'>;

/** A message whose payloads are in clear (E flag clear). */
export interface PlainMessageV1 {
  header: HeaderV1;
  payloads: PayloadV1[];
}
/**
 * A message with the E flag (RFC 2408 §3.1): the body is ciphertext, opaque to the codec. After
 * decryption the caller decodes it with `decodePayloadsV1(firstPayload, plaintext)`.
 */
export interface EncryptedMessageV1 {
  header: HeaderV1;
  firstPayload: number;
  ciphertext: Buffer;
}
export type MessageV1 = PlainMessageV1 | EncryptedMessageV1;

/** One payload as on the wire, for the hashes that cover raw bytes (RFC 2409 §5, §5.5). */
export interface RawPayloadV1 {
  type: number;
  next: number;
  /** The whole payload, generic header included (quick-mode HASH(1..3) cover these). */
  raw: Buffer;
  /** The body after the 4-byte generic header (SAi_b, IDii_b of HASH_I/HASH_R). */
  body: Buffer;
}
