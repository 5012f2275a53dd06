import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { encrAlg } from '../../src/ike/crypto/encr.js';
import { integAlg } from '../../src/ike/crypto/integ.js';
import { SkProtector } from '../../src/ike/crypto/sk.js';
import { EncrId, IntegId } from '../../src/ike/wire/constants.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const flip = (b: Buffer, i: number): Buffer => {
  const c = Buffer.from(b);
  c[i] = (c[i] as number) ^ 0x01;
  return c;
};

// "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega, test cases 4 (AES-128) and 16
// (AES-256): 96-bit IV cafebabefacedbaddecaf888 with AAD. In RFC 5282 terms the first 4 IV bytes
// are the salt at the end of the key material and the last 8 the explicit IV on the wire.
const GCM_P =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72' +
  '1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39';
const GCM_A = 'feedfacedeadbeeffeedfacedeadbeefabaddad2';
const GCM_VECTORS = [
  {
    bits: 128,
    key: 'feffe9928665731c6d6a8f9467308308',
    c:
      '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e' +
      '21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091',
    tag: '5bc94fbc3221a5db94fae95ae7121a47',
  },
  {
    bits: 256,
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    c:
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa' +
      '8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    tag: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

t.test('AES-GCM known answers through open (salt || IV nonce, AAD, tag)', async (t) => {
  for (const v of GCM_VECTORS) {
    const encr = encrAlg(EncrId.AES_GCM_16, v.bits);
    const sk = new SkProtector(encr, null, hex(`${v.key}cafebabe`), null);
    const body = hex(`facedbaddecaf888${v.c}${v.tag}`);
    const plain = hex(GCM_P);
    // The vector's plaintext is not IKE-padded; its last byte (0x39) reads as the pad length.
    const padLen = plain[plain.length - 1] as number;
    t.same(sk.open(body, hex(GCM_A)), plain.subarray(0, plain.length - padLen - 1), `aes${v.bits}gcm16`);
    t.throws(() => sk.open(flip(body, 20), hex(GCM_A)), CryptoError, 'ciphertext bit flip');
    t.throws(() => sk.open(flip(body, body.length - 1), hex(GCM_A)), CryptoError, 'tag bit flip');
    t.throws(() => sk.open(flip(body, 0), hex(GCM_A)), CryptoError, 'IV bit flip');
    t.throws(() => sk.open(body, flip(hex(GCM_A), 0)), CryptoError, 'AAD bit flip');
  }
});

t.test('AES-GCM seal output decrypts independently; IVs never repeat', async (t) => {
  const encr = encrAlg(EncrId.AES_GCM_16, 256);
  const km = randomBytes(36);
  const sk = new SkProtector(encr, null, km, null);
  const aad = randomBytes(32);
  const plain = Buffer.from('inner payloads');
  const ivs = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const body = sk.seal(plain, aad);
    t.equal(body.length, sk.sealedLength(plain.length));
    ivs.add(body.subarray(0, 8).toString('hex'));
    if (i === 0) {
      const d = createDecipheriv(
        'aes-256-gcm',
        km.subarray(0, 32),
        Buffer.concat([km.subarray(32), body.subarray(0, 8)]),
      );
      d.setAAD(aad);
      d.setAuthTag(body.subarray(body.length - 16));
      const pt = Buffer.concat([d.update(body.subarray(8, body.length - 16)), d.final()]);
      t.same(pt, Buffer.concat([plain, Buffer.of(0)]), 'GCM: no padding, pad length byte 0');
    }
  }
  t.equal(ivs.size, 50, 'distinct IVs');
  t.equal(sk.sealedLength(0), 8 + 1 + 16);
  t.equal(sk.sealedLength(100), 8 + 101 + 16);
});

const CBC_CASES = [
  { bits: 128, integ: IntegId.HMAC_SHA1_96 },
  { bits: 192, integ: IntegId.HMAC_SHA2_256_128 },
  { bits: 256, integ: IntegId.HMAC_SHA2_384_192 },
  { bits: 256, integ: IntegId.HMAC_SHA2_512_256 },
];

t.test('AES-CBC + HMAC: independent construction opens, seal output verifies', async (t) => {
  for (const c of CBC_CASES) {
    const encr = encrAlg(EncrId.AES_CBC, c.bits);
    const integ = integAlg(c.integ);
    const ek = randomBytes(encr.keyLen);
    const ak = randomBytes(integ.keyLen);
    const sk = new SkProtector(encr, integ, ek, ak);
    const aad = randomBytes(28);
    const plain = randomBytes(37);
    // Built by hand: IV || AES-CBC(plain || padding || padLen) || HMAC(aad || IV || ct) truncated.
    const iv = randomBytes(16);
    const padded = Buffer.concat([plain, Buffer.from([9, 9, 9, 9, 9, 9, 9, 9, 9, 9]), Buffer.of(10)]);
    const enc = createCipheriv(`aes-${c.bits}-cbc`, ek, iv).setAutoPadding(false);
    const ct = Buffer.concat([enc.update(padded), enc.final()]);
    const icv = createHmac(integ.hash, ak)
      .update(Buffer.concat([aad, iv, ct]))
      .digest()
      .subarray(0, integ.icvLen);
    t.same(sk.open(Buffer.concat([iv, ct, icv]), aad), plain, `${encr.name}-${integ.name} opens`);

    const body = sk.seal(plain, aad);
    t.equal(body.length, sk.sealedLength(plain.length));
    t.equal((body.length - 16 - integ.icvLen) % 16, 0, 'block aligned');
    const sig = createHmac(integ.hash, ak).update(
      Buffer.concat([aad, body.subarray(0, body.length - integ.icvLen)]),
    );
    t.same(
      body.subarray(body.length - integ.icvLen),
      sig.digest().subarray(0, integ.icvLen),
      'ICV covers aad..ct',
    );
    t.same(sk.open(body, aad), plain, 'round trip');
  }
});

t.test('CBC padding: minimal, any plaintext length', async (t) => {
  const encr = encrAlg(EncrId.AES_CBC, 128);
  const integ = integAlg(IntegId.HMAC_SHA2_256_128);
  const sk = new SkProtector(encr, integ, randomBytes(16), randomBytes(32));
  for (let n = 0; n <= 40; n++) {
    const plain = randomBytes(n);
    const body = sk.seal(plain, Buffer.alloc(0));
    t.equal(body.length, 16 + Math.ceil((n + 1) / 16) * 16 + 16, `len ${n}`);
    t.same(sk.open(body, Buffer.alloc(0)), plain);
  }
});

t.test('tampering and malformed bodies are CryptoErrors', async (t) => {
  const encr = encrAlg(EncrId.AES_CBC, 256);
  const integ = integAlg(IntegId.HMAC_SHA2_256_128);
  const sk = new SkProtector(encr, integ, randomBytes(32), randomBytes(32));
  const aad = randomBytes(32);
  const body = sk.seal(Buffer.from('some inner payload bytes'), aad);
  for (const i of [0, 15, 16, body.length - 17, body.length - 1]) {
    t.throws(() => sk.open(flip(body, i), aad), CryptoError, `bit flip at ${i}`);
  }
  t.throws(() => sk.open(body, flip(aad, 5)), CryptoError, 'aad bit flip');
  t.throws(() => sk.open(body.subarray(0, body.length - 1), aad), CryptoError, 'truncated');
  t.throws(() => sk.open(body.subarray(0, 32), aad), CryptoError, 'no ciphertext');
  t.throws(() => sk.open(Buffer.alloc(0), aad), CryptoError, 'empty');
  const err = t.throws(() => sk.open(flip(body, 20), aad)) as Error;
  t.match(err, { code: 'ERR_CRYPTO' });
});

t.test('a pad length that does not fit is rejected after authentication', async (t) => {
  const encr = encrAlg(EncrId.AES_CBC, 128);
  const integ = integAlg(IntegId.HMAC_SHA1_96);
  const ek = randomBytes(16);
  const ak = randomBytes(20);
  const sk = new SkProtector(encr, integ, ek, ak);
  const iv = randomBytes(16);
  const block = Buffer.alloc(16, 0);
  block[15] = 16; // claims 16 bytes of padding + 1 length byte in a 16-byte plaintext
  const enc = createCipheriv('aes-128-cbc', ek, iv).setAutoPadding(false);
  const ct = Buffer.concat([enc.update(block), enc.final()]);
  const icv = createHmac('sha1', ak)
    .update(Buffer.concat([iv, ct]))
    .digest()
    .subarray(0, 12);
  t.throws(() => sk.open(Buffer.concat([iv, ct, icv]), Buffer.alloc(0)), {
    code: 'ERR_CRYPTO',
    message: /padding/,
  });
  block[15] = 15; // exactly fits: empty payload
  const enc2 = createCipheriv('aes-128-cbc', ek, iv).setAutoPadding(false);
  const ct2 = Buffer.concat([enc2.update(block), enc2.final()]);
  const icv2 = createHmac('sha1', ak)
    .update(Buffer.concat([iv, ct2]))
    .digest()
    .subarray(0, 12);
  t.equal(sk.open(Buffer.concat([iv, ct2, icv2]), Buffer.alloc(0)).length, 0);

  const gcm = new SkProtector(encrAlg(EncrId.AES_GCM_16, 128), null, Buffer.alloc(20, 1), null);
  const c = createCipheriv(
    'aes-128-gcm',
    Buffer.alloc(16, 1),
    Buffer.concat([Buffer.alloc(4, 1), Buffer.alloc(8)]),
  );
  const gct = Buffer.concat([c.update(Buffer.of(5)), c.final()]);
  t.throws(() => gcm.open(Buffer.concat([Buffer.alloc(8), gct, c.getAuthTag()]), Buffer.alloc(0)), {
    message: /padding/,
  });
});

t.test('constructor validates algorithms and key sizes without echoing keys', async (t) => {
  const cbc = encrAlg(EncrId.AES_CBC, 128);
  const gcm = encrAlg(EncrId.AES_GCM_16, 128);
  const sha = integAlg(IntegId.HMAC_SHA2_256_128);
  const key = Buffer.alloc(16, 0xab);
  t.throws(() => new SkProtector(cbc, sha, Buffer.alloc(15), Buffer.alloc(32)), CryptoError);
  t.throws(() => new SkProtector(cbc, null, key, null), CryptoError, 'CBC needs integrity');
  t.throws(() => new SkProtector(cbc, sha, key, Buffer.alloc(20)), CryptoError, 'integ key size');
  t.throws(() => new SkProtector(gcm, sha, Buffer.alloc(20), Buffer.alloc(32)), CryptoError, 'AEAD + integ');
  t.throws(() => new SkProtector(gcm, null, key, null), CryptoError, 'GCM needs the salt');
  try {
    new SkProtector(gcm, null, key, null);
  } catch (e) {
    t.notMatch((e as Error).message, /abab/, 'no key bytes in the message');
  }
});

t.test('encrAlg parameters', async (t) => {
  t.match(encrAlg(EncrId.AES_CBC, 256), {
    name: 'aes256',
    keyLen: 32,
    saltLen: 0,
    keyMatLen: 32,
    ivLen: 16,
    blockLen: 16,
    aead: false,
    icvLen: 0,
  });
  t.match(encrAlg(EncrId.AES_GCM_16, 192), {
    name: 'aes192gcm16',
    keyLen: 24,
    saltLen: 4,
    keyMatLen: 28,
    ivLen: 8,
    blockLen: 1,
    aead: true,
    icvLen: 16,
  });
  t.throws(() => encrAlg(EncrId.AES_CBC, 0), CryptoError, 'key length attribute is mandatory');
  t.throws(() => encrAlg(EncrId.AES_CBC, 512), CryptoError);
  // 3DES (RFC 2451) exists for CHILD_SA key material (ESP for legacy peers); single DES does not.
  t.match(encrAlg(EncrId.DES3, 0), { name: '3des', keyMatLen: 24, ivLen: 8, blockLen: 8 });
  t.throws(() => encrAlg(EncrId.DES3, 128), CryptoError, '3DES has a fixed 192-bit key');
  t.throws(() => encrAlg(2, 64), CryptoError, 'single DES is not implemented');
});
