/**
 * IKEv1 key derivation and exchange hashes (RFC 2409 §5, §5.5, §5.7, Appendix B), pre-shared key
 * authentication only. Every function is pure; `alg` is the HMAC of the negotiated phase-1 hash,
 * which RFC 2409 §4 makes the prf when no prf attribute is negotiated (strongSwan never sends one).
 *
 * Inputs named *_b are payload bodies without the generic payload header (RFC 2409 §5): Ni_b/Nr_b
 * the nonce data, SAi_b the initiator's whole SA payload body, IDii_b/IDir_b the ID payload body.
 * g^xi/g^xr are the KE data as sent, g^xy the shared secret as dh.ts returns it.
 */
import { createHash } from 'node:crypto';
import { CryptoError } from '../../errors.js';
import { type PrfAlg, prf } from './prf.js';

export interface V1Keys {
  skeyid: Buffer;
  skeyidD: Buffer;
  skeyidA: Buffer;
  skeyidE: Buffer;
}

/** prf over an input holding g^xy (and keys): the input copy is wiped after (security issue #11). */
function prfWiped(alg: PrfAlg, key: Buffer, input: Buffer): Buffer {
  const out = prf(alg, key, input);
  input.fill(0);
  return out;
}

function checkCookies(ckyI: Buffer, ckyR: Buffer): void {
  if (ckyI.length !== 8 || ckyR.length !== 8) throw new CryptoError('ISAKMP cookies must be 8 bytes');
}

/** The 4-byte message ID as the hashes carry it (network order, RFC 2408 §3.1). */
function midBytes(mid: number): Buffer {
  if (!Number.isInteger(mid) || mid < 0 || mid > 0xffffffff) {
    throw new CryptoError('message ID must be a 32-bit unsigned integer');
  }
  const b = Buffer.alloc(4);
  b.writeUInt32BE(mid);
  return b;
}

/** RFC 2409 §5: for pre-shared keys SKEYID = prf(pre-shared-key, Ni_b | Nr_b). */
export function skeyidPsk(alg: PrfAlg, psk: Buffer, niB: Buffer, nrB: Buffer): Buffer {
  return prf(alg, psk, Buffer.concat([niB, nrB]));
}

/** SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0) (RFC 2409 §5). */
export function skeyidD(alg: PrfAlg, skeyid: Buffer, gxy: Buffer, ckyI: Buffer, ckyR: Buffer): Buffer {
  checkCookies(ckyI, ckyR);
  return prfWiped(alg, skeyid, Buffer.concat([gxy, ckyI, ckyR, Buffer.of(0)]));
}

/** SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1) (RFC 2409 §5). */
export function skeyidA(
  alg: PrfAlg,
  skeyid: Buffer,
  skD: Buffer,
  gxy: Buffer,
  ckyI: Buffer,
  ckyR: Buffer,
): Buffer {
  checkCookies(ckyI, ckyR);
  return prfWiped(alg, skeyid, Buffer.concat([skD, gxy, ckyI, ckyR, Buffer.of(1)]));
}

/** SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2) (RFC 2409 §5). */
export function skeyidE(
  alg: PrfAlg,
  skeyid: Buffer,
  skA: Buffer,
  gxy: Buffer,
  ckyI: Buffer,
  ckyR: Buffer,
): Buffer {
  checkCookies(ckyI, ckyR);
  return prfWiped(alg, skeyid, Buffer.concat([skA, gxy, ckyI, ckyR, Buffer.of(2)]));
}

/** All four phase-1 keys of a pre-shared-key exchange (Main or Aggressive Mode). */
export function deriveV1Keys(
  alg: PrfAlg,
  psk: Buffer,
  niB: Buffer,
  nrB: Buffer,
  gxy: Buffer,
  ckyI: Buffer,
  ckyR: Buffer,
): V1Keys {
  const skeyid = skeyidPsk(alg, psk, niB, nrB);
  const d = skeyidD(alg, skeyid, gxy, ckyI, ckyR);
  const a = skeyidA(alg, skeyid, d, gxy, ckyI, ckyR);
  const e = skeyidE(alg, skeyid, a, gxy, ckyI, ckyR);
  return { skeyid, skeyidD: d, skeyidA: a, skeyidE: e };
}

/**
 * The phase-1 cipher key from SKEYID_e (RFC 2409 Appendix B): its first bytes when it is long
 * enough, else Ka = K1 | K2 | ... truncated, K1 = prf(SKEYID_e, 0x00), Kn = prf(SKEYID_e, Kn-1).
 * SHA-1 (20 bytes) needs this for AES-192/256 and 3DES.
 */
export function v1EncryptionKey(alg: PrfAlg, skE: Buffer, keyLen: number): Buffer {
  if (!Number.isInteger(keyLen) || keyLen <= 0) throw new CryptoError('key length must be positive');
  if (skE.length >= keyLen) return Buffer.from(skE.subarray(0, keyLen));
  const blocks: Buffer[] = [];
  let k = prf(alg, skE, Buffer.of(0));
  blocks.push(k);
  for (let have = k.length; have < keyLen; have += k.length) {
    k = prf(alg, skE, k);
    blocks.push(k);
  }
  return Buffer.concat(blocks).subarray(0, keyLen);
}

