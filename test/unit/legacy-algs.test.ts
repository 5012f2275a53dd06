/**
 * The remaining legacy algorithms of the IKEv1 list: HMAC-MD5-96 for ESP (RFC 2403) and MODP-768
 * (IKE group 1, RFC 2409 §6.1), in both IKE versions: the keywords, their wire values, the names
 * and key lengths the data plane is handed, the group itself, and the configuration warning that
 * modp768 gets (single DES stays refused).
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';
import { dhAlg, dhGenerate } from '../../src/ike/crypto/dh.js';
import { integAlg } from '../../src/ike/crypto/integ.js';
import { v1EspInteg } from '../../src/ike/crypto/v1-algs.js';
import { algName, parseProposal, toWireProposal } from '../../src/ike/proposal.js';
import { asChosen } from '../../src/ike/v1/p2-proposal.js';
import {
  decodePhase1,
  espAlgNames,
  espKeyLengths,
  espSuites,
  parseV1Proposal,
  phase1Name,
  phase1Offer,
  phase2Name,
  phase2Offer,
} from '../../src/ike/v1/proposal.js';
import { DhId, IntegId, ProtocolId, TransformType } from '../../src/ike/wire/constants.js';
import { Phase2Attr, Phase2AuthAlg } from '../../src/ike/wire/v1/constants.js';
import { config, conn } from '../exchange/pair.js';
import { CONN, issuesOf } from './fixtures/proposal-config.js';

const SPI = Buffer.from([1, 2, 3, 4]);

// RFC 2409 §6.1, the First Oakley Default Group: 2^768 - 2^704 - 1 + 2^64 * ([2^638 pi] + 149686),
// generator 2, as the RFC prints it in hex.
const OAKLEY1_P =
  'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD' +
  'EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF';

t.test(
  'modp768: the RFC 2409 §6.1 prime, 96-byte values, agreement, degenerate values refused',
  async (t) => {
    t.match(dhAlg(DhId.MODP768), { id: 1, name: 'modp768', publicLen: 96, secretLen: 96 });
    const a = dhGenerate(DhId.MODP768);
    const b = dhGenerate(DhId.MODP768);
    t.equal(a.publicKey.length, 96);
    t.same(a.computeSecret(b.publicKey), b.computeSecret(a.publicKey), 'agreement');
    // g^x mod p with x = 1 is g: confirms the generator; p - 1 is refused (RFC 6989 §2.1).
    const P = BigInt(`0x${OAKLEY1_P}`);
    const val = (n: bigint) => Buffer.from(n.toString(16).padStart(192, '0'), 'hex');
    t.throws(() => a.computeSecret(val(P - 1n)), { message: /modp768 public value is out of range/ });
    t.throws(() => a.computeSecret(val(P)), { message: /out of range/ });
    t.throws(() => a.computeSecret(val(1n)), { message: /out of range/ });
    t.throws(() => a.computeSecret(Buffer.alloc(128, 1)), { message: /wrong length/ });
    // The agreed secret is below the RFC's prime: the group is the RFC's, not a 768-bit look-alike.
    const s = BigInt(`0x${a.computeSecret(b.publicKey).toString('hex')}`);
    t.ok(s > 1n && s < P - 1n);
    const { getDiffieHellman } = await import('node:crypto');
    t.equal(getDiffieHellman('modp1').getPrime('hex').toUpperCase(), OAKLEY1_P);
    t.equal(getDiffieHellman('modp1').getGenerator('hex'), '02');
  },
);

t.test('IKEv1: 3des-md5-modp768 for phase 1, aes128-md5-modp768 for quick mode', async (t) => {
  const p1 = parseV1Proposal('3des-md5-modp768', 'ike');
  t.same(p1.integ, [1], 'phase-1 hash MD5 = 1 (RFC 2409 App. A)');
  t.same(p1.groups, [1], 'group description 1 (RFC 2409 §6.1)');
  const [offer] = phase1Offer([p1], { lifeSeconds: 28800 });
  t.equal(phase1Name(decodePhase1(offer!)!), '3des-md5-modp768');

  const p2 = parseV1Proposal('aes128-md5-modp768', 'esp');
  t.same(p2.integ, [Phase2AuthAlg.HMAC_MD5], 'auth algorithm HMAC-MD5 = 1 (RFC 2407 §4.5)');
  const [suite] = espSuites(p2, { lifeSeconds: 3600, encap: 3 });
  t.match(suite, { transformId: 12, keyLen: 128, auth: 1, group: 1 });
  t.equal(phase2Name(suite!), 'aes128-md5-modp768');
  t.same(espAlgNames(suite!), { encr: 'aes128', integ: 'md5' }, 'the names native/esp.cc accepts');
  t.match(espKeyLengths(suite!), { encrKeyLen: 16, integKeyLen: 16 }, 'RFC 2403 §3: a 128-bit key');
  t.match(v1EspInteg(Phase2AuthAlg.HMAC_MD5), { name: 'md5', integId: IntegId.HMAC_MD5_96, keyLen: 16 });
  const chosen = asChosen(suite!, SPI);
  t.equal(chosen.integ, IntegId.HMAC_MD5_96);
  t.equal(algName(TransformType.INTEG, chosen.integ!), 'md5');
  const [wire] = phase2Offer([p2], { spi: SPI, lifeSeconds: 3600, encap: 1 });
  const attrs = wire!.transforms[0]!.attrs;
  t.equal(attrs.find((a) => a.type === Phase2Attr.AUTHENTICATION_ALGORITHM)?.value, 1);
  t.equal(attrs.find((a) => a.type === Phase2Attr.GROUP_DESCRIPTION)?.value, 1);
  t.throws(() => parseV1Proposal('des-md5-modp768', 'ike'), { message: /^DES is refused/ });
});

t.test('IKEv2: md5 (HMAC-MD5-96, ID 1) for ESP, modp768 (ID 1) for IKE and PFS', async (t) => {
  const esp = parseProposal('aes128-md5-modp768', 'esp');
  t.same(esp.integ, [IntegId.HMAC_MD5_96]);
  t.same(esp.dh, [DhId.MODP768]);
  const wire = toWireProposal(esp, 1, ProtocolId.ESP, SPI);
  t.same(
    wire.transforms
      .filter((x) => x.type === TransformType.INTEG || x.type === TransformType.DH)
      .map((x) => x.id),
    [1, 1],
    'AUTH_HMAC_MD5_96 = 1, group 1 (RFC 7296 §3.3.2)',
  );
  t.match(integAlg(IntegId.HMAC_MD5_96), { name: 'md5', keyLen: 16, icvLen: 12 });
  t.same(parseProposal('aes128-sha1-modp768', 'ike').dh, [DhId.MODP768]);
  t.equal(algName(TransformType.DH, DhId.MODP768), 'modp768');
});

t.test('config: modp768 and ESP md5 are accepted in both versions; modp768 is warned about', async (t) => {
  const v1 = parseConfig(CONN(1, '3des-md5-modp768', 'aes128-sha1, aes128-md5-modp768'));
  t.same(configWarnings(v1), [
    'connections.t1.ike.proposals[0]: modp768 is weak (768-bit); use modp2048 or stronger when the peer allows',
    'connections.t1.esp.proposals[1]: modp768 is weak (768-bit); use modp2048 or stronger when the peer allows',
  ]);
  const v2 = parseConfig(CONN(2, 'aes128-sha256-modp2048, aes128-sha1-MODP768', 'aes128-md5'));
  t.same(configWarnings(v2), [
    'connections.t1.ike.proposals[1]: modp768 is weak (768-bit); use modp2048 or stronger when the peer allows',
  ]);
  t.same(
    configWarnings(parseConfig(CONN(1, '3des-md5-modp1024', 'aes128-md5'))),
    [],
    'md5 alone: no warning',
  );
  t.same(configWarnings(config([conn('a')])), [], 'defaults: no warning');
  t.same(issuesOf(CONN(1, 'des-md5-modp768', 'aes128-md5')), [
    'connections.t1.ike.proposals[0]: DES is refused: its 56-bit key is too weak; use aes or 3des',
  ]);
});
