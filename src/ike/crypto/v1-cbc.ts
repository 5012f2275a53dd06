/**
 * IKEv1 message protection (RFC 2409 §5.3, Appendix B; RFC 2408 §3.1 E flag): the whole message
 * body after the ISAKMP header is CBC-encrypted under the phase-1 key, with no integrity check of
 * its own (the HASH payloads authenticate). There is no IV on the wire: each side tracks it.
 *
 * IV rules (RFC 2409 Appendix B):
 * - phase 1 (message ID 0): starts at hash(g^xi | g^xr); each message's last ciphertext block is the
 *   IV of the next message, whichever side sent it;
 * - every Quick Mode or Informational exchange (its own non-zero message ID) starts at
 *   hash(last phase-1 ciphertext block | M-ID) and chains within the exchange the same way.
 *
 * Padding: the plaintext is zero-padded to a whole number of blocks. RFC 2409 §5.3 does not require
 * the last byte to be a pad length; strongSwan (encrypted_payload.c encrypt_v1) always adds 1..block
 * bytes of zeros, so an aligned body gets a full block, and we do the same. Decryption returns the
 * padded plaintext: the payload chain's own lengths say where the payloads end.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CryptoError } from '../../errors.js';
import type { PrfAlg } from './prf.js';
import type { V1CipherAlg } from './v1-algs.js';
import { v1Phase2Iv } from './v1-keys.js';

interface Chain {
  iv: Buffer;
  /** Next IV staged by a deferred decryption, adopted by confirm(). */
  pending: Buffer | null;
}

/** A deferred decryption's chain that did not exist before it (kept only once confirmed). */
interface Staged {
  mid: number;
  chain: Chain;
}

export interface V1ProtectorOptions {
  /**
   * How many exchanges (message IDs other than 0) keep IV state at once; the least recently used
   * is dropped beyond that. strongSwan keeps 3 by default (charon.max_ikev1_exchanges).
   */
  maxExchanges?: number;
}

export class V1Protector {
  readonly cipher: V1CipherAlg;
  readonly #key: Buffer;
  readonly #hash: PrfAlg;
  readonly #phase1: Chain;
  readonly #chains = new Map<number, Chain>();
  readonly #max: number;
  #staged: Staged | null = null;

  /**
   * `key` is the expanded phase-1 key (v1EncryptionKey), `hash` the negotiated hash (for phase-2
   * IVs), `phase1Iv` the value of v1Phase1Iv.
   */
  constructor(
    cipher: V1CipherAlg,
    key: Buffer,
    hash: PrfAlg,
    phase1Iv: Buffer,
    opts: V1ProtectorOptions = {},
  ) {
    if (key.length !== cipher.keyLen)
      throw new CryptoError(`${cipher.name} needs a ${cipher.keyLen}-byte key`);
    if (phase1Iv.length !== cipher.blockLen) {
      throw new CryptoError(`${cipher.name} needs a ${cipher.blockLen}-byte IV`);
    }
    this.cipher = cipher;
    // Copies: the caller may wipe or reuse its buffers.
    this.#key = Buffer.from(key);
    this.#hash = hash;
    this.#phase1 = { iv: Buffer.from(phase1Iv), pending: null };
    this.#max = Math.max(1, opts.maxExchanges ?? 8);
  }

  /** The last phase-1 ciphertext block (or the phase-1 IV if nothing was encrypted yet). */
  get lastPhase1Block(): Buffer {
    return Buffer.from(this.#phase1.iv);
  }

  #chain(mid: number): Chain {
    if (mid === 0) return this.#phase1;
    const c = this.#chains.get(mid);
    if (c) {
      // Least recently used goes first, as in strongSwan's iv_manager: re-insert at the end.
      this.#chains.delete(mid);
      this.#chains.set(mid, c);
      return c;
    }
    return this.#keep(mid, this.#fresh(mid));
  }

  #fresh(mid: number): Chain {
    return {
      iv: Buffer.from(v1Phase2Iv(this.#hash, this.#phase1.iv, mid, this.cipher.blockLen)),
      pending: null,
    };
  }

  #keep(mid: number, c: Chain): Chain {
    this.#chains.set(mid, c);
    if (this.#chains.size > this.#max) {
      const oldest = this.#chains.keys().next().value as number;
      this.#chains.delete(oldest);
    }
    return c;
  }

  /** The IV the next message of exchange `mid` uses (a copy). */
  ivFor(mid: number): Buffer {
    return Buffer.from(this.#chain(mid).iv);
  }

  /** Forgets a finished Quick Mode / Informational exchange. */
  forget(mid: number): void {
    if (mid !== 0) this.#chains.delete(mid);
  }

  /** Bytes `encrypt` produces for `plainLen` bytes: always 1..block bytes of padding. */
  sealedLength(plainLen: number): number {
    const b = this.cipher.blockLen;
    return plainLen + (b - (plainLen % b));
  }

  /** Encrypts the payloads after the ISAKMP header of a message of exchange `mid`. */
  encrypt(mid: number, plain: Buffer): Buffer {
    const chain = this.#chain(mid);
    const padded = Buffer.alloc(this.sealedLength(plain.length));
    plain.copy(padded);
    const c = createCipheriv(this.cipher.cipher, this.#key, chain.iv).setAutoPadding(false);
    const out = Buffer.concat([c.update(padded), c.final()]);
    chain.iv = Buffer.from(out.subarray(out.length - this.cipher.blockLen));
    chain.pending = null;
    return out;
  }

  /**
   * Decrypts a message body of exchange `mid`; returns the plaintext with its padding. The body's
   * last block becomes the exchange's next IV, at once, or with `defer` only when confirm(mid) is
   * called: a caller that first checks the HASH payload keeps a forged or garbled message from
   * desynchronising the chain (strongSwan's iv_manager confirms the same way).
   */
  decrypt(mid: number, body: Buffer, opts: { defer?: boolean } = {}): Buffer {
    const b = this.cipher.blockLen;
    if (body.length === 0 || body.length % b !== 0) {
      throw new CryptoError(`encrypted IKEv1 body of ${body.length} bytes is not a multiple of ${b}`);
    }
    // Deferred: a message ID we hold no chain for gets one only once confirmed, so unverified
    // messages under made-up IDs cannot push the chains of exchanges in progress out.
    const known = mid === 0 || this.#chains.has(mid);
    const chain = opts.defer && !known ? this.#fresh(mid) : this.#chain(mid);
    this.#staged = opts.defer && !known ? { mid, chain } : null;
    let plain: Buffer;
    try {
      const d = createDecipheriv(this.cipher.cipher, this.#key, chain.iv).setAutoPadding(false);
      plain = Buffer.concat([d.update(body), d.final()]);
    } catch {
      throw new CryptoError(`${this.cipher.name} decryption failed`);
    }
    const next = Buffer.from(body.subarray(body.length - b));
    if (opts.defer) chain.pending = next;
    else {
      chain.iv = next;
      chain.pending = null;
    }
    return plain;
  }

  /** Adopts the IV staged by a deferred decryption of exchange `mid`; false if none was staged. */
  confirm(mid: number): boolean {
    const staged = this.#staged?.mid === mid ? this.#staged.chain : undefined;
    this.#staged = null;
    const chain = mid === 0 ? this.#phase1 : (this.#chains.get(mid) ?? (staged && this.#keep(mid, staged)));
    if (!chain?.pending) return false;
    chain.iv = chain.pending;
    chain.pending = null;
    return true;
  }
}
