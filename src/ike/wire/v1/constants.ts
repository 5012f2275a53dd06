/**
 * ISAKMP / IKEv1 numbers: RFC 2408 (ISAKMP), RFC 2407 (IPsec DOI), RFC 2409 (IKE), RFC 3947
 * (NAT-T), RFC 3706 (DPD), as in the IANA "ISAKMP" and "IPsec DOI" registries. Regular (not const)
 * enums so they exist at run time for reverse lookup in logs: `PayloadTypeV1[13] === 'VID'`.
 */

/** The header's version byte: major 1, minor 0 (RFC 2408 §3.1). */
export const ISAKMP_VERSION = 0x10;

// ---- RFC 2408 §3.1, header ----

/** Exchange types (RFC 2408 §3.1; Quick Mode and Informational from RFC 2409, Transaction from mode-config drafts). */
export enum ExchangeTypeV1 {
  BASE = 1,
  /** Main Mode (RFC 2409 §5). */
  IDENTITY_PROTECTION = 2,
  AUTHENTICATION_ONLY = 3,
  AGGRESSIVE = 4,
  INFORMATIONAL = 5,
  /** XAUTH / mode-config (draft-dukes-ike-mode-cfg). */
  TRANSACTION = 6,
  QUICK = 32,
  NEW_GROUP = 33,
}

/** Header flags byte (RFC 2408 §3.1). */
export enum HeaderFlagV1 {
  ENCRYPTION = 0x01,
  COMMIT = 0x02,
  AUTHENTICATION_ONLY = 0x04,
}

// ---- RFC 2408 §3.1 next-payload values, RFC 3947 §3.2 / §5.2 ----

export enum PayloadTypeV1 {
  NONE = 0,
  SA = 1,
  /** Proposal and Transform only occur nested inside an SA payload. */
  P = 2,
  T = 3,
  KE = 4,
  ID = 5,
  CERT = 6,
  CR = 7,
  HASH = 8,
  SIG = 9,
  NONCE = 10,
  N = 11,
  D = 12,
  VID = 13,
  /** Attribute payload of XAUTH / mode-config (draft-dukes-ike-mode-cfg §3.2). */
  ATTR = 14,
  NAT_D = 20,
  NAT_OA = 21,
  /** Pre-RFC numbers of draft-ietf-ipsec-nat-t-ike-02/03, still sent by older peers. */
  NAT_D_DRAFT = 130,
  NAT_OA_DRAFT = 131,
}

// ---- RFC 2407 §4.2 / §4.4.1, DOI, situation, protocols ----

export const DOI_IPSEC = 1;
export const SIT_IDENTITY_ONLY = 1;

export enum ProtocolIdV1 {
  ISAKMP = 1,
  IPSEC_AH = 2,
  IPSEC_ESP = 3,
  IPCOMP = 4,
}

/** Phase-1 transform ID (RFC 2407 §4.4.2): the only one there is. */
export const KEY_IKE = 1;

/** ESP transform IDs (RFC 2407 §4.4.4, IANA). */
export enum EspTransformId {
  /** Single DES: known only to refuse it by name. */
  ESP_DES = 2,
  ESP_3DES = 3,
  ESP_NULL = 11,
  ESP_AES_CBC = 12,
  ESP_AES_CTR = 13,
  ESP_AES_GCM_8 = 18,
  ESP_AES_GCM_12 = 19,
  ESP_AES_GCM_16 = 20,
}

// ---- RFC 2408 §3.14.1, notify message types ----

export enum NotifyTypeV1 {
  INVALID_PAYLOAD_TYPE = 1,
  DOI_NOT_SUPPORTED = 2,
  SITUATION_NOT_SUPPORTED = 3,
  INVALID_COOKIE = 4,
  INVALID_MAJOR_VERSION = 5,
  INVALID_MINOR_VERSION = 6,
  INVALID_EXCHANGE_TYPE = 7,
  INVALID_FLAGS = 8,
  INVALID_MESSAGE_ID = 9,
  INVALID_PROTOCOL_ID = 10,
  INVALID_SPI = 11,
  INVALID_TRANSFORM_ID = 12,
  ATTRIBUTES_NOT_SUPPORTED = 13,
  NO_PROPOSAL_CHOSEN = 14,
  BAD_PROPOSAL_SYNTAX = 15,
  PAYLOAD_MALFORMED = 16,
  INVALID_KEY_INFORMATION = 17,
  INVALID_ID_INFORMATION = 18,
  INVALID_CERT_ENCODING = 19,
  INVALID_CERTIFICATE = 20,
  CERT_TYPE_UNSUPPORTED = 21,
  INVALID_CERT_AUTHORITY = 22,
  INVALID_HASH_INFORMATION = 23,
  AUTHENTICATION_FAILED = 24,
  INVALID_SIGNATURE = 25,
  ADDRESS_NOTIFICATION = 26,
  NOTIFY_SA_LIFETIME = 27,
  CERTIFICATE_UNAVAILABLE = 28,
  UNSUPPORTED_EXCHANGE_TYPE = 29,
  UNEQUAL_PAYLOAD_LENGTHS = 30,
  CONNECTED = 16384,
  /** RFC 2407 §4.6.3. */
  RESPONDER_LIFETIME = 24576,
  REPLAY_STATUS = 24577,
  INITIAL_CONTACT = 24578,
  /** RFC 3706 §5. */
  R_U_THERE = 36136,
  R_U_THERE_ACK = 36137,
}

