/**
 * Received nonce length (RFC 7296 §2.10): "Nonces used in IKEv2 MUST be randomly chosen, MUST be
 * at least 128 bits in size, and MUST be at least half the key size of the negotiated pseudorandom
 * function (PRF)". The wire decoder already refuses fewer than 16 bytes; this adds the PRF half,
 * which matters for PRF_HMAC_SHA2_384/512 (24/32 bytes). For HMAC PRFs the key size is the output
 * length (§2.13 preferred key length).
 */
import type { PrfAlg } from '../crypto/prf.js';

/** The shortest nonce acceptable with `prf` (bytes). */
export function minNonceLength(prf: Pick<PrfAlg, 'outLen'> | undefined): number {
  return Math.max(16, Math.ceil((prf?.outLen ?? 0) / 2));
}

/** Why a received nonce is too short for `prf`, or null. */
export function nonceTooShort(
  nonce: Buffer,
  prf: Pick<PrfAlg, 'outLen' | 'name'> | undefined,
): string | null {
  const min = minNonceLength(prf);
  return nonce.length < min
    ? `nonce of ${nonce.length} bytes, ${prf?.name ?? 'the PRF'} needs at least ${min} (RFC 7296 §2.10)`
    : null;
}
