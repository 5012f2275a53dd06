/**
 * IKEv2 key exchange (KE payload data and shared secret g^ir) over node:crypto.
 *
 * Encodings (what the KE payload carries and what g^ir is):
 * - MODP (RFC 2409 §6 groups 1-2, RFC 3526, RFC 5114 group 24): big-endian, left-padded to the prime length, both ways.
 * - ECP (RFC 5903): x || y without the 0x04 prefix; the shared secret is the x coordinate.
 * - Curve25519 (RFC 8031): the 32-byte RFC 7748 encoding both ways.
 * Peer values are validated; errors never carry key material.
 */
import {
  createDiffieHellman,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  getDiffieHellman,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from '../../errors.js';
import { DhId } from '../wire/constants.js';

export interface DhAlg {
  id: number;
  name: string;
  /** Length of the KE payload key exchange data in bytes. */
  publicLen: number;
  /** Length of the shared secret g^ir in bytes. */
  secretLen: number;
}

export interface DhKeyPair {
  group: number;
  publicKey: Buffer;
  /** Validates the peer's KE data and returns g^ir; throws CryptoError on an invalid value. */
  computeSecret(peerPublic: Buffer): Buffer;
}

type Kind = { t: 'modp'; named: string } | { t: 'modpsub' } | { t: 'ecp'; curve: string } | { t: 'x25519' };

interface Group extends DhAlg {
  kind: Kind;
}

const GROUPS: ReadonlyMap<number, Group> = new Map(
  (
    [
      // Group 1 (RFC 2409 §6.1, the First Oakley Group), 768-bit: for legacy peers only.
      { id: DhId.MODP768, name: 'modp768', len: 96, kind: { t: 'modp', named: 'modp1' } },
      { id: DhId.MODP1024, name: 'modp1024', len: 128, kind: { t: 'modp', named: 'modp2' } },
      { id: DhId.MODP1536, name: 'modp1536', len: 192, kind: { t: 'modp', named: 'modp5' } },
      { id: DhId.MODP2048, name: 'modp2048', len: 256, kind: { t: 'modp', named: 'modp14' } },
      { id: DhId.MODP3072, name: 'modp3072', len: 384, kind: { t: 'modp', named: 'modp15' } },
      { id: DhId.MODP4096, name: 'modp4096', len: 512, kind: { t: 'modp', named: 'modp16' } },
      { id: DhId.MODP2048S256, name: 'modp2048s256', len: 256, kind: { t: 'modpsub' } },
      { id: DhId.ECP256, name: 'ecp256', len: 32, kind: { t: 'ecp', curve: 'prime256v1' } },
      { id: DhId.ECP384, name: 'ecp384', len: 48, kind: { t: 'ecp', curve: 'secp384r1' } },
      { id: DhId.CURVE25519, name: 'x25519', len: 32, kind: { t: 'x25519' } },
    ] as { id: number; name: string; len: number; kind: Kind }[]
  ).map((g) => {
    const publicLen = g.kind.t === 'ecp' ? 2 * g.len : g.len;
    const alg: Group = { id: g.id, name: g.name, publicLen, secretLen: g.len, kind: g.kind };
    return [g.id, Object.freeze(alg)];
  }),
);

/** Looks up a key exchange method by IANA transform ID; throws CryptoError when unsupported. */
export function dhAlg(id: number): DhAlg {
  const { kind: _kind, ...alg } = group(id);
  return alg;
}

function group(id: number): Group {
  const g = GROUPS.get(id);
  if (!g) throw new CryptoError(`unsupported key exchange method ${id}`);
  return g;
}

/** Generates an ephemeral key pair for the group. */
export function dhGenerate(group: number): DhKeyPair {
  return makePair(group, null);
}

/**
 * Builds a key pair from a fixed private value. Only for known-answer tests against published
 * vectors; real exchanges use dhGenerate.
 */
export function dhKeyPairFromPrivate(group: number, privateKey: Buffer): DhKeyPair {
  return makePair(group, privateKey);
}

function makePair(id: number, priv: Buffer | null): DhKeyPair {
  const g = group(id);
  switch (g.kind.t) {
    case 'modp': {
      // Named groups skip node's parameter checks; a fixed private key needs the settable kind.
      const named = getDiffieHellman(g.kind.named);
      if (!priv) return modpPair(g, named, null);
      const dh = createDiffieHellman(named.getPrime(), named.getGenerator());
      dh.setPrivateKey(priv);
      return modpPair(g, dh, null);
    }
    case 'modpsub': {
      const dh = createDiffieHellman(RFC5114_P, RFC5114_G);
      if (priv) dh.setPrivateKey(priv);
      return modpPair(g, dh, RFC5114_Q);
    }
    case 'ecp':
      return ecpPair(g, g.kind.curve, priv);
    case 'x25519':
      return x25519Pair(g, priv);
  }
}

/** Left-pads to `len`; a shorter input is a shared secret, wiped once copied (issue #11). */
function leftPad(b: Buffer, len: number): Buffer {
  if (b.length === len) return b;
  const out = Buffer.alloc(len);
  b.copy(out, len - b.length);
  b.fill(0);
  return out;
}

function toBig(b: Buffer): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`);
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}

/** The part of node's DiffieHellman and DiffieHellmanGroup objects used here. */
interface ModpDh {
  generateKeys(): Buffer;
  getPrime(): Buffer;
  getPublicKey(): Buffer;
  computeSecret(other: NodeJS.ArrayBufferView): Buffer;
}

/** `dh` may hold a fixed private key; generateKeys then only derives its public value. */
function modpPair(g: Group, dh: ModpDh, q: bigint | null): DhKeyPair {
  dh.generateKeys();
  const p = toBig(dh.getPrime());
  return {
    group: g.id,
    publicKey: leftPad(dh.getPublicKey(), g.publicLen),
    computeSecret(peer: Buffer): Buffer {
      if (peer.length !== g.publicLen) throw new CryptoError(`${g.name} public value has wrong length`);
      // RFC 7296 §5 / RFC 6989: 0, 1 and p-1 (and anything >= p) are degenerate values.
      const y = toBig(peer);
      if (y <= 1n || y >= p - 1n) throw new CryptoError(`${g.name} public value is out of range`);
      // RFC 5114 groups have small subgroups: the peer value must lie in the order-q subgroup.
      if (q !== null && modPow(y, q, p) !== 1n) {
        throw new CryptoError(`${g.name} public value is not in the prime-order subgroup`);
      }
      let s: Buffer;
      try {
        s = dh.computeSecret(peer);
      } catch {
        throw new CryptoError(`${g.name} public value rejected`);
      }
      return leftPad(s, g.secretLen);
    },
  };
}

function ecpPair(g: Group, curve: string, priv: Buffer | null): DhKeyPair {
  const ecdh = createECDH(curve);
  if (priv) ecdh.setPrivateKey(priv);
  else ecdh.generateKeys();
  const pub = ecdh.getPublicKey(null, 'uncompressed');
  return {
    group: g.id,
    publicKey: Buffer.from(pub.subarray(1)),
    computeSecret(peer: Buffer): Buffer {
      if (peer.length !== g.publicLen) throw new CryptoError(`${g.name} public value has wrong length`);
      try {
        // node checks that the point is on the curve (and not the point at infinity).
        return leftPad(ecdh.computeSecret(Buffer.concat([Buffer.of(4), peer])), g.secretLen);
      } catch {
        throw new CryptoError(`${g.name} public value is not a valid curve point`);
      }
    },
  };
}

// Fixed DER prefix wrapping a raw 32-byte X25519 private key (RFC 8410 PKCS#8).
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function x25519Pair(g: Group, priv: Buffer | null): DhKeyPair {
  let privateKey: KeyObject;
  let publicKey: KeyObject;
  if (priv) {
    if (priv.length !== 32) throw new CryptoError('x25519 private key must be 32 bytes');
    const der = Buffer.concat([X25519_PKCS8, priv]);
    privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    // Our copy of the private key (the caller's `priv` is its own to wipe).
    der.fill(0);
    publicKey = createPublicKey(privateKey);
  } else {
    ({ privateKey, publicKey } = generateKeyPairSync('x25519'));
  }
  // Raw keys go in and out as JWK (RFC 8037 §2: `x` is the base64url raw key): in node 20 the DER
  // (SPKI) import and export each cost ~80 us, the JWK forms 1-8 us. A responder pays this on
  // every IKE_SA_INIT, so it bounds the setup rate.
  const x = publicKey.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new CryptoError('x25519 public key export failed');
  return {
    group: g.id,
    publicKey: Buffer.from(x, 'base64url'),
    computeSecret(peer: Buffer): Buffer {
      if (peer.length !== 32) throw new CryptoError('x25519 public value has wrong length');
      let s: Buffer;
      try {
        const peerKey = createPublicKey({
          key: { kty: 'OKP', crv: 'X25519', x: peer.toString('base64url') },
          format: 'jwk',
        });
        s = diffieHellman({ privateKey, publicKey: peerKey });
      } catch {
        throw new CryptoError('x25519 public value rejected');
      }
      // RFC 7748 §6.1 / RFC 8031 §2.3: an all-zero result means a low-order peer point.
      if (s.every((b) => b === 0)) throw new CryptoError('x25519 shared secret is all zero');
      return s;
    },
  };
}

// RFC 5114 §2.3: 2048-bit MODP group with 256-bit prime order subgroup (IKE group 24).
const RFC5114_P = Buffer.from(
  '87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00E00DF8F1D61957D4FAF7DF45' +
    '61B2AA3016C3D91134096FAA3BF4296D830E9A7C209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C0' +
    '22E0B1EF4275BF7B6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76B63ACAE1' +
    'CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8EF6A167B5A41825D967E144E514056425' +
    '1CCACB83E6B486F6B3CA3F7971506026C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375' +
    'D7014103A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597',
  'hex',
);
const RFC5114_G = Buffer.from(
  '3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA12510DBC15077BE463FFF4FED4A' +
    'AC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62901228F8C28CBB18A55AE31341000A650196F931C77A57F2' +
    'DDF463E5E9EC144B777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193B5045AF2' +
    '767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0ADB2A3B7313D3FE14C8484B1E052588B9' +
    'B7D2BBD2DF016199ECD06E1557CD0915B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D' +
    '1DB246C32F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659',
  'hex',
);
const RFC5114_Q = BigInt('0x8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3');
