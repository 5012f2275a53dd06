/**
 * IKEv2 key derivation (RFC 7296 §2.14, §2.17, §2.18) and shared-key AUTH (§2.15).
 */
import { CryptoError } from '../../errors.js';
import type { EncrAlg } from './encr.js';
import type { IntegAlg } from './integ.js';
import { type PrfAlg, prf, prfPlus } from './prf.js';

export interface IkeKeys {
  skeyseed: Buffer;
  skD: Buffer;
  skAi: Buffer;
  skAr: Buffer;
  /** Encryption keys include the 4-byte salt for AES-GCM (RFC 5282 §7.1). */
  skEi: Buffer;
  skEr: Buffer;
  skPi: Buffer;
  skPr: Buffer;
}

export interface ChildKeys {
  encrI: Buffer;
  integI: Buffer | null;
  encrR: Buffer;
  integR: Buffer | null;
}

function checkSpis(spiI: Buffer, spiR: Buffer): void {
  if (spiI.length !== 8 || spiR.length !== 8) throw new CryptoError('IKE SPIs must be 8 bytes');
}

/**
 * Splits {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
 * With an AEAD cipher there are no SK_a keys (empty buffers).
 */
function splitIkeKeys(
  alg: PrfAlg,
  encr: EncrAlg,
  integ: IntegAlg | null,
  skeyseed: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): IkeKeys {
  checkSpis(spiI, spiR);
  const aLen = encr.aead || !integ ? 0 : integ.keyLen;
  const eLen = encr.keyMatLen;
  const pLen = alg.outLen;
  const total = pLen + 2 * aLen + 2 * eLen + 2 * pLen;
  const km = prfPlus(alg, skeyseed, Buffer.concat([ni, nr, spiI, spiR]), total);
  let off = 0;
  const take = (n: number): Buffer => {
    const b = Buffer.from(km.subarray(off, off + n));
    off += n;
    return b;
  };
  const keys = {
    skeyseed,
    skD: take(pLen),
    skAi: take(aLen),
    skAr: take(aLen),
    skEi: take(eLen),
    skEr: take(eLen),
    skPi: take(pLen),
    skPr: take(pLen),
  };
  // Every key was copied out: the keystream goes (security issue #11: wipe key material in JS).
  km.fill(0);
  return keys;
}

/**
 * Initial IKE SA keys: SKEYSEED = prf(Ni | Nr, g^ir). For HMAC PRFs the nonces are the key as is;
 * the §2.14 truncation rule for fixed-key-size PRFs (AES-XCBC/CMAC) does not apply.
 */
export function deriveIkeKeys(
  alg: PrfAlg,
  encr: EncrAlg,
  integ: IntegAlg | null,
  ni: Buffer,
  nr: Buffer,
  dhSecret: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): IkeKeys {
  const skeyseed = prf(alg, Buffer.concat([ni, nr]), dhSecret);
  return splitIkeKeys(alg, encr, integ, skeyseed, ni, nr, spiI, spiR);
}

/**
 * Rekeyed IKE SA keys (§2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), using the PRF
 * negotiated for the new SA; SPIs are the new SA's, nonces those of the CREATE_CHILD_SA exchange.
 */
export function deriveIkeKeysRekey(
  alg: PrfAlg,
  encr: EncrAlg,
  integ: IntegAlg | null,
  oldSkD: Buffer,
  dhSecret: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): IkeKeys {
  const input = Buffer.concat([dhSecret, ni, nr]);
  const skeyseed = prf(alg, oldSkD, input);
  input.fill(0); // holds a copy of g^ir
  return splitIkeKeys(alg, encr, integ, skeyseed, ni, nr, spiI, spiR);
}

/**
 * CHILD_SA keys (§2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken in the order
 * initiator->responder encryption, integrity, then responder->initiator encryption, integrity.
 * `encrKeyLen` includes the GCM salt; `integKeyLen` is 0 for AEAD.
 */
export function deriveChildKeys(
  alg: PrfAlg,
  skD: Buffer,
  encrKeyLen: number,
  integKeyLen: number,
  ni: Buffer,
  nr: Buffer,
  dhSecret?: Buffer,
): ChildKeys {
  const seed = Buffer.concat(dhSecret ? [dhSecret, ni, nr] : [ni, nr]);
  const km = prfPlus(alg, skD, seed, 2 * (encrKeyLen + integKeyLen));
  seed.fill(0); // a copy of g^ir with PFS
  const e = encrKeyLen;
  const a = integKeyLen;
  const slice = (from: number, len: number) => Buffer.from(km.subarray(from, from + len));
  const keys = {
    encrI: slice(0, e),
    integI: a > 0 ? slice(e, a) : null,
    encrR: slice(e + a, e),
    integR: a > 0 ? slice(2 * e + a, a) : null,
  };
  km.fill(0); // the keys were copied out
  return keys;
}

const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/**
 * Shared-key AUTH data (§2.15):
 *   prf(prf(Shared Secret, "Key Pad for IKEv2"), RealMessage | NoncePeer | prf(SK_p, IDBody))
 * where RealMessage is the signer's IKE_SA_INIT message, NoncePeer the other side's nonce data,
 * SK_p the signer's SK_pi/SK_pr and IDBody the signer's ID payload body (type, 3 reserved, data).
 */
export function pskAuth(
  alg: PrfAlg,
  psk: Buffer,
  realMessage: Buffer,
  peerNonce: Buffer,
  skP: Buffer,
  idBody: Buffer,
): Buffer {
  const macedId = prf(alg, skP, idBody);
  const key = prf(alg, psk, KEY_PAD);
  const auth = prf(alg, key, Buffer.concat([realMessage, peerNonce, macedId]));
  // prf(PSK, pad) is as good as the PSK for forging AUTH: not left in the heap (issue #11).
  key.fill(0);
  return auth;
}
