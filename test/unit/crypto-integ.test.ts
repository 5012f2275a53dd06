import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { integAlg, integSign, integVerify } from '../../src/ike/crypto/integ.js';
import { IntegId } from '../../src/ike/wire/constants.js';

// RFC 4868 §2.7.2.1-3 "Test Case AUTH256-1 / AUTH384-1 / AUTH512-1": key of 0x0b repeated to the
// full key length, data "Hi There", truncated outputs.
const AUTH = [
  {
    id: IntegId.HMAC_SHA2_256_128,
    key: Buffer.alloc(32, 0x0b),
    full: '198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7',
  },
  {
    id: IntegId.HMAC_SHA2_384_192,
    key: Buffer.alloc(48, 0x0b),
    full: 'b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc4c5df61d5b3297b4fb68dab9f1b582c2',
  },
  {
    id: IntegId.HMAC_SHA2_512_256,
    key: Buffer.alloc(64, 0x0b),
    full:
      '637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8' +
      'ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b',
  },
];

t.test('RFC 4868 AUTH test vectors (truncated HMAC-SHA2)', async (t) => {
  for (const v of AUTH) {
    const alg = integAlg(v.id);
    const icv = integSign(alg, v.key, Buffer.from('Hi There'));
    t.equal(icv.length, alg.icvLen, `${alg.name} ICV length`);
    t.equal(icv.toString('hex'), v.full.slice(0, alg.icvLen * 2), `${alg.name} ICV`);
    t.ok(integVerify(alg, v.key, Buffer.from('Hi There'), icv), `${alg.name} verifies`);
  }
});

t.test('HMAC-SHA1-96 (RFC 2404 / RFC 2202 test case 2)', async (t) => {
  const alg = integAlg(IntegId.HMAC_SHA1_96);
  const icv = integSign(alg, Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'));
  t.equal(icv.toString('hex'), 'effcdf6ae5eb2fa2d27416d5');
});

t.test('HMAC-MD5-96 (RFC 2403 / RFC 2104 test vector)', async (t) => {
  const alg = integAlg(IntegId.HMAC_MD5_96);
  const icv = integSign(alg, Buffer.alloc(16, 0x0b), Buffer.from('Hi There'));
  t.equal(icv.toString('hex'), '9294727a3638bb1c13f48ef8');
});

t.test('algorithm table (RFC 4868 §2.1: key length = digest length)', async (t) => {
  t.match(integAlg(IntegId.HMAC_SHA1_96), { name: 'sha1', keyLen: 20, icvLen: 12 });
  t.match(integAlg(IntegId.HMAC_SHA2_256_128), { name: 'sha256', keyLen: 32, icvLen: 16 });
  t.match(integAlg(IntegId.HMAC_SHA2_384_192), { name: 'sha384', keyLen: 48, icvLen: 24 });
  t.match(integAlg(IntegId.HMAC_SHA2_512_256), { name: 'sha512', keyLen: 64, icvLen: 32 });
  t.throws(() => integAlg(5), CryptoError, 'AES-XCBC-96 is not implemented');
  t.throws(() => integAlg(0), CryptoError, 'NONE is not an algorithm');
});

t.test('integVerify rejects wrong ICVs without throwing', async (t) => {
  const alg = integAlg(IntegId.HMAC_SHA2_256_128);
  const key = Buffer.alloc(32, 7);
  const data = Buffer.from('message');
  const icv = integSign(alg, key, data);
  const flipped = Buffer.from(icv);
  flipped[3] = (flipped[3] as number) ^ 1;
  t.notOk(integVerify(alg, key, data, flipped), 'bit flip');
  t.notOk(integVerify(alg, key, data, icv.subarray(0, 12)), 'short ICV');
  t.notOk(integVerify(alg, key, data, Buffer.concat([icv, Buffer.alloc(1)])), 'long ICV');
  t.notOk(integVerify(alg, key, Buffer.from('messagf'), icv), 'other data');
  t.notOk(integVerify(alg, Buffer.alloc(32, 8), data, icv), 'other key');
});
