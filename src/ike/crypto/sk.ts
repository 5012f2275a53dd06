/**
 * Protection of the IKEv2 Encrypted and Authenticated (SK) payload body, RFC 7296 §3.14, with
 * AES-GCM per RFC 5282. The body is IV || ciphertext || ICV; the caller supplies `aad`, every
 * message byte before the IV (IKE header with the final Length, unencrypted payloads, SK payload
 * generic header), and gets back or hands in only the body.
 *
 * Plaintext layout before encryption: inner payloads || Padding || Pad Length (1 byte).
 */
import { type CipherGCMTypes, createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from '../../errors.js';
import type { EncrAlg } from './encr.js';
import { type IntegAlg, integSign, integVerify } from './integ.js';

const MAX_U64 = (1n << 64n) - 1n;

export class SkProtector {
  readonly encr: EncrAlg;
  readonly integ: IntegAlg | null;
  readonly #key: Buffer;
  readonly #salt: Buffer;
  readonly #integKey: Buffer | null;
  /** Next GCM explicit IV, and the value at which the 2^64 space would wrap into reuse. */
  #ivNext = 0n;
  #ivStop = 0n;
  #ivExhausted = false;

  constructor(encr: EncrAlg, integ: IntegAlg | null, encKey: Buffer, integKey: Buffer | null) {
    if (encKey.length !== encr.keyMatLen) {
      throw new CryptoError(`${encr.name} needs ${encr.keyMatLen} bytes of key material`);
    }
    if (encr.aead) {
      if (integ) throw new CryptoError(`${encr.name} is AEAD and takes no integrity algorithm`);
    } else {
      if (!integ || !integKey) {
        throw new CryptoError(`${encr.name} needs an integrity algorithm and key`);
      }
      if (integKey.length !== integ.keyLen) {
        throw new CryptoError(`${integ.name} needs a ${integ.keyLen}-byte key`);
      }
    }
    this.encr = encr;
    this.integ = encr.aead ? null : integ;
    // Copies: the caller may wipe or reuse its buffers.
    this.#key = Buffer.from(encKey.subarray(0, encr.keyLen));
    this.#salt = Buffer.from(encKey.subarray(encr.keyLen));
    this.#integKey = this.integ && integKey ? Buffer.from(integKey) : null;
    if (encr.aead) {
      // GCM IVs must never repeat under a key. A counter guarantees that within this protector;
      // starting it at a random point also keeps two protectors mistakenly built over the same key
      // from colliding in practice.
      this.#ivNext = randomBytes(8).readBigUInt64BE();
      this.#ivStop = this.#ivNext;
    }
  }

  /** Bytes of padding for a plaintext of `plainLen` so that plain + padding + 1 is aligned. */
  #padLen(plainLen: number): number {
    const b = this.encr.blockLen;
    return (b - ((plainLen + 1) % b)) % b;
  }

  #icvLen(): number {
    return this.encr.aead ? this.encr.icvLen : (this.integ?.icvLen ?? 0);
  }

  /** Length of the SK body (IV || ciphertext || ICV) that `seal` produces for `plainLen` bytes. */
  sealedLength(plainLen: number): number {
    return this.encr.ivLen + plainLen + this.#padLen(plainLen) + 1 + this.#icvLen();
  }

  #nextIv(): Buffer {
    if (this.#ivExhausted) throw new CryptoError('GCM IV space exhausted; rekey the IKE SA');
    const iv = Buffer.allocUnsafe(8);
    iv.writeBigUInt64BE(this.#ivNext);
    this.#ivNext = this.#ivNext === MAX_U64 ? 0n : this.#ivNext + 1n;
    if (this.#ivNext === this.#ivStop) this.#ivExhausted = true;
    return iv;
  }

  /** Encrypts and authenticates `plain`; `aad` must already carry the final message length. */
  seal(plain: Buffer, aad: Buffer): Buffer {
    const padLen = this.#padLen(plain.length);
    const trailer = Buffer.alloc(padLen + 1);
    trailer[padLen] = padLen;
    if (this.encr.aead) {
      const iv = this.#nextIv();
      const c = createCipheriv(this.encr.cipher as CipherGCMTypes, this.#key, this.#nonce(iv), {
        authTagLength: this.encr.icvLen,
      });
      c.setAAD(aad);
      const ct = Buffer.concat([c.update(plain), c.update(trailer), c.final()]);
      return Buffer.concat([iv, ct, c.getAuthTag()]);
    }
    const iv = randomBytes(this.encr.ivLen);
    const c = createCipheriv(this.encr.cipher, this.#key, iv).setAutoPadding(false);
    const ct = Buffer.concat([c.update(plain), c.update(trailer), c.final()]);
    const icv = integSign(this.integ as IntegAlg, this.#integKey as Buffer, Buffer.concat([aad, iv, ct]));
    return Buffer.concat([iv, ct, icv]);
  }

  /**
   * Verifies and decrypts an SK body, returning the inner payloads with padding removed. Any
   * failure (length, ICV/tag, padding) is a CryptoError with no detail about the bytes.
   */
  open(body: Buffer, aad: Buffer): Buffer {
    const { ivLen, blockLen } = this.encr;
    const icvLen = this.#icvLen();
    const ctLen = body.length - ivLen - icvLen;
    if (ctLen < 1 || ctLen % blockLen !== 0) {
      throw new CryptoError('SK payload has an invalid length');
    }
    const iv = body.subarray(0, ivLen);
    const ct = body.subarray(ivLen, ivLen + ctLen);
    const icv = body.subarray(ivLen + ctLen);
    let pt: Buffer;
    if (this.encr.aead) {
      try {
        const d = createDecipheriv(this.encr.cipher as CipherGCMTypes, this.#key, this.#nonce(iv), {
          authTagLength: this.encr.icvLen,
        });
        d.setAAD(aad);
        d.setAuthTag(icv);
        pt = Buffer.concat([d.update(ct), d.final()]);
      } catch {
        throw new CryptoError('SK payload authentication failed');
      }
    } else {
      // Verify before decrypting: never let unauthenticated ciphertext reach the padding check.
      const signed = Buffer.concat([aad, iv, ct]);
      if (!integVerify(this.integ as IntegAlg, this.#integKey as Buffer, signed, icv)) {
        throw new CryptoError('SK payload integrity check failed');
      }
      const d = createDecipheriv(this.encr.cipher, this.#key, iv).setAutoPadding(false);
      pt = Buffer.concat([d.update(ct), d.final()]);
    }
    // RFC 7296 §3.14: the receiver accepts any pad length that fits; padding content is unchecked.
    const padLen = pt[pt.length - 1] as number;
    if (padLen + 1 > pt.length) throw new CryptoError('SK payload has invalid padding');
    return pt.subarray(0, pt.length - padLen - 1);
  }

  /** RFC 5282 §4: nonce = 4-byte salt from the key material || 8-byte explicit IV. */
  #nonce(iv: Buffer): Buffer {
    return Buffer.concat([this.#salt, iv]);
  }
}