/** The plain hash (not HMAC) of the negotiated algorithm, truncated to `len` bytes. */
function hashTrunc(alg: PrfAlg, data: Buffer[], len: number): Buffer {
  const h = createHash(alg.hash);
  for (const d of data) h.update(d);
  const out = h.digest();
  if (len <= 0 || len > out.length) throw new CryptoError(`IV length ${len} exceeds the hash output`);
  return out.subarray(0, len);
}

/** Phase-1 IV = hash(g^xi | g^xr), truncated to the cipher block (RFC 2409 Appendix B). */
export function v1Phase1Iv(alg: PrfAlg, gxi: Buffer, gxr: Buffer, blockLen: number): Buffer {
  return hashTrunc(alg, [gxi, gxr], blockLen);
}

/**
 * IV of the first message of a Quick Mode or Informational exchange: hash(last phase-1 CBC block |
 * M-ID), truncated to the block (RFC 2409 Appendix B); later messages of that exchange chain on.
 */
export function v1Phase2Iv(alg: PrfAlg, lastPhase1Block: Buffer, mid: number, blockLen: number): Buffer {
  return hashTrunc(alg, [lastPhase1Block, midBytes(mid)], blockLen);
}

/** HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) (RFC 2409 §5). */
export function v1HashI(
  alg: PrfAlg,
  skeyid: Buffer,
  gxi: Buffer,
  gxr: Buffer,
  ckyI: Buffer,
  ckyR: Buffer,
  saiB: Buffer,
  idiiB: Buffer,
): Buffer {
  checkCookies(ckyI, ckyR);
  return prf(alg, skeyid, Buffer.concat([gxi, gxr, ckyI, ckyR, saiB, idiiB]));
}

/**
 * HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) (RFC 2409 §5). Arguments are
 * given in the initiator-first order of v1HashI; the swap happens here, so callers cannot get it
 * wrong. SAi_b is still the initiator's SA payload.
 */
export function v1HashR(
  alg: PrfAlg,
  skeyid: Buffer,
  gxi: Buffer,
  gxr: Buffer,
  ckyI: Buffer,
  ckyR: Buffer,
  saiB: Buffer,
  idirB: Buffer,
): Buffer {
  checkCookies(ckyI, ckyR);
  return prf(alg, skeyid, Buffer.concat([gxr, gxi, ckyR, ckyI, saiB, idirB]));
}

/**
 * Quick Mode HASH(1) = prf(SKEYID_a, M-ID | rest), `rest` being every payload after the HASH
 * payload, generic headers included (RFC 2409 §5.5). The Informational HASH(1) is the same
 * formula (§5.7).
 */
export function v1QmHash1(alg: PrfAlg, skA: Buffer, mid: number, rest: Buffer): Buffer {
  return prf(alg, skA, Buffer.concat([midBytes(mid), rest]));
}

/** Informational HASH(1) = prf(SKEYID_a, M-ID | N/D) (RFC 2409 §5.7). */
export const v1InfoHash = v1QmHash1;

/** Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | rest) (RFC 2409 §5.5). */
export function v1QmHash2(alg: PrfAlg, skA: Buffer, mid: number, niB: Buffer, rest: Buffer): Buffer {
  return prf(alg, skA, Buffer.concat([midBytes(mid), niB, rest]));
}

/** Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b) (RFC 2409 §5.5). */
export function v1QmHash3(alg: PrfAlg, skA: Buffer, mid: number, niB: Buffer, nrB: Buffer): Buffer {
  return prf(alg, skA, Buffer.concat([Buffer.of(0), midBytes(mid), niB, nrB]));
}

/**
 * KEYMAT for one direction of an IPsec SA (RFC 2409 §5.5):
 *   K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
 *   Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
 * KEYMAT = K1 | K2 | ... truncated to `length`. Each SA has its own SPI, so this runs once per
 * direction, with the SPI the receiving side chose (for our inbound SA: our SPI). The key material
 * is taken in order encryption key (with the GCM salt), then integrity key (v1SplitKeymat).
 * `gqmxy` is the quick-mode DH secret when PFS is used.
 */
export function v1Keymat(
  alg: PrfAlg,
  skD: Buffer,
  protocol: number,
  spi: Buffer,
  niB: Buffer,
  nrB: Buffer,
  length: number,
  gqmxy?: Buffer,
): Buffer {
  if (!Number.isInteger(length) || length <= 0) throw new CryptoError('KEYMAT length must be positive');
  if (!Number.isInteger(protocol) || protocol < 0 || protocol > 255) {
    throw new CryptoError('protocol must be one octet');
  }
  const seed = Buffer.concat([...(gqmxy ? [gqmxy] : []), Buffer.of(protocol), spi, niB, nrB]);
  const blocks: Buffer[] = [];
  let have = 0;
  let k: Buffer = Buffer.alloc(0);
  while (have < length) {
    k = prf(alg, skD, Buffer.concat([k, seed]));
    blocks.push(k);
    have += k.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** Splits one direction's KEYMAT into the encryption key (salt included) and the integrity key. */
export function v1SplitKeymat(
  keymat: Buffer,
  encrKeyLen: number,
  integKeyLen: number,
): { encr: Buffer; integ: Buffer | null } {
  if (keymat.length !== encrKeyLen + integKeyLen) throw new CryptoError('KEYMAT length mismatch');
  return {
    encr: Buffer.from(keymat.subarray(0, encrKeyLen)),
    integ: integKeyLen > 0 ? Buffer.from(keymat.subarray(encrKeyLen)) : null,
  };
}
