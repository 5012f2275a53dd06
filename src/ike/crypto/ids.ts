/**
 * IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" numbers used by the crypto layer and
 * the proposal parser. Kept local on purpose: crypto and proposal code must not depend on the wire
 * layer's enums, which are owned elsewhere. The numbers are the IANA registry values, so both sets
 * agree by construction.
 */

/** Transform Type Values (RFC 7296 §3.3.2). */
export const XFORM = {
  ENCR: 1,
  PRF: 2,
  INTEG: 3,
  DH: 4,
  ESN: 5,
} as const;

/** Transform Type 1 - Encryption Algorithm Transform IDs. */
export const ENCR_ID = {
  AES_CBC: 12,
  AES_GCM_16: 20,
} as const;

/** Transform Type 2 - Pseudorandom Function Transform IDs. */
export const PRF_ID = {
  HMAC_MD5: 1,
  HMAC_SHA1: 2,
  HMAC_SHA2_256: 5,
  HMAC_SHA2_384: 6,
  HMAC_SHA2_512: 7,
} as const;

/** Transform Type 3 - Integrity Algorithm Transform IDs. */
export const INTEG_ID = {
  NONE: 0,
  HMAC_MD5_96: 1,
  HMAC_SHA1_96: 2,
  HMAC_SHA2_256_128: 12,
  HMAC_SHA2_384_192: 13,
  HMAC_SHA2_512_256: 14,
} as const;

/** Transform Type 4 - Key Exchange Method (Diffie-Hellman group) Transform IDs. */
export const DH_ID = {
  NONE: 0,
  MODP1024: 2,
  MODP1536: 5,
  MODP2048: 14,
  MODP3072: 15,
  MODP4096: 16,
  ECP256: 19,
  ECP384: 20,
  MODP2048S256: 24,
  CURVE25519: 31,
} as const;

/** Transform Type 5 - Extended Sequence Numbers Transform IDs. */
export const ESN_ID = {
  NO: 0,
  YES: 1,
} as const;

/** Security Protocol Identifiers (RFC 7296 §3.3.1). */
export const PROTO_ID = {
  IKE: 1,
  AH: 2,
  ESP: 3,
} as const;

/** Transform attribute type "Key Length" in bits (RFC 7296 §3.3.5). */
export const ATTR_KEY_LENGTH = 14;
