/**
 * IKEv2 integrity algorithms: truncated HMAC (RFC 2404 for SHA1-96, RFC 4868 for SHA-2).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CryptoError } from '../../errors.js';
import { IntegId } from '../wire/constants.js';

export interface IntegAlg {
  id: number;
  name: string;
  /** node:crypto digest name. */
  hash: string;
  /** Key length in bytes (= digest length for the HMAC variants, RFC 4868 §2.1.1). */
  keyLen: number;
  /** Truncated ICV length in bytes. */
  icvLen: number;
}

const INTEGS: ReadonlyMap<number, IntegAlg> = new Map(
  [
    { id: IntegId.HMAC_MD5_96, name: 'md5', hash: 'md5', keyLen: 16, icvLen: 12 },
    { id: IntegId.HMAC_SHA1_96, name: 'sha1', hash: 'sha1', keyLen: 20, icvLen: 12 },
    { id: IntegId.HMAC_SHA2_256_128, name: 'sha256', hash: 'sha256', keyLen: 32, icvLen: 16 },
    { id: IntegId.HMAC_SHA2_384_192, name: 'sha384', hash: 'sha384', keyLen: 48, icvLen: 24 },
    { id: IntegId.HMAC_SHA2_512_256, name: 'sha512', hash: 'sha512', keyLen: 64, icvLen: 32 },
  ].map((a) => [a.id, Object.freeze(a)]),
);

/** Looks up an integrity algorithm by IANA transform ID; throws CryptoError when unsupported. */
export function integAlg(id: number): IntegAlg {
  const alg = INTEGS.get(id);
  if (!alg) throw new CryptoError(`unsupported integrity transform ${id}`);
  return alg;
}

/** HMAC over `data`, truncated to the algorithm's ICV length. */
export function integSign(alg: IntegAlg, key: Buffer, data: Buffer): Buffer {
  return createHmac(alg.hash, key).update(data).digest().subarray(0, alg.icvLen);
}

/** Constant-time ICV check; a wrong-length ICV is simply a mismatch. */
export function integVerify(alg: IntegAlg, key: Buffer, data: Buffer, icv: Buffer): boolean {
  if (icv.length !== alg.icvLen) return false;
  return timingSafeEqual(integSign(alg, key, data), icv);
}
