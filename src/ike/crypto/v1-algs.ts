/**
 * IKEv1 algorithm numbers and what twinsec runs them on: phase-1 attribute values (RFC 2409
 * Appendix A), phase-2 ESP transform IDs and attribute values (RFC 2407 §4.4.4, §4.5), each mapped
 * to a node:crypto cipher, the HMAC used as prf, or the IKEv2 ID the data plane and dh.ts speak.
 */
import { CryptoError } from '../../errors.js';
import { DhId, EncrId, IntegId, PrfId } from '../wire/constants.js';
import { type PrfAlg, prfAlg } from './prf.js';

/** Phase-1 SA attribute types (RFC 2409 Appendix A). */
export enum V1P1Attr {
  ENCRYPTION = 1,
  HASH = 2,
  AUTH_METHOD = 3,
  GROUP_DESCRIPTION = 4,
  LIFE_TYPE = 11,
  LIFE_DURATION = 12,
  KEY_LENGTH = 14,
}

/** Phase-2 (IPsec DOI) SA attribute types (RFC 2407 §4.5; ESN from RFC 4304 §3). */
export enum V1P2Attr {
  LIFE_TYPE = 1,
  LIFE_DURATION = 2,
  GROUP_DESCRIPTION = 3,
  ENCAPSULATION_MODE = 4,
  AUTH_ALGORITHM = 5,
  KEY_LENGTH = 6,
  ESN = 11,
}

/** Phase-1 encryption algorithm values (RFC 2409 Appendix A; AES from RFC 3602 §5.3). */
export enum V1Encr {
  DES_CBC = 1,
  DES3_CBC = 5,
  AES_CBC = 7,
}

/** Phase-1 hash algorithm values (RFC 2409 Appendix A; SHA-2 from RFC 4868 §2.5 / IANA). */
export enum V1Hash {
  MD5 = 1,
  SHA1 = 2,
  SHA2_256 = 4,
  SHA2_384 = 5,
  SHA2_512 = 6,
}

/** Phase-1 authentication method: only pre-shared keys are implemented. */
export const V1_AUTH_PSK = 1;

/** Life type values, phase 1 and phase 2 alike (RFC 2409 App. A, RFC 2407 §4.5). */
export enum V1LifeType {
  SECONDS = 1,
  KILOBYTES = 2,
}

/** Transform ID of every phase-1 transform in the ISAKMP DOI (RFC 2407 §4.4.2). */
export const V1_KEY_IKE = 1;

/** ESP transform IDs (RFC 2407 §4.4.4, RFC 4106 §8.1): the same numbers as IKEv2's ENCR IDs. */
export enum V1EspId {
  DES = 2,
  DES3 = 3,
  AES_CBC = 12,
  AES_GCM_16 = 20,
}

/** Phase-2 authentication algorithm attribute values (RFC 2407 §4.5, RFC 4868 §2.4). */
export enum V1EspAuth {
  HMAC_MD5 = 1,
  HMAC_SHA1 = 2,
  HMAC_SHA2_256 = 5,
  HMAC_SHA2_384 = 6,
  HMAC_SHA2_512 = 7,
}

/**
 * Encapsulation mode values: tunnel (RFC 2407 §4.5), UDP-encapsulated tunnel (RFC 3947 §5), and the
 * draft-ietf-ipsec-nat-t-ike value strongSwan still accepts from older peers.
 */
export enum V1Encap {
  TUNNEL = 1,
  UDP_TUNNEL = 3,
  UDP_TUNNEL_DRAFT = 61443,
}

/** The phase-1 hash attribute as the HMAC prf every IKEv1 derivation uses (RFC 2409 §5). */
export function v1PrfAlg(hash: number): PrfAlg {
  const map: Record<number, number> = {
    [V1Hash.MD5]: PrfId.HMAC_MD5,
    [V1Hash.SHA1]: PrfId.HMAC_SHA1,
    [V1Hash.SHA2_256]: PrfId.HMAC_SHA2_256,
    [V1Hash.SHA2_384]: PrfId.HMAC_SHA2_384,
    [V1Hash.SHA2_512]: PrfId.HMAC_SHA2_512,
  };
  const id = map[hash];
  if (id === undefined) throw new CryptoError(`unsupported IKEv1 hash algorithm ${hash}`);
  return prfAlg(id);
}

export interface V1CipherAlg {
  /** Phase-1 encryption attribute value. */
  id: number;
  /** strongSwan keyword (aes128, 3des). */
  name: string;
  /** node:crypto cipher name. */
  cipher: string;
  /** Key length in bytes. */
  keyLen: number;
  /** CBC block length: the IV and padding unit (RFC 2409 §5.3 and Appendix B). */
  blockLen: number;
}

/**
 * Resolves a phase-1 encryption algorithm and its Key Length attribute (bits). AES needs the
 * attribute (RFC 3602 §5.3: it MUST be specified); 3DES has a fixed key and takes none.
 */