// ---- RFC 2407 §4.6.2.1, identification types ----

export enum IdTypeV1 {
  IPV4_ADDR = 1,
  FQDN = 2,
  USER_FQDN = 3,
  IPV4_ADDR_SUBNET = 4,
  IPV6_ADDR = 5,
  IPV6_ADDR_SUBNET = 6,
  IPV4_ADDR_RANGE = 7,
  IPV6_ADDR_RANGE = 8,
  DER_ASN1_DN = 9,
  DER_ASN1_GN = 10,
  KEY_ID = 11,
}

// ---- RFC 2408 §3.3, data attributes ----

/** Attribute Format bit: set for TV (2-byte value in the length field), clear for TLV. */
export const ATTR_FORMAT_TV = 0x8000;

/** Phase-1 (ISAKMP SA) attribute types, RFC 2409 Appendix A. */
export enum Phase1Attr {
  ENCRYPTION_ALGORITHM = 1,
  HASH_ALGORITHM = 2,
  AUTHENTICATION_METHOD = 3,
  GROUP_DESCRIPTION = 4,
  GROUP_TYPE = 5,
  LIFE_TYPE = 11,
  LIFE_DURATION = 12,
  PRF = 13,
  KEY_LENGTH = 14,
}

/** Phase-1 encryption algorithm values (RFC 2409 App. A, RFC 3602 for AES). */
export enum Phase1Encr {
  DES_CBC = 1,
  TRIPLE_DES_CBC = 5,
  AES_CBC = 7,
}

/** Phase-1 hash algorithm values (RFC 2409 App. A, RFC 4868 for SHA-2). */
export enum Phase1Hash {
  MD5 = 1,
  SHA = 2,
  SHA2_256 = 4,
  SHA2_384 = 5,
  SHA2_512 = 6,
}

/** Phase-1 authentication method values (RFC 2409 App. A; XAUTH ones from draft-beaulieu-ike-xauth). */
export enum Phase1Auth {
  PRE_SHARED_KEY = 1,
  DSS_SIGNATURES = 2,
  RSA_SIGNATURES = 3,
  XAUTH_INIT_PSK = 65001,
  XAUTH_RESP_PSK = 65002,
}

/** Life type values, phase 1 (RFC 2409 App. A) and phase 2 (RFC 2407 §4.5) alike. */
export enum LifeType {
  SECONDS = 1,
  KILOBYTES = 2,
}

/** Phase-2 (IPsec SA) attribute types, RFC 2407 §4.5. */
export enum Phase2Attr {
  SA_LIFE_TYPE = 1,
  SA_LIFE_DURATION = 2,
  GROUP_DESCRIPTION = 3,
  ENCAPSULATION_MODE = 4,
  AUTHENTICATION_ALGORITHM = 5,
  KEY_LENGTH = 6,
  KEY_ROUNDS = 7,
  COMPRESS_DICTIONARY_SIZE = 8,
  COMPRESS_PRIVATE_ALGORITHM = 9,
  /** Extended sequence numbers (RFC 4304 §3). */
  ESN = 11,
}

/** Encapsulation mode values: RFC 2407 §4.5, UDP ones RFC 3947 §5 and the drafts' private numbers. */
export enum EncapsulationMode {
  TUNNEL = 1,
  TRANSPORT = 2,
  UDP_TUNNEL = 3,
  UDP_TRANSPORT = 4,
  UDP_TUNNEL_DRAFT = 61443,
  UDP_TRANSPORT_DRAFT = 61444,
}

/** Phase-2 authentication algorithm values (RFC 2407 §4.5, RFC 4868). */
export enum Phase2AuthAlg {
  HMAC_MD5 = 1,
  HMAC_SHA = 2,
  HMAC_SHA2_256 = 5,
  HMAC_SHA2_384 = 6,
  HMAC_SHA2_512 = 7,
}
