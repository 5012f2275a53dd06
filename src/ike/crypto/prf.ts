/**
 * IKEv2 pseudorandom functions (RFC 7296 §2.13) over node:crypto HMAC.
 */
import { createHmac } from 'node:crypto';
import { CryptoError } from '../../errors.js';
import { PrfId } from '../wire/constants.js';

export interface PrfAlg {
  id: number;
  name: string;
  /** node:crypto digest name. */
  hash: string;
  /** Output length in bytes; also the preferred key length (SK_d, SK_pi/pr). */
  outLen: number;
}

const PRFS: ReadonlyMap<number, PrfAlg> = new Map(
  [
    { id: PrfId.HMAC_MD5, name: 'prfmd5', hash: 'md5', outLen: 16 },
    { id: PrfId.HMAC_SHA1, name: 'prfsha1', hash: 'sha1', outLen: 20 },
    { id: PrfId.HMAC_SHA2_256, name: 'prfsha256', hash: 'sha256', outLen: 32 },
    { id: PrfId.HMAC_SHA2_384, name: 'prfsha384', hash: 'sha384', outLen: 48 },
    { id: PrfId.HMAC_SHA2_512, name: 'prfsha512', hash: 'sha512', outLen: 64 },
  ].map((a) => [a.id, Object.freeze(a)]),
);

/** Looks up a PRF by IANA transform ID; throws CryptoError when unsupported. */
export function prfAlg(id: number): PrfAlg {
  const alg = PRFS.get(id);
  if (!alg) throw new CryptoError(`unsupported PRF transform ${id}`);
  return alg;
}

/** prf(key, data): HMAC with the full digest output. HMAC takes keys of any length. */
export function prf(alg: PrfAlg, key: Buffer, data: Buffer): Buffer {
  return createHmac(alg.hash, key).update(data).digest();
}

/**
 * prf+ (RFC 7296 §2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), output the first
 * `length` bytes of T1 | T2 | ... The counter is one octet, so at most 255 blocks exist.
 */
export function prfPlus(alg: PrfAlg, key: Buffer, seed: Buffer, length: number): Buffer {
  if (!Number.isInteger(length) || length < 0) {
    throw new CryptoError('prf+ length must be a non-negative integer');
  }
  const blocks = Math.ceil(length / alg.outLen);
  if (blocks > 255) {
    throw new CryptoError(`prf+ cannot produce ${length} bytes with ${alg.name}`);
  }
  const out = Buffer.allocUnsafe(blocks * alg.outLen);
  let prev = Buffer.alloc(0);
  for (let n = 1; n <= blocks; n++) {
    const next = createHmac(alg.hash, key).update(prev).update(seed).update(Buffer.of(n)).digest();
    // Each block is key material: wipe the copies we no longer need (security issue #11).
    prev.fill(0);
    prev = next;
    prev.copy(out, (n - 1) * alg.outLen);
  }
  prev.fill(0);
  out.fill(0, length);
  return out.subarray(0, length);
}
