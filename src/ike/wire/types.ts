/**
 * Data shapes of IKEv2 messages (RFC 7296 §3). Pure data: the codec in payloads.ts/message.ts
 * encodes and decodes these, mirrored, with no I/O and no state.
 */

export interface IkeHeader {
  spiI: Buffer; // 8 bytes
  spiR: Buffer; // 8 bytes
  nextPayload: number;
  /** Major/minor as one byte: 0x20 for IKEv2, 0x10 for IKEv1. */
  version: number;
  exchange: number;
  flags: number;
  messageId: number;
  /** Total message length in bytes, header included. */
  length: number;
}

export interface Transform {
  type: number; // TransformType
  id: number;
  /** Key length attribute in bits (AES-CBC, AES-GCM), absent otherwise. */
  keyLength?: number;
}

export interface Proposal {
  num: number;
  protocolId: number; // ProtocolId
  spi: Buffer; // empty for IKE in IKE_SA_INIT, 8 bytes for IKE rekey, 4 bytes for ESP/AH
  transforms: Transform[];
}

export interface TrafficSelector {
  tsType: number; // 7 = TS_IPV4_ADDR_RANGE, 8 = TS_IPV6_ADDR_RANGE
  ipProtocol: number; // 0 = any
  startPort: number;
  endPort: number;
  startAddr: string; // textual address
  endAddr: string;
}

interface Base {
  critical?: boolean;
}

export interface SaPayload extends Base {
  type: 33;
  proposals: Proposal[];
}
export interface KePayload extends Base {
  type: 34;
  group: number;
  data: Buffer;
}
export interface IdPayload extends Base {
  type: 35 | 36; // IDi | IDr
  idType: number;
  data: Buffer;
}
export interface AuthPayload extends Base {
  type: 39;
  method: number;
  data: Buffer;
}
export interface NoncePayload extends Base {
  type: 40;
  data: Buffer;
}
export interface NotifyPayload extends Base {
  type: 41;
  protocolId: number;
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}
export interface DeletePayload extends Base {
  type: 42;
  protocolId: number;
  spiSize: number;
  spis: Buffer[];
}
export interface VendorPayload extends Base {
  type: 43;
  data: Buffer;
}
export interface TsPayload extends Base {
  type: 44 | 45; // TSi | TSr
  selectors: TrafficSelector[];
}
/** Encrypted and Authenticated payload: `data` is IV || ciphertext || ICV, opaque to the codec. */
export interface SkPayload extends Base {
  type: 46;
  firstInner: number;
  data: Buffer;
}
/**
 * Encrypted and Authenticated Fragment (RFC 7383 §2.5): one piece of an SK payload. `firstInner`
 * is the first inner payload type in fragment 1 and 0 in the others; `data` is IV || ciphertext || ICV.
 */
export interface SkfPayload extends Base {
  type: 53;
  firstInner: number;
  fragmentNumber: number;
  totalFragments: number;
  data: Buffer;
}
/** Any payload the codec does not interpret (CERT, CERTREQ, CP, EAP, ...), kept byte-exact. */
export interface UnknownPayload {
  type: number;
  critical: boolean;
  body: Buffer;
}

export type Payload =
  | SaPayload
  | KePayload
  | IdPayload
  | AuthPayload
  | NoncePayload
  | NotifyPayload
  | DeletePayload
  | VendorPayload
  | TsPayload
  | SkPayload
  | SkfPayload
  | UnknownPayload;

export interface IkeMessage {
  header: Omit<IkeHeader, 'nextPayload' | 'length'>;
  payloads: Payload[];
}
