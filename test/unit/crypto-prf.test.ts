import { createHmac } from 'node:crypto';
import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { prf, prfAlg, prfPlus } from '../../src/ike/crypto/prf.js';
import { PrfId } from '../../src/ike/wire/constants.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 4231 §4.2, §4.3, §4.7 (HMAC-SHA-2) — also the RFC 4868 §2.7.1 PRF test vectors.
const RFC4231 = [
  {
    name: 'test case 1',
    key: Buffer.alloc(20, 0x0b),
    data: Buffer.from('Hi There'),
    [PrfId.HMAC_SHA2_256]: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    [PrfId.HMAC_SHA2_384]:
      'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6',
    [PrfId.HMAC_SHA2_512]:
      '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde' +
      'daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
  },
  {
    name: 'test case 2',
    key: Buffer.from('Jefe'),
    data: Buffer.from('what do ya want for nothing?'),
    [PrfId.HMAC_SHA2_256]: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    [PrfId.HMAC_SHA2_384]:
      'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649',
    [PrfId.HMAC_SHA2_512]:
      '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554' +
      '9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
  },
  {
    name: 'test case 6 (key longer than block size)',
    key: Buffer.alloc(131, 0xaa),
    data: Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    [PrfId.HMAC_SHA2_256]: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    [PrfId.HMAC_SHA2_384]:
      '4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952',
    [PrfId.HMAC_SHA2_512]:
      '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352' +
      '6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598',
  },
] as const;

t.test('RFC 4231 HMAC-SHA2 vectors', async (t) => {
  for (const v of RFC4231) {
    for (const id of [PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512] as const) {
      const alg = prfAlg(id);
      t.equal(prf(alg, v.key, v.data).toString('hex'), v[id], `${v.name} ${alg.name}`);
    }
  }
});

t.test('RFC 2202 HMAC-SHA1 vectors', async (t) => {
  const alg = prfAlg(PrfId.HMAC_SHA1);
  t.equal(
    prf(alg, Buffer.alloc(20, 0x0b), Buffer.from('Hi There')).toString('hex'),
    'b617318655057264e28bc0b6fb378c8ef146be00',
  );
  t.equal(
    prf(alg, Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?')).toString('hex'),
    'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79',
  );
  t.equal(
    prf(
      alg,
      Buffer.alloc(80, 0xaa),
      Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    ).toString('hex'),
    'aa4ae5e15272d00e95705637ce8a3b55ed402112',
  );
});

t.test('prfAlg table and unknown IDs', async (t) => {
  t.match(prfAlg(PrfId.HMAC_SHA2_256), { name: 'prfsha256', hash: 'sha256', outLen: 32 });
  t.match(prfAlg(PrfId.HMAC_SHA2_384), { outLen: 48 });
  t.match(prfAlg(PrfId.HMAC_SHA2_512), { outLen: 64 });
  t.match(prfAlg(PrfId.HMAC_SHA1), { outLen: 20 });
  t.throws(() => prfAlg(4), CryptoError, 'AES128-XCBC is not implemented');
  t.throws(() => prfAlg(999), { code: 'ERR_CRYPTO' });
});

/** prf+ written out literally from RFC 7296 §2.13, as an independent reference. */
function refPrfPlus(hash: string, key: Buffer, seed: Buffer, len: number): Buffer {
  const ts: Buffer[] = [];
  let t = createHmac(hash, key)
    .update(Buffer.concat([seed, Buffer.from([1])]))
    .digest();
  ts.push(t);
  for (let n = 2; Buffer.concat(ts).length < len; n++) {
    t = createHmac(hash, key)
      .update(Buffer.concat([t, seed, Buffer.from([n])]))
      .digest();
    ts.push(t);
  }
  return Buffer.concat(ts).subarray(0, len);
}

t.test('prf+ matches the literal §2.13 construction', async (t) => {
  const key = hex('000102030405060708090a0b0c0d0e0f');
  const seed = Buffer.from('seed material for prf+');
  for (const id of [PrfId.HMAC_SHA1, PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_512]) {
    const alg = prfAlg(id);
    for (const len of [1, alg.outLen - 1, alg.outLen, alg.outLen + 1, 3 * alg.outLen + 7, 255 * alg.outLen]) {
      t.same(prfPlus(alg, key, seed, len), refPrfPlus(alg.hash, key, seed, len), `${alg.name} len ${len}`);
    }
  }
});

t.test('prf+ first block is prf(K, S | 0x01); zero length is empty', async (t) => {
  const alg = prfAlg(PrfId.HMAC_SHA2_256);
  const key = Buffer.from('k');
  const seed = Buffer.from('s');
  t.same(prfPlus(alg, key, seed, 32), prf(alg, key, Buffer.from('s\x01')));
  t.equal(prfPlus(alg, key, seed, 0).length, 0);
});

t.test('prf+ refuses more than 255 iterations', async (t) => {
  const alg = prfAlg(PrfId.HMAC_SHA1);
  t.equal(prfPlus(alg, Buffer.from('k'), Buffer.alloc(0), 255 * 20).length, 5100);
  t.throws(() => prfPlus(alg, Buffer.from('k'), Buffer.alloc(0), 255 * 20 + 1), CryptoError);
  t.throws(() => prfPlus(alg, Buffer.from('k'), Buffer.alloc(0), -1), CryptoError);
});