export function v1CipherAlg(id: number, keyLenBits?: number): V1CipherAlg {
  switch (id) {
    case V1Encr.DES_CBC:
      // 56-bit DES falls to exhaustive search; strongSwan 5.9 no longer proposes it either.
      throw new CryptoError('DES is refused: its 56-bit key is too weak; use aes or 3des');
    case V1Encr.DES3_CBC:
      if (keyLenBits !== undefined && keyLenBits !== 0 && keyLenBits !== 192) {
        throw new CryptoError(`3DES takes no key length other than 192 bits, got ${keyLenBits}`);
      }
      return Object.freeze({ id, name: '3des', cipher: 'des-ede3-cbc', keyLen: 24, blockLen: 8 });
    case V1Encr.AES_CBC:
      if (keyLenBits !== 128 && keyLenBits !== 192 && keyLenBits !== 256) {
        throw new CryptoError(`AES needs a key length of 128, 192 or 256 bits, got ${keyLenBits}`);
      }
      return Object.freeze({
        id,
        name: `aes${keyLenBits}`,
        cipher: `aes-${keyLenBits}-cbc`,
        keyLen: keyLenBits / 8,
        blockLen: 16,
      });
    default:
      throw new CryptoError(`unsupported IKEv1 encryption algorithm ${id}`);
  }
}

/** IKEv1 group descriptions are the IANA DH group numbers IKEv2 uses (RFC 2409 §6, RFC 3526). */
export const V1_GROUPS: ReadonlyMap<number, string> = new Map([
  [DhId.MODP768, 'modp768'],
  [DhId.MODP1024, 'modp1024'],
  [DhId.MODP1536, 'modp1536'],
  [DhId.MODP2048, 'modp2048'],
  [DhId.MODP3072, 'modp3072'],
  [DhId.MODP4096, 'modp4096'],
  [DhId.ECP256, 'ecp256'],
  [DhId.ECP384, 'ecp384'],
  [DhId.MODP2048S256, 'modp2048s256'],
]);

export interface V1EspInteg {
  /** Phase-2 authentication algorithm attribute value. */
  auth: number;
  name: string;
  /** The IKEv2 integrity ID the data plane installs: the same ICV truncation (RFC 4868 §2.3). */
  integId: number;
  /** KEYMAT bytes for the key (= digest length). */
  keyLen: number;
}

const ESP_INTEG: ReadonlyMap<number, V1EspInteg> = new Map(
  [
    // HMAC-MD5-96 (RFC 2403): a 128-bit key, the ICV truncated to 96 bits as IKEv2's ID 1 says.
    { auth: V1EspAuth.HMAC_MD5, name: 'md5', integId: IntegId.HMAC_MD5_96, keyLen: 16 },
    { auth: V1EspAuth.HMAC_SHA1, name: 'sha1', integId: IntegId.HMAC_SHA1_96, keyLen: 20 },
    // HMAC-SHA-256-128 (RFC 4868): strongSwan installs 128-bit ICVs, not the 96-bit draft variant.
    { auth: V1EspAuth.HMAC_SHA2_256, name: 'sha256', integId: IntegId.HMAC_SHA2_256_128, keyLen: 32 },
    { auth: V1EspAuth.HMAC_SHA2_384, name: 'sha384', integId: IntegId.HMAC_SHA2_384_192, keyLen: 48 },
    { auth: V1EspAuth.HMAC_SHA2_512, name: 'sha512', integId: IntegId.HMAC_SHA2_512_256, keyLen: 64 },
  ].map((a) => [a.auth, Object.freeze(a)]),
);

/** ESP integrity by phase-2 auth attribute (HMAC-MD5-96 for legacy peers, as for IKEv2 ESP). */
export function v1EspInteg(auth: number): V1EspInteg {
  const alg = ESP_INTEG.get(auth);
  if (!alg) throw new CryptoError(`unsupported ESP authentication algorithm ${auth}`);
  return alg;
}

/** KEYMAT bytes for an ESP cipher: key, plus the 4-byte salt for GCM (RFC 4106 §8.1). */
export function v1EspEncrKeyLen(transformId: number, keyLenBits: number): number {
  switch (transformId) {
    case V1EspId.DES3:
      return 24;
    case V1EspId.AES_CBC:
      return keyLenBits / 8;
    case V1EspId.AES_GCM_16:
      return keyLenBits / 8 + 4;
    default:
      throw new CryptoError(`unsupported ESP transform ${transformId}`);
  }
}

/** ESP transform IDs coincide with IKEv2 ENCR IDs; this names the data-plane cipher. */
export const V1_ESP_TO_ENCR: ReadonlyMap<number, number> = new Map([
  [V1EspId.DES3, EncrId.DES3],
  [V1EspId.AES_CBC, EncrId.AES_CBC],
  [V1EspId.AES_GCM_16, EncrId.AES_GCM_16],
]);
