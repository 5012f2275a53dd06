/**
 * IKEv1 algorithm numbers and what twinsec runs them on: phase-1 attribute values (RFC 2409
 * Appendix A), phase-2 ESP transform IDs and attribute values (RFC 2407 §4.4.4, §4.5), each mapped
 * to a node:crypto cipher, the HMAC used as prf, or the IKEv2 ID the data plane and dh.ts speak.
 */
import { CryptoError } from '../../errors.js';
import { DhId, EncrId, IntegId, PrfId } from '../wire/constants.js';
import { EspTransformId, Phase1Encr, Phase1Hash, Phase2AuthAlg } from '../wire/v1/constants.js';
import { type PrfAlg, prfAlg } from './prf.js';

/** Transform ID of every phase-1 transform in the ISAKMP DOI (RFC 2407 §4.4.2). */
export const V1_KEY_IKE = 1;

/** The phase-1 hash attribute as the HMAC prf every IKEv1 derivation uses (RFC 2409 §5). */
export function v1PrfAlg(hash: number): PrfAlg {
  const map: Record<number, number> = {
    [Phase1Hash.MD5]: PrfId.HMAC_MD5,
    [Phase1Hash.SHA]: PrfId.HMAC_SHA1,
    [Phase1Hash.SHA2_256]: PrfId.HMAC_SHA2_256,
    [Phase1Hash.SHA2_384]: PrfId.HMAC_SHA2_384,
    [Phase1Hash.SHA2_512]: PrfId.HMAC_SHA2_512,
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
    case Phase1Encr.DES_CBC:
      // 56-bit DES falls to exhaustive search; strongSwan 5.9 no longer proposes it either.
      throw new CryptoError('DES is refused: its 56-bit key is too weak; use aes or 3des');
    case Phase1Encr.TRIPLE_DES_CBC:
      if (keyLenBits !== undefined && keyLenBits !== 0 && keyLenBits !== 192) {
        throw new CryptoError(`3DES takes no key length other than 192 bits, got ${keyLenBits}`);
      }
      return Object.freeze({ id, name: '3des', cipher: 'des-ede3-cbc', keyLen: 24, blockLen: 8 });
    case Phase1Encr.AES_CBC:
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
    { auth: Phase2AuthAlg.HMAC_MD5, name: 'md5', integId: IntegId.HMAC_MD5_96, keyLen: 16 },
    { auth: Phase2AuthAlg.HMAC_SHA, name: 'sha1', integId: IntegId.HMAC_SHA1_96, keyLen: 20 },
    // HMAC-SHA-256-128 (RFC 4868): strongSwan installs 128-bit ICVs, not the 96-bit draft variant.
    { auth: Phase2AuthAlg.HMAC_SHA2_256, name: 'sha256', integId: IntegId.HMAC_SHA2_256_128, keyLen: 32 },
    { auth: Phase2AuthAlg.HMAC_SHA2_384, name: 'sha384', integId: IntegId.HMAC_SHA2_384_192, keyLen: 48 },
    { auth: Phase2AuthAlg.HMAC_SHA2_512, name: 'sha512', integId: IntegId.HMAC_SHA2_512_256, keyLen: 64 },
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
    case EspTransformId.ESP_3DES:
      return 24;
    case EspTransformId.ESP_AES_CBC:
      return keyLenBits / 8;
    case EspTransformId.ESP_AES_GCM_16:
      return keyLenBits / 8 + 4;
    default:
      throw new CryptoError(`unsupported ESP transform ${transformId}`);
  }
}

/** ESP transform IDs coincide with IKEv2 ENCR IDs; this names the data-plane cipher. */
export const V1_ESP_TO_ENCR: ReadonlyMap<number, number> = new Map([
  [EspTransformId.ESP_3DES, EncrId.DES3],
  [EspTransformId.ESP_AES_CBC, EncrId.AES_CBC],
  [EspTransformId.ESP_AES_GCM_16, EncrId.AES_GCM_16],
]);
