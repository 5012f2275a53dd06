import { getDiffieHellman } from 'node:crypto';
import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { dhAlg, dhGenerate, dhKeyPairFromPrivate } from '../../src/ike/crypto/dh.js';
import { DhId } from '../../src/ike/wire/constants.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('X25519: RFC 7748 §6.1 Diffie-Hellman vector', async (t) => {
  const alice = dhKeyPairFromPrivate(
    DhId.CURVE25519,
    hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  );
  const bob = dhKeyPairFromPrivate(
    DhId.CURVE25519,
    hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  );
  t.equal(
    alice.publicKey.toString('hex'),
    '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  );
  t.equal(bob.publicKey.toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  t.equal(alice.computeSecret(bob.publicKey).toString('hex'), shared);
  t.equal(bob.computeSecret(alice.publicKey).toString('hex'), shared);
});

t.test('X25519: RFC 7748 §5.2 scalar multiplication vectors', async (t) => {
  const vectors = [
    [
      'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
      'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    ],
    [
      '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
      'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    ],
  ] as const;
  for (const [k, u, out] of vectors) {
    t.equal(dhKeyPairFromPrivate(DhId.CURVE25519, hex(k)).computeSecret(hex(u)).toString('hex'), out);
  }
});

t.test('X25519 rejects low-order points and wrong lengths', async (t) => {
  const kp = dhGenerate(DhId.CURVE25519);
  t.equal(kp.publicKey.length, 32);
  t.throws(() => kp.computeSecret(Buffer.alloc(32)), CryptoError, 'u = 0');
  t.throws(() => kp.computeSecret(hex(`01${'00'.repeat(31)}`)), CryptoError, 'u = 1');
  t.throws(
    () => kp.computeSecret(hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')),
    CryptoError,
    'order-8 point',
  );
  t.throws(() => kp.computeSecret(Buffer.alloc(31, 9)), CryptoError);
  t.throws(() => kp.computeSecret(Buffer.alloc(33, 9)), CryptoError);
});

t.test('ECP-256: RFC 5903 §8.1 vector (x || y, secret = x)', async (t) => {
  const i = dhKeyPairFromPrivate(
    DhId.ECP256,
    hex('C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433'),
  );
  t.same(
    i.publicKey,
    hex(
      'DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180' +
        '5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3',
    ),
  );
  const gr = hex(
    'D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63' +
      '56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB',
  );
  t.same(i.computeSecret(gr), hex('D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE'));
});

// RFC 5114 Appendix A.6 / A.7 ECDH vectors (dA, dB, QA = x||y, QB, Z = x).
const ECP_VECTORS = [
  {
    group: DhId.ECP256,
    dA: '814264145f2f56f2e96a8e337a1284993faf432a5abce59e867b7291d507a3af',
    dB: '2ce1788ec197e096db95a200cc0ab26a19ce6bccad562b8eee1b593761cf7f41',
    qA:
      '2af502f3be8952f2c9b5a8d4160d09e97165be50bc42ae4a5e8d3b4ba83aeb15' +
      'eb0faf4ca986c4d38681a0f9872d79d56795bd4bff6e6de3c0f5015ece5efd85',
    qB:
      'b120de4aa36492795346e8de6c2c8646ae06aaea279fa775b3ab0715f6ce51b0' +
      '9f1b7eece20d7b5ed8ec685fa3f071d83727027092a8411385c34dde5708b2b6',
    z: 'dd0f5396219d1ea393310412d19a08f1f5811e9dc8ec8eea7f80d21c820c2788',
  },
  {
    group: DhId.ECP384,
    dA: 'd27335ea71664af244dd14e9fd1260715dfd8a7965571c48d709ee7a7962a156d706a90cbcb5df2986f05feadb9376f1',
    dB: '52d1791fdb4b70f89c0f00d456c2f7023b6125262c36a7df1f80231121cce3d39be52e00c194a4132c4a6c768bcd94d2',
    qA:
      '793148f1787634d5da4c6d9074417d05e057ab62f82054d10ee6b0403d6279547e6a8ea9d1fd77427d016fe27a8b8c66' +
      'c6c41294331d23e6f480f4fb4cd40504c947392e94f4c3f06b8f398bb29e42368f7a685923de3b67baced214a1a1d128',
    qB:
      '5cd42ab9c41b5347f74b8d4efb708b3d5b36db65915359b44abc17647b6b9999789d72a84865ae2f223f12b5a1abc120' +
      'e171458feaa939aaa3a8bfac46b404bd8f6d5b348c0fa4d80ceca16356ca933240bde8723415a8ece035b0edf36755de',
    z: '5ea1fc4af7256d2055981b110575e0a8cae53160137d904c59d926eb1b8456e427aa8a4540884c37de159a58028abc0e',
  },
];

t.test('ECP-256/384: RFC 5114 A.6/A.7 vectors', async (t) => {
  for (const v of ECP_VECTORS) {
    const a = dhKeyPairFromPrivate(v.group, hex(v.dA));
    const b = dhKeyPairFromPrivate(v.group, hex(v.dB));
    const name = dhAlg(v.group).name;
    t.equal(a.publicKey.toString('hex'), v.qA, `${name} QA`);
    t.equal(b.publicKey.toString('hex'), v.qB, `${name} QB`);
    t.equal(a.computeSecret(b.publicKey).toString('hex'), v.z, `${name} Z (A side)`);
    t.equal(b.computeSecret(a.publicKey).toString('hex'), v.z, `${name} Z (B side)`);
  }
});

t.test('ECP rejects points off the curve and wrong encodings', async (t) => {
  for (const g of [DhId.ECP256, DhId.ECP384]) {
    const kp = dhGenerate(g);
    const len = dhAlg(g).publicLen;
    t.equal(kp.publicKey.length, len);
    const bad = Buffer.alloc(len, 0x01);
    const err = t.throws(() => kp.computeSecret(bad), CryptoError, 'not on curve') as Error;
    t.notMatch(err.message, /0101/, 'message carries no key bytes');
    t.throws(() => kp.computeSecret(Buffer.alloc(len)), CryptoError, '(0, 0)');
    t.throws(
      () => kp.computeSecret(Buffer.concat([Buffer.of(4), dhGenerate(g).publicKey])),
      CryptoError,
      '0x04 prefix',
    );
    t.throws(() => kp.computeSecret(dhGenerate(g).publicKey.subarray(0, len / 2)), CryptoError, 'x only');
  }
});

// RFC 5114 Appendix A.3: 2048-bit MODP group with 256-bit prime order subgroup.
const MODP2048S256 = {
  xA: '0881382cdb87660c6dc13e614938d5b9c8b2f248581cc5e31b35454397fce50e',
  xB: '7d62a7e3ef36de617b13d1afb82c780d83a23bd4ee6705645121f371f546a53d',
  yA:
    '2e9380c8323af97545bc4941deb0ec3742c62fe0ece824a6abdbe66c59bee0242911bfb967235ceba35ae13e4ec752be630b' +
    '92dc4bde2847a9c62cb8152745421fb7eb60a63c0fe9159fcce726ce7cd8523d7450667ef840e4919121eb5f01c8c9b0d3d6' +
    '48a93bfb75689e8244ac134af544711ce79a02dcc34226684780dddcb498594106c37f5bc79856487af5ab022a2e5e42f098' +
    '97c1a85a11ea0212af04d9b4cebc937c3c1a3e15a8a0342e337615c84e7fe3b8b9b87fb1e73a15af12a30d746e06dfc34f29' +
    '0d797ce51aa13aa785bf6658aff5e4b093003cbeaf665b3c2e113a3a4e905269341dc0711426685f4ef37e868a8126ff3f22' +
    '79b57ca67e29',
  z:
    '86c70bf8d0bb81bb01078a17219cb7d27203db2a19c877f1d1f19fd7d77ef22546a68f005ad52dc84553b78fc60330be51ea' +
    '7c0672cac1515e4b35c047b9a551b88f39dc26da14a09ef74774d47c762dd177f9ed5bc2f11e52c879bd95098504cd9eecd8' +
    'a8f9b3efbd1f008ac5853097d9d1837f2b18f77cd7be01af80a7c7b5ea3ca54cc02d0c116fee3f95bb87399385875d7e8674' +
    '7e676e728938acbff7098e05be4dcfb24052b83aeffb14783f029adbde7f53fae92084224090e007cee94d4bf2bace9ffd4b' +
    '57d2af7c724d0caa19bf0501f6f17b4aa10f425e3ea76080b4b9d6b3cefea115b2ceb8789bb8a3b0ea87febe63b6c8f846ec' +
    '6db0c26c5d7c',
};

t.test('MODP-2048-256 (group 24): RFC 5114 A.3 vector', async (t) => {
  const a = dhKeyPairFromPrivate(DhId.MODP2048S256, hex(MODP2048S256.xA));
  const b = dhKeyPairFromPrivate(DhId.MODP2048S256, hex(MODP2048S256.xB));
  t.equal(a.publicKey.toString('hex'), MODP2048S256.yA);
  t.equal(a.computeSecret(b.publicKey).toString('hex'), MODP2048S256.z);
  t.equal(b.computeSecret(a.publicKey).toString('hex'), MODP2048S256.z);
  const two = Buffer.alloc(256);
  two[255] = 2;
  t.throws(() => a.computeSecret(two), { code: 'ERR_CRYPTO', message: /subgroup/ }, 'small-subgroup value');
});

t.test('MODP groups: lengths, agreement, left padding', async (t) => {
  const sizes: [number, number][] = [
    [DhId.MODP768, 96],
    [DhId.MODP1024, 128],
    [DhId.MODP1536, 192],
    [DhId.MODP2048, 256],
    [DhId.MODP3072, 384],
    [DhId.MODP4096, 512],
  ];
  for (const [g, len] of sizes) {
    t.match(dhAlg(g), { publicLen: len, secretLen: len });
    const a = dhGenerate(g);
    const b = dhGenerate(g);
    t.equal(a.group, g);
    t.equal(a.publicKey.length, len, `${dhAlg(g).name} public length`);
    const s = a.computeSecret(b.publicKey);
    t.equal(s.length, len, 'secret is prime-length');
    t.same(s, b.computeSecret(a.publicKey), 'agreement');
  }
  // A private key of 1 gives g^1 = 2: the public value must still come out 256 bytes long.
  const small = dhKeyPairFromPrivate(DhId.MODP2048, Buffer.of(1));
  t.equal(small.publicKey.length, 256);
  t.equal(small.publicKey.toString('hex'), `${'00'.repeat(255)}02`);
});

t.test('MODP rejects degenerate and malformed peer values', async (t) => {
  const kp = dhGenerate(DhId.MODP2048);
  const p = getDiffieHellman('modp14').getPrime();
  const val = (n: bigint) => Buffer.from(n.toString(16).padStart(512, '0'), 'hex');
  const P = BigInt(`0x${p.toString('hex')}`);
  for (const [name, v] of [
    ['0', val(0n)],
    ['1', val(1n)],
    ['p-1', val(P - 1n)],
    ['p', val(P)],
    ['p+1', val(P + 1n)],
    ['2^2048-1', Buffer.alloc(256, 0xff)],
  ] as const) {
    t.throws(() => kp.computeSecret(v), CryptoError, name);
  }
  t.throws(() => kp.computeSecret(Buffer.alloc(255, 7)), CryptoError, 'short');
  t.throws(() => kp.computeSecret(Buffer.alloc(257, 7)), CryptoError, 'long');
  t.ok(kp.computeSecret(val(2n)).length === 256, '2 is acceptable for safe-prime groups');
});

t.test('unknown groups', async (t) => {
  t.throws(() => dhAlg(21), CryptoError, 'ECP-521 not implemented');
  t.throws(() => dhGenerate(0), CryptoError, 'NONE is not a group');
  t.throws(() => dhGenerate(32), { code: 'ERR_CRYPTO' });
  t.match(dhAlg(DhId.CURVE25519), { id: 31, name: 'x25519', publicLen: 32, secretLen: 32 });
  t.match(dhAlg(DhId.ECP384), { name: 'ecp384', publicLen: 96, secretLen: 48 });
  t.notOk('kind' in dhAlg(DhId.ECP256), 'no internals leak');
});
