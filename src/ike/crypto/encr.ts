/**
 * IKEv2 encryption algorithms: AES-CBC (RFC 3602 as used by RFC 7296) and AES-GCM with a 16-byte
 * ICV (RFC 5282); 3DES-CBC (RFC 2451) for CHILD_SA key material only (proposal.ts keeps it out
 * of IKE proposals).
 */
import { CryptoError } from '../../errors.js';
import { EncrId } from '../wire/constants.js';

export interface EncrAlg {
  id: number;
  /** strongSwan keyword, e.g. aes256 or aes128gcm16. */
  name: string;
  /** Cipher key length in bytes, salt excluded. */
  keyLen: number;
  /** Implicit nonce salt appended to the key material: 4 for GCM (RFC 5282 §7.1), 0 for CBC. */
  saltLen: number;
  /** Bytes of key material to derive: keyLen + saltLen (what SK_e* and KEYMAT slices hold). */
  keyMatLen: number;
  /** Explicit IV carried on the wire: 16 for CBC, 8 for GCM. */
  ivLen: number;
  /**
   * Padding alignment for the SK payload plaintext. CBC needs full AES blocks; GCM is a stream mode,
   * and strongSwan uses a block size of 1 for it (no padding, only the Pad Length byte).
   */
  blockLen: number;
  aead: boolean;
  /** Authentication tag length for AEAD algorithms, 0 otherwise (the ICV comes from integrity). */
  icvLen: number;
  /** node:crypto cipher name. */
  cipher: string;
}

const KEY_BITS = [128, 192, 256] as const;

/**
 * Resolves an encryption transform and its Key Length attribute (bits). AES has no default key
 * length in IKEv2: the attribute is mandatory, so a missing or odd length is an error.
 */
export function encrAlg(id: number, keyLenBits: number): EncrAlg {
  if (id === EncrId.DES3) {
    // Fixed 192-bit key (three DES keys, RFC 2451 §2.2): no Key Length attribute, so 0; IKEv1's
    // hand-off says 192.
    if (keyLenBits !== 0 && keyLenBits !== 192) {
      throw new CryptoError(`3DES takes no key length other than 192 bits, got ${keyLenBits}`);
    }
    return Object.freeze({
      id,
      name: '3des',
      keyLen: 24,
      saltLen: 0,
      keyMatLen: 24,
      ivLen: 8,
      blockLen: 8,
      aead: false,
      icvLen: 0,
      cipher: 'des-ede3-cbc',
    });
  }
  if (!(KEY_BITS as readonly number[]).includes(keyLenBits)) {
    throw new CryptoError(`unsupported key length ${keyLenBits} for encryption transform ${id}`);
  }
  const keyLen = keyLenBits / 8;
  switch (id) {
    case EncrId.AES_CBC:
      return Object.freeze({
        id,
        name: `aes${keyLenBits}`,
        keyLen,
        saltLen: 0,
        keyMatLen: keyLen,
        ivLen: 16,
        blockLen: 16,
        aead: false,
        icvLen: 0,
        cipher: `aes-${keyLenBits}-cbc`,
      });
    case EncrId.AES_GCM_16:
      return Object.freeze({
        id,
        name: `aes${keyLenBits}gcm16`,
        keyLen,
        saltLen: 4,
        keyMatLen: keyLen + 4,
        ivLen: 8,
        blockLen: 1,
        aead: true,
        icvLen: 16,
        cipher: `aes-${keyLenBits}-gcm`,
      });
    default:
      throw new CryptoError(`unsupported encryption transform ${id}`);
  }
}

/** True for the AEAD encryption transform IDs this module knows (whatever the key length). */
export function isAeadEncr(id: number): boolean {
  return id === EncrId.AES_GCM_16;
}
