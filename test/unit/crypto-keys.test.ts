import { createHmac, randomBytes } from 'node:crypto';
import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { encrAlg } from '../../src/ike/crypto/encr.js';
import { integAlg } from '../../src/ike/crypto/integ.js';
import { deriveChildKeys, deriveIkeKeys, deriveIkeKeysRekey, pskAuth } from '../../src/ike/crypto/keys.js';
import { prfAlg, prfPlus } from '../../src/ike/crypto/prf.js';
import { EncrId, IntegId, PrfId } from '../../src/ike/wire/constants.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// NIST CAVS IKEv2 KDF (SP 800-135) test case format, HMAC-SHA1, DKM length 132 bytes, as
// published with libreswan's CAVS driver (programs/cavp): SKEYSEED, DKM = prf+(SKEYSEED,
// Ni|Nr|SPIi|SPIr), DKM(Child SA) = prf+(SK_d, Ni|Nr), DKM(Child SA D-H) = prf+(SK_d,
// g^ir(new)|Ni|Nr), SKEYSEED(Rekey) = prf(SK_d, g^ir(new)|Ni|Nr), with SK_d the first 20 bytes of DKM.
const CAVS = {
  gir: hex('4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52'),
  girNew: hex('863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330'),
  ni: hex('32b50d5f4a3763f3'),
  nr: hex('9206a04b26564cb1'),
  spiI: hex('34c9e7c188868785'),
  spiR: hex('3ff77d760d2b2199'),
  skeyseed: 'a9a7b222b59f8f48645f28a1db5b5f5d7479cba7',
  dkm:
    'a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e9' +
    '92204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd1119' +
    '8af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4',
  dkmChild:
    '8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e' +
    '2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf' +
    '285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4',
  dkmChildDh:
    'bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a519' +
    '7dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a' +
    '05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c',
  skeyseedRekey: '63e81194946ebd05df7df5ebf5d8750056bf1f1d',
};

t.test('IKE SA keys against the CAVS KDF vector', async (t) => {
  const prf = prfAlg(PrfId.HMAC_SHA1);
  // aes128 + sha1: 20 + 2*20 + 2*16 + 2*20 = 132 bytes, exactly the vector's DKM length.
  const encr = encrAlg(EncrId.AES_CBC, 128);
  const integ = integAlg(IntegId.HMAC_SHA1_96);
  const k = deriveIkeKeys(prf, encr, integ, CAVS.ni, CAVS.nr, CAVS.gir, CAVS.spiI, CAVS.spiR);
  t.equal(k.skeyseed.toString('hex'), CAVS.skeyseed, 'SKEYSEED');
  const all = Buffer.concat([k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr]);
  t.equal(all.toString('hex'), CAVS.dkm, 'SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr = DKM');
  t.same(
    [k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr].map((b) => b.length),
    [20, 20, 20, 16, 16, 20, 20],
  );

  const rk = deriveIkeKeysRekey(prf, encr, integ, k.skD, CAVS.girNew, CAVS.ni, CAVS.nr, CAVS.spiI, CAVS.spiR);
  t.equal(rk.skeyseed.toString('hex'), CAVS.skeyseedRekey, 'SKEYSEED(Rekey)');
  t.same(
    rk.skD,
    prfPlus(prf, rk.skeyseed, Buffer.concat([CAVS.ni, CAVS.nr, CAVS.spiI, CAVS.spiR]), 20),
    'rekeyed SK_d from the new SKEYSEED',
  );
});

t.test('CHILD_SA KEYMAT against the CAVS KDF vector', async (t) => {
  const prf = prfAlg(PrfId.HMAC_SHA1);
  const skD = hex(CAVS.dkm).subarray(0, 20);
  // 2 * (46 + 20) = 132: the whole vector, sliced encrI | integI | encrR | integR.
  const c = deriveChildKeys(prf, skD, 46, 20, CAVS.ni, CAVS.nr);
  t.equal(Buffer.concat([c.encrI, c.integI!, c.encrR, c.integR!]).toString('hex'), CAVS.dkmChild);
  const d = deriveChildKeys(prf, skD, 46, 20, CAVS.ni, CAVS.nr, CAVS.girNew);
  t.equal(
    Buffer.concat([d.encrI, d.integI!, d.encrR, d.integR!]).toString('hex'),
    CAVS.dkmChildDh,
    'with PFS',
  );
  const ref = hex(CAVS.dkmChild);
  const g = deriveChildKeys(prf, skD, 20, 0, CAVS.ni, CAVS.nr);
  t.same([g.encrI, g.encrR], [ref.subarray(0, 20), ref.subarray(20, 40)], 'AEAD: encr keys back to back');
  t.equal(g.integI, null);
  t.equal(g.integR, null);
  const s = deriveChildKeys(prf, skD, 16, 32, CAVS.ni, CAVS.nr);
  t.same(
    [s.encrI, s.integI, s.encrR, s.integR],
    [ref.subarray(0, 16), ref.subarray(16, 48), ref.subarray(48, 64), ref.subarray(64, 96)],
    'order: encr i->r, integ i->r, encr r->i, integ r->i',
  );
});

t.test('AES-GCM IKE keys: salt included in SK_e, no SK_a', async (t) => {
  const prf = prfAlg(PrfId.HMAC_SHA2_256);
  const encr = encrAlg(EncrId.AES_GCM_16, 256);
  const ni = randomBytes(32);
  const nr = randomBytes(32);
  const gir = randomBytes(32);
  const spiI = randomBytes(8);
  const spiR = randomBytes(8);
  const k = deriveIkeKeys(prf, encr, null, ni, nr, gir, spiI, spiR);
  t.same(
    k.skeyseed,
    createHmac('sha256', Buffer.concat([ni, nr]))
      .update(gir)
      .digest(),
    'SKEYSEED = prf(Ni|Nr, g^ir)',
  );
  t.same(
    [k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr].map((b) => b.length),
    [32, 0, 0, 36, 36, 32, 32],
  );
  const km = prfPlus(prf, k.skeyseed, Buffer.concat([ni, nr, spiI, spiR]), 32 + 72 + 64);
  t.same(Buffer.concat([k.skD, k.skEi, k.skEr, k.skPi, k.skPr]), km);
  t.throws(() => deriveIkeKeys(prf, encr, null, ni, nr, gir, spiI, Buffer.alloc(4)), CryptoError, 'SPI size');
});

t.test('pskAuth follows RFC 7296 §2.15', async (t) => {
  const prf = prfAlg(PrfId.HMAC_SHA2_256);
  const psk = Buffer.from('s3cret-psk');
  const msg = randomBytes(300);
  const nonce = randomBytes(32);
  const skP = randomBytes(32);
  const idBody = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from([192, 0, 2, 1])]);
  const h = (k: Buffer, d: Buffer) => createHmac('sha256', k).update(d).digest();
  const expected = h(h(psk, Buffer.from('Key Pad for IKEv2')), Buffer.concat([msg, nonce, h(skP, idBody)]));
  const auth = pskAuth(prf, psk, msg, nonce, skP, idBody);
  t.same(auth, expected);
  t.equal(auth.length, 32);
  t.notSame(pskAuth(prf, Buffer.from('s3cret-psl'), msg, nonce, skP, idBody), expected, 'PSK matters');
  t.notSame(
    pskAuth(prf, psk, msg, nonce, skP, Buffer.concat([idBody, Buffer.of(0)])),
    expected,
    'ID matters',
  );
});
