/**
 * IKE numbers from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registry, as
 * defined by RFC 7296 unless a line says otherwise. Regular (not const) enums so they exist at
 * run time for reverse lookup in logs: `PayloadType[41] === 'NOTIFY'`.
 */

// ---- Specification constants: RFC 7296 §3.1, IKE header ----

/** Exchange types (IKEv2). */
export enum ExchangeType {
  IKE_SA_INIT = 34,
  IKE_AUTH = 35,
  CREATE_CHILD_SA = 36,
  INFORMATIONAL = 37,
}

/** Header flags byte. */
export enum HeaderFlag {
  INITIATOR = 0x08,
  VERSION = 0x10,
  RESPONSE = 0x20,
}

// ---- Specification constants: RFC 7296 §3.2, payload types ----

export enum PayloadType {
  NONE = 0,
  SA = 33,
  KE = 34,
  IDi = 35,
  IDr = 36,
  CERT = 37,
  CERTREQ = 38,
  AUTH = 39,
  NONCE = 40,
  NOTIFY = 41,
  DELETE = 42,
  VENDOR = 43,
  TSi = 44,
  TSr = 45,
  SK = 46,
  CP = 47,
  EAP = 48,
  /** Encrypted and Authenticated Fragment, RFC 7383 §2.5. */
  SKF = 53,
}

// ---- Specification constants: RFC 7296 §3.3, SA payload ----

export enum ProtocolId {
  IKE = 1,
  AH = 2,
  ESP = 3,
}

export enum TransformType {
  ENCR = 1,
  PRF = 2,
  INTEG = 3,
  DH = 4,
  ESN = 5,
}

export enum EncrId {
  DES3 = 3,
  NULL = 11,
  AES_CBC = 12,
  AES_CTR = 13,
  /** AES-GCM with an 8/12/16-octet ICV, RFC 4106 / RFC 5282. */
  AES_GCM_8 = 18,
  AES_GCM_12 = 19,
  AES_GCM_16 = 20,
}

export enum PrfId {
  HMAC_MD5 = 1,
  HMAC_SHA1 = 2,
  /** RFC 4868. */
  HMAC_SHA2_256 = 5,
  HMAC_SHA2_384 = 6,
  HMAC_SHA2_512 = 7,
}

export enum IntegId {
  NONE = 0,
  HMAC_MD5_96 = 1,
  HMAC_SHA1_96 = 2,
  /** RFC 4868. */
  HMAC_SHA2_256_128 = 12,
  HMAC_SHA2_384_192 = 13,
  HMAC_SHA2_512_256 = 14,
}

/** Diffie-Hellman group numbers (transform type 4). */
export enum DhId {
  NONE = 0,
  MODP768 = 1,
  MODP1024 = 2,
  /** RFC 3526. */
  MODP1536 = 5,
  MODP2048 = 14,
  MODP3072 = 15,
  MODP4096 = 16,
  /** RFC 5903. */
  ECP256 = 19,
  ECP384 = 20,
  ECP521 = 21,
  /** RFC 5114. */
  MODP2048S256 = 24,
  /** RFC 8031. */
  CURVE25519 = 31,
}

export enum EsnId {
  NO = 0,
  YES = 1,
}

/** Transform attribute type of the Key Length attribute (always TV format). */
export const KEY_LENGTH_ATTR = 14;

// ---- Specification constants: RFC 7296 §3.5 - §3.13, other payloads ----

export enum IdType {
  IPV4_ADDR = 1,
  FQDN = 2,
  RFC822_ADDR = 3,
  IPV6_ADDR = 5,
  DER_ASN1_DN = 9,
  KEY_ID = 11,
}

export enum AuthMethod {
  RSA = 1,
  PSK = 2,
  DSS = 3,
}

export enum TsType {
  IPV4 = 7,
  IPV6 = 8,
}

/** Notify message types: errors below 16384, status types from 16384 on. */
export enum NotifyType {
  UNSUPPORTED_CRITICAL_PAYLOAD = 1,
  INVALID_IKE_SPI = 4,
  INVALID_MAJOR_VERSION = 5,
  INVALID_SYNTAX = 7,
  INVALID_MESSAGE_ID = 9,
  INVALID_SPI = 11,
  NO_PROPOSAL_CHOSEN = 14,
  INVALID_KE_PAYLOAD = 17,
  AUTHENTICATION_FAILED = 24,
  SINGLE_PAIR_REQUIRED = 34,
  NO_ADDITIONAL_SAS = 35,
  INTERNAL_ADDRESS_FAILURE = 36,
  FAILED_CP_REQUIRED = 37,
  TS_UNACCEPTABLE = 38,
  INVALID_SELECTORS = 39,
  /** RFC 4555 (MOBIKE). */
  UNACCEPTABLE_ADDRESSES = 40,
  UNEXPECTED_NAT_DETECTED = 41,
  /** RFC 5723 (session resumption). */
  USE_ASSIGNED_HOA = 42,
  TEMPORARY_FAILURE = 43,
  CHILD_SA_NOT_FOUND = 44,
  /** RFC 6311 (protocol support for high availability). */
  INVALID_GROUP_ID = 45,
  AUTHORIZATION_FAILED = 46,
  /** RFC 7651 (3GPP). */
  STATE_NOT_FOUND = 47,

  INITIAL_CONTACT = 16384,
  SET_WINDOW_SIZE = 16385,
  ADDITIONAL_TS_POSSIBLE = 16386,
  IPCOMP_SUPPORTED = 16387,
  NAT_DETECTION_SOURCE_IP = 16388,
  NAT_DETECTION_DESTINATION_IP = 16389,
  COOKIE = 16390,
  USE_TRANSPORT_MODE = 16391,
  HTTP_CERT_LOOKUP_SUPPORTED = 16392,
  REKEY_SA = 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
  NON_FIRST_FRAGMENTS_ALSO = 16395,
  /** RFC 4555. */
  MOBIKE_SUPPORTED = 16396,
  /** RFC 4739. */
  MULTIPLE_AUTH_SUPPORTED = 16404,
  /** RFC 5685. */
  REDIRECT_SUPPORTED = 16406,
  REDIRECT = 16407,
  /** RFC 6023. */
  CHILDLESS_IKEV2_SUPPORTED = 16418,
  /** RFC 7383. */
  IKEV2_FRAGMENTATION_SUPPORTED = 16430,
  /** RFC 7427. */
  SIGNATURE_HASH_ALGORITHMS = 16431,
}

/** First status notify type: anything below is an error (RFC 7296 §3.10.1). */
export const NOTIFY_STATUS_MIN = 16384;

// ---- Specification constants: bit layout of the generic payload header and SA substructures ----

/** Critical bit in the second octet of the generic payload header (RFC 7296 §3.2). */
export const CRITICAL_BIT = 0x80;
/** "Last Substruc" values: another proposal / transform follows (RFC 7296 §3.3.1, §3.3.2). */
export const MORE_PROPOSALS = 2;
export const MORE_TRANSFORMS = 3;
/** Attribute Format bit: set for TV (2-octet value), clear for TLV (RFC 7296 §3.3.5). */
export const ATTR_FORMAT_TV = 0x8000;
