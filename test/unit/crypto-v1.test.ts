/**
 * IKEv1 key derivation and CBC protection against independent vectors: test/fixtures/v1-vectors.py
 * (Python hmac/hashlib and `openssl enc`) computes them from RFC 2409; this file only compares.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CryptoError } from '../../src/errors.js';
import { dhGenerate } from '../../src/ike/crypto/dh.js';
import { v1CipherAlg, v1EspEncrKeyLen, v1PrfAlg } from '../../src/ike/crypto/v1-algs.js';
import { V1Protector } from '../../src/ike/crypto/v1-cbc.js';
import {
  deriveV1Keys,
  skeyidA,
  skeyidD,
  skeyidE,
  skeyidPsk,
  v1EncryptionKey,
  v1HashI,
  v1HashR,
  v1InfoHash,
  v1Keymat,
  v1Phase1Iv,
  v1Phase2Iv,
  v1QmHash1,
  v1QmHash2,
  v1QmHash3,
  v1SplitKeymat,
} from '../../src/ike/crypto/v1-keys.js';
import { EspTransformId, Phase1Encr, Phase1Hash } from '../../src/ike/wire/v1/constants.js';

// Compiled to dist/test/unit; fixtures stay in the source tree.
const FILE = fileURLToPath(new URL('../../../test/fixtures/v1-vectors.json', import.meta.url));
type Hexes = Record<string, string>;
const doc = JSON.parse(readFileSync(FILE, 'utf8')) as {
  inputs: Hexes & { mid: number };
  suites: (Hexes & { key_len: number; block: number; esp_encr: number; esp_integ: number })[];
};
const I = doc.inputs;
const b = (k: string): Buffer => Buffer.from(I[k] as string, 'hex');
const hex = (x: Buffer) => x.toString('hex');
const MID = I.mid;
const ESP = 3;

const suites = doc.suites.map((s) => ({
  s,
  alg: v1PrfAlg(s.hash === 'sha1' ? Phase1Hash.SHA : Phase1Hash.SHA2_256),
  cipher: s.name.endsWith('aes256')
    ? v1CipherAlg(Phase1Encr.AES_CBC, 256)
    : v1CipherAlg(Phase1Encr.TRIPLE_DES_CBC),
}));

t.test('fixture has both suites', async (t) => {
  t.equal(suites.length, 2);
  t.equal(MID, 0x1a2b3c4d);
});

for (const { s, alg, cipher } of suites) {
  t.test(`${s.name}: SKEYID, SKEYID_d/a/e and the cipher key`, async (t) => {
    const k = deriveV1Keys(alg, b('psk'), b('ni_b'), b('nr_b'), b('gxy'), b('cky_i'), b('cky_r'));
    t.equal(hex(k.skeyid), s.skeyid);
    t.equal(hex(k.skeyidD), s.skeyid_d);
    t.equal(hex(k.skeyidA), s.skeyid_a);
    t.equal(hex(k.skeyidE), s.skeyid_e);
    // The single-step functions agree with the bundle.
    const sk = skeyidPsk(alg, b('psk'), b('ni_b'), b('nr_b'));
    const d = skeyidD(alg, sk, b('gxy'), b('cky_i'), b('cky_r'));
    const a = skeyidA(alg, sk, d, b('gxy'), b('cky_i'), b('cky_r'));
    t.equal(hex(skeyidE(alg, sk, a, b('gxy'), b('cky_i'), b('cky_r'))), s.skeyid_e);
    const key = v1EncryptionKey(alg, k.skeyidE, cipher.keyLen);
    t.equal(hex(key), s.enc_key);
    if (k.skeyidE.length < cipher.keyLen) {
      t.not(hex(key.subarray(0, k.skeyidE.length)), s.skeyid_e, 'Appendix B expansion, not a prefix');
    } else {
      t.equal(hex(key), (s.skeyid_e as string).slice(0, 2 * cipher.keyLen), 'long SKEYID_e is truncated');
    }
  });

  t.test(`${s.name}: phase-1 IV, HASH_I and HASH_R`, async (t) => {
    const k = deriveV1Keys(alg, b('psk'), b('ni_b'), b('nr_b'), b('gxy'), b('cky_i'), b('cky_r'));
    t.equal(hex(v1Phase1Iv(alg, b('gxi'), b('gxr'), cipher.blockLen)), s.phase1_iv);
    const args = [b('gxi'), b('gxr'), b('cky_i'), b('cky_r'), b('sai_b')] as const;
    t.equal(hex(v1HashI(alg, k.skeyid, ...args, b('idii_b'))), s.hash_i);
    t.equal(hex(v1HashR(alg, k.skeyid, ...args, b('idir_b'))), s.hash_r);
    t.not(s.hash_i, s.hash_r);
  });

  t.test(`${s.name}: quick mode HASH(1), HASH(2), HASH(3) and informational HASH(1)`, async (t) => {
    const k = deriveV1Keys(alg, b('psk'), b('ni_b'), b('nr_b'), b('gxy'), b('cky_i'), b('cky_r'));
    t.equal(hex(v1QmHash1(alg, k.skeyidA, MID, b('qm_rest'))), s.qm_hash1);
    t.equal(hex(v1InfoHash(alg, k.skeyidA, MID, b('qm_rest'))), s.qm_hash1);
    t.equal(hex(v1QmHash2(alg, k.skeyidA, MID, b('qm_ni_b'), b('qm_rest'))), s.qm_hash2);
    t.equal(hex(v1QmHash3(alg, k.skeyidA, MID, b('qm_ni_b'), b('qm_nr_b'))), s.qm_hash3);
    t.throws(() => v1QmHash1(alg, k.skeyidA, 2 ** 32, b('qm_rest')), CryptoError);
  });

  t.test(`${s.name}: KEYMAT per direction, with and without PFS`, async (t) => {
    const k = deriveV1Keys(alg, b('psk'), b('ni_b'), b('nr_b'), b('gxy'), b('cky_i'), b('cky_r'));
    const n = s.esp_encr + s.esp_integ;
    t.ok(n > alg.outLen, 'long enough to need K2');
    const km = (spi: string, g?: Buffer) =>
      hex(v1Keymat(alg, k.skeyidD, ESP, b(spi), b('qm_ni_b'), b('qm_nr_b'), n, g));
    t.equal(km('spi_i'), s.keymat_i);
    t.equal(km('spi_r'), s.keymat_r);
    t.equal(km('spi_i', b('gqmxy')), s.keymat_i_pfs);
    t.equal(km('spi_r', b('gqmxy')), s.keymat_r_pfs);
    const split = v1SplitKeymat(Buffer.from(s.keymat_i as string, 'hex'), s.esp_encr, s.esp_integ);
    t.equal(hex(split.encr), (s.keymat_i as string).slice(0, 2 * s.esp_encr));
    t.equal(split.integ === null, s.esp_integ === 0);
  });

  t.test(`${s.name}: CBC against openssl, chained across messages and into quick mode`, async (t) => {
    const k = deriveV1Keys(alg, b('psk'), b('ni_b'), b('nr_b'), b('gxy'), b('cky_i'), b('cky_r'));
    const key = v1EncryptionKey(alg, k.skeyidE, cipher.keyLen);
    const iv = v1Phase1Iv(alg, b('gxi'), b('gxr'), cipher.blockLen);
    const ini = new V1Protector(cipher, key, alg, iv);
    const res = new V1Protector(cipher, key, alg, iv);
    const m5 = ini.encrypt(0, b('msg5_plain'));
    t.equal(hex(m5), s.msg5_cipher);
    const p5 = res.decrypt(0, m5);
    t.equal(hex(p5.subarray(0, b('msg5_plain').length)), I.msg5_plain);
    t.ok(
      p5.subarray(b('msg5_plain').length).every((x) => x === 0),
      'zero padding',
    );
    const m6 = res.encrypt(0, b('msg6_plain'));
    t.equal(hex(m6), s.msg6_cipher, 'the second message chains on the first');
    t.equal(m6.length, b('msg6_plain').length + cipher.blockLen, 'an aligned body still gets a block');
    t.equal(hex(ini.decrypt(0, m6).subarray(0, 32)), I.msg6_plain);
    t.same(ini.lastPhase1Block, res.lastPhase1Block);
    t.equal(
      hex(v1Phase2Iv(alg, m6.subarray(m6.length - cipher.blockLen), MID, cipher.blockLen)),
      s.phase2_iv,
    );
    t.equal(hex(ini.ivFor(MID)), s.phase2_iv);
    const q1 = ini.encrypt(MID, b('qm1_plain'));
    t.equal(hex(q1), s.qm1_cipher);
    t.equal(hex(res.decrypt(MID, q1).subarray(0, b('qm1_plain').length)), I.qm1_plain);
    t.same(ini.ivFor(MID), q1.subarray(q1.length - cipher.blockLen), 'quick mode chains on');
    t.equal(hex(ini.ivFor(MID + 1)), hex(v1Phase2Iv(alg, ini.lastPhase1Block, MID + 1, cipher.blockLen)));
  });
}

const aes = v1CipherAlg(Phase1Encr.AES_CBC, 128);
const sha1 = v1PrfAlg(Phase1Hash.SHA);
const KEY = Buffer.alloc(16, 0x5a);
const IV = Buffer.alloc(16, 0xa5);

t.test('round trips of every length, both ciphers', async (t) => {
  for (const c of [aes, v1CipherAlg(Phase1Encr.AES_CBC, 192), v1CipherAlg(Phase1Encr.TRIPLE_DES_CBC)]) {
    const key = Buffer.alloc(c.keyLen, 7);
    const iv = Buffer.alloc(c.blockLen, 9);
    const a = new V1Protector(c, key, sha1, iv);
    const z = new V1Protector(c, key, sha1, iv);
    for (let n = 0; n <= 40; n++) {
      const plain = Buffer.alloc(n, n + 1);
      const ct = a.encrypt(0, plain);
      t.equal(ct.length, a.sealedLength(n));
      t.ok(ct.length > n && ct.length - n <= c.blockLen);
      t.same(z.decrypt(0, ct).subarray(0, n), plain);
    }
  }
});

t.test('a wrong IV chain garbles the first block only; chains are per message ID', async (t) => {
  const a = new V1Protector(aes, KEY, sha1, IV);
  const z = new V1Protector(aes, KEY, sha1, IV);
  const plain = Buffer.alloc(40, 0x11);
  const first = a.encrypt(0, plain);
  const second = a.encrypt(0, plain);
  t.notSame(first, second, 'same plaintext, chained IV');
  // z skips the first message: its IV is still the phase-1 IV, not the first message's last block.
  const p = z.decrypt(0, second);
  t.notSame(p.subarray(0, 16), plain.subarray(0, 16));
  t.same(p.subarray(16, 40), plain.subarray(16, 40));
  const x = a.encrypt(7, plain);
  const y = a.encrypt(8, plain);
  t.notSame(x, y, 'independent quick-mode IVs');
  a.forget(7);
  t.same(a.encrypt(7, plain), x, 'a forgotten exchange restarts from its derived IV');
  const one = new V1Protector(aes, KEY, sha1, IV, { maxExchanges: 1 });
  const first7 = one.encrypt(7, plain);
  one.encrypt(8, plain);
  t.same(one.encrypt(7, plain), first7, 'beyond maxExchanges the oldest chain is dropped');
  const two = new V1Protector(aes, KEY, sha1, IV, { maxExchanges: 2 });
  const [iv7, iv8] = [two.ivFor(7), two.ivFor(8)];
  two.encrypt(8, plain);
  two.encrypt(7, plain);
  two.ivFor(9);
  t.notSame(two.ivFor(7), iv7, 'recently used chain 7 kept its state');
  t.same(two.ivFor(8), iv8, 'least recently used chain 8 was dropped and restarts');
});

t.test('deferred decryption keeps the chain until confirmed', async (t) => {
  const a = new V1Protector(aes, KEY, sha1, IV);
  const z = new V1Protector(aes, KEY, sha1, IV);
  const ct = a.encrypt(5, Buffer.from('hello'));
  const before = z.ivFor(5);
  z.decrypt(5, ct, { defer: true });
  t.same(z.ivFor(5), before, 'not adopted yet');
  t.equal(z.confirm(5), true);
  t.same(z.ivFor(5), ct.subarray(ct.length - 16));
  t.equal(z.confirm(5), false, 'nothing staged any more');
});

t.test('unconfirmed decryptions under made-up message IDs keep no state and evict nothing', async (t) => {
  const a = new V1Protector(aes, KEY, sha1, IV, { maxExchanges: 2 });
  const z = new V1Protector(aes, KEY, sha1, IV, { maxExchanges: 2 });
  const first = a.encrypt(7, Buffer.from('quick mode 7, message 1'));
  z.decrypt(7, first, { defer: true });
  t.ok(z.confirm(7), 'a verified message keeps its exchange');
  const next = z.ivFor(7);
  for (let mid = 100; mid < 200; mid++) z.decrypt(mid, Buffer.alloc(32, mid), { defer: true });
  t.same(z.ivFor(7), next, 'exchange 7 survived 100 forged IDs');
  t.equal(z.confirm(150), false, 'a forged ID that was never confirmed left nothing to adopt');
});

t.test('bad lengths are CryptoErrors without key material', async (t) => {
  const z = new V1Protector(aes, KEY, sha1, IV);
  for (const n of [0, 1, 15, 17, 33]) {
    t.throws(() => z.decrypt(0, Buffer.alloc(n)), CryptoError, `${n} bytes`);
  }
  t.same(z.ivFor(0), IV, 'a rejected body leaves the chain alone');
  const err = t.throws(() => new V1Protector(aes, Buffer.alloc(15, 0x5a), sha1, IV)) as Error;
  t.ok(err instanceof CryptoError);
  t.notMatch(err.message, /5a5a/);
  t.throws(() => new V1Protector(aes, KEY, sha1, Buffer.alloc(8)), CryptoError);
  t.throws(() => v1SplitKeymat(Buffer.alloc(10), 8, 4), CryptoError);
  t.throws(() => v1EncryptionKey(sha1, KEY, 0), CryptoError);
  t.throws(() => v1Keymat(sha1, KEY, 3, Buffer.alloc(4), KEY, KEY, 0), CryptoError);
  t.throws(() => deriveV1Keys(sha1, KEY, KEY, KEY, KEY, Buffer.alloc(4), Buffer.alloc(8)), CryptoError);
});

t.test('algorithm table: DES refused, AES needs a key length', async (t) => {
  t.throws(() => v1CipherAlg(Phase1Encr.DES_CBC), { name: 'CryptoError', message: /DES is refused/ });
  t.throws(() => v1CipherAlg(Phase1Encr.AES_CBC), CryptoError);
  t.throws(() => v1CipherAlg(Phase1Encr.AES_CBC, 512), CryptoError);
  t.throws(() => v1CipherAlg(99), CryptoError);
  t.throws(() => v1PrfAlg(3), CryptoError);
  t.match(v1CipherAlg(Phase1Encr.TRIPLE_DES_CBC), { keyLen: 24, blockLen: 8, cipher: 'des-ede3-cbc' });
  t.equal(v1EspEncrKeyLen(EspTransformId.ESP_AES_GCM_16, 256), 36, 'GCM salt');
  t.equal(v1EspEncrKeyLen(EspTransformId.ESP_3DES, 0), 24);
  t.throws(() => v1EspEncrKeyLen(EspTransformId.ESP_DES, 0), CryptoError);
});

t.test('two peers over modp1024: Main Mode and Quick Mode agree role by role', async (t) => {
  const alg = v1PrfAlg(Phase1Hash.SHA);
  const cipher = v1CipherAlg(Phase1Encr.AES_CBC, 128);
  const [ci, cr] = [Buffer.alloc(8, 1), Buffer.alloc(8, 2)];
  const [ni, nr] = [Buffer.alloc(16, 3), Buffer.alloc(20, 4)];
  const [dhI, dhR] = [dhGenerate(2), dhGenerate(2)];
  const side = (mine: typeof dhI, peerPub: Buffer) => {
    const k = deriveV1Keys(alg, Buffer.from('psk'), ni, nr, mine.computeSecret(peerPub), ci, cr);
    const key = v1EncryptionKey(alg, k.skeyidE, cipher.keyLen);
    const iv = v1Phase1Iv(alg, dhI.publicKey, dhR.publicKey, cipher.blockLen);
    return { k, p: new V1Protector(cipher, key, alg, iv) };
  };
  const I = side(dhI, dhR.publicKey);
  const R = side(dhR, dhI.publicKey);
  t.same(I.k, R.k, 'same SKEYIDs from both DH views');
  const sa = Buffer.from('SAi_b');
  const hashArgs = [dhI.publicKey, dhR.publicKey, ci, cr, sa] as const;
  // Message 5 (IDii, HASH_I) and 6 (IDir, HASH_R), each checked before its IV is adopted.
  const m5 = I.p.encrypt(0, v1HashI(alg, I.k.skeyid, ...hashArgs, Buffer.from('IDii')));
  const h5 = R.p.decrypt(0, m5, { defer: true }).subarray(0, alg.outLen);
  t.same(h5, v1HashI(alg, R.k.skeyid, ...hashArgs, Buffer.from('IDii')));
  t.ok(R.p.confirm(0));
  const m6 = R.p.encrypt(0, v1HashR(alg, R.k.skeyid, ...hashArgs, Buffer.from('IDir')));
  t.same(
    I.p.decrypt(0, m6).subarray(0, alg.outLen),
    v1HashR(alg, I.k.skeyid, ...hashArgs, Buffer.from('IDir')),
  );
  // Quick Mode: three messages in one chain; a message ID neither side has used yet.
  const mid = 0x01020304;
  for (const [from, to, text] of [
    [I.p, R.p, 'QM1'],
    [R.p, I.p, 'QM2'],
    [I.p, R.p, 'QM3'],
  ] as const) {
    t.equal(
      to
        .decrypt(mid, from.encrypt(mid, Buffer.from(text)))
        .subarray(0, 3)
        .toString(),
      text,
    );
  }
  t.same(I.p.ivFor(mid), R.p.ivFor(mid));
  // KEYMAT: the initiator's outbound SA is the responder's inbound one (the responder's SPI).
  const spiR = Buffer.from('a0b0c0d0', 'hex');
  const km = (k: typeof I.k) => v1Keymat(alg, k.skeyidD, ESP, spiR, ni, nr, 36);
  t.same(km(I.k), km(R.k));
  t.notSame(km(I.k), v1Keymat(alg, I.k.skeyidD, ESP, Buffer.from('a0b0c0d1', 'hex'), ni, nr, 36));
});
