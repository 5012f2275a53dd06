/**
 * 3DES-CBC (ENCR_3DES, RFC 2451) for ESP, for legacy peers: the proposal keyword in both IKE
 * versions, its wire form (no Key Length attribute, RFC 7296 §3.3.5), the name the data plane is
 * handed, the key material length, the configuration check by version, and single DES refused
 * naming the field.
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { encrAlg } from '../../src/ike/crypto/encr.js';
import { v1EspEncrKeyLen } from '../../src/ike/crypto/v1-algs.js';
import {
  algName,
  checkChosenInOffer,
  chosenToString,
  parseProposal,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../../src/ike/proposal.js';
import { asChosen } from '../../src/ike/v1/p2-proposal.js';
import { espSuites, parseV1Proposal } from '../../src/ike/v1/proposal.js';
import { EncrId, IntegId, ProtocolId, TransformType } from '../../src/ike/wire/constants.js';
import { EspTransformId, Phase2AuthAlg } from '../../src/ike/wire/v1/constants.js';
import { CONN, issuesOf } from './fixtures/proposal-config.js';

const SPI = Buffer.from([1, 2, 3, 4]);

t.test('IKEv2: 3des-sha1 for ESP, a transform without Key Length', async (t) => {
  const spec = parseProposal('3des-sha1', 'esp');
  t.same(spec.encr, [{ id: EncrId.DES3, keyLen: 0 }]);
  t.same(spec.integ, [IntegId.HMAC_SHA1_96]);
  const wire = toWireProposal(spec, 1, ProtocolId.ESP, SPI);
  const encr = wire.transforms.find((x) => x.type === TransformType.ENCR)!;
  t.equal(encr.id, 3, 'ENCR_3DES = 3 (RFC 7296 §3.3.2)');
  t.equal(encr.keyLength, undefined, 'no Key Length attribute for a fixed-length cipher');
  // A responder's answer as strongSwan sends it: ENCR_3DES without attribute, HMAC-SHA1-96, no ESN.
  const chosen = wireToChosen({
    num: 1,
    protocolId: ProtocolId.ESP,
    spi: SPI,
    transforms: [
      { type: TransformType.ENCR, id: 3 },
      { type: TransformType.INTEG, id: IntegId.HMAC_SHA1_96 },
      { type: TransformType.ESN, id: 0 },
    ],
  });
  t.ok(checkChosenInOffer(chosen, [spec]), 'the answer matches our offer');
  t.equal(chosenToString(chosen), '3des-sha1');
  t.equal(algName(TransformType.ENCR, EncrId.DES3, 0), '3des', 'the data plane name');
  // Responder side: the peer offers aes256 and 3des; we only accept 3des.
  const peer = toWireProposal(parseProposal('aes256-3des-sha1-sha256', 'esp'), 1, ProtocolId.ESP, SPI);
  const pick = selectProposal([spec], [peer], ProtocolId.ESP);
  t.match(pick, { encr: { id: EncrId.DES3, keyLen: 0 }, integ: IntegId.HMAC_SHA1_96 });
  const alg = encrAlg(EncrId.DES3, 0);
  t.match(alg, { name: '3des', keyLen: 24, keyMatLen: 24, ivLen: 8, blockLen: 8, cipher: 'des-ede3-cbc' });
  t.equal(encrAlg(EncrId.DES3, 192).keyMatLen, 24, "IKEv1's hand-off says 192 bits");
  t.throws(() => encrAlg(EncrId.DES3, 128), /3DES takes no key length other than 192/);
});

t.test('IKEv2: 3des is refused for the IKE SA, des everywhere', async (t) => {
  t.throws(() => parseProposal('3des-sha1-modp2048', 'ike'), {
    message: "'3des' is supported for ESP only with IKEv2; use aes for the IKE SA",
  });
  t.throws(() => parseProposal('des-sha1', 'esp'), {
    message: /^DES is refused: its 56-bit key is too weak/,
  });
  t.throws(() => parseProposal('des-sha1-modp2048', 'ike'), { message: /^DES is refused/ });
});

t.test('IKEv1: 3des-sha1 for ESP (ESP_3DES = 3), handed over as 3des with 24 key bytes', async (t) => {
  const spec = parseV1Proposal('3des-sha1-modp1024', 'esp');
  const [suite] = espSuites(spec, { lifeSeconds: 3600, encap: 3 });
  t.match(suite, { transformId: EspTransformId.ESP_3DES, keyLen: 0, auth: Phase2AuthAlg.HMAC_SHA, group: 2 });
  t.equal(EspTransformId.ESP_3DES, 3, 'RFC 2407 §4.4.4');
  t.equal(v1EspEncrKeyLen(EspTransformId.ESP_3DES, 0), 24);
  const chosen = asChosen(suite!, SPI);
  t.equal(algName(TransformType.ENCR, chosen.encr.id, chosen.encr.keyLen), '3des');
  t.equal(chosen.integ, IntegId.HMAC_SHA1_96);
  t.throws(() => parseV1Proposal('des-sha1', 'esp'), { message: /^DES is refused/ });
});

t.test('config: 3des-sha1 for ESP in both versions, 3des for IKE with IKEv1 only', async (t) => {
  const v1 = parseConfig(CONN(1, '3des-sha1-modp1024', '3des-sha1-modp1024')).connections.t1!;
  t.same(v1.ike.proposals, ['3des-sha1-modp1024']);
  t.same(v1.esp.proposals, ['3des-sha1-modp1024']);
  const v2 = parseConfig(CONN(2, 'aes128-sha1-modp2048', '3des-sha1')).connections.t1!;
  t.same(v2.esp.proposals, ['3des-sha1']);
  t.same(issuesOf(CONN(2, '3des-sha1-modp2048', '3des-sha1')), [
    "connections.t1.ike.proposals[0]: '3des' is supported for ESP only with IKEv2; use aes for the IKE SA",
  ]);
});

t.test('config: des is refused naming the field, in both versions', async (t) => {
  const msg = 'DES is refused: its 56-bit key is too weak; use aes or 3des';
  t.same(issuesOf(CONN(1, 'aes128-sha1-modp1024', 'aes128-sha1, des-sha1')), [
    `connections.t1.esp.proposals[1]: ${msg}`,
  ]);
  t.same(issuesOf(CONN(2, 'aes128-sha1-modp2048', 'des-sha1')), [`connections.t1.esp.proposals[0]: ${msg}`]);
  t.same(issuesOf(CONN(1, 'des-sha1-modp1024', '3des-sha1')), [`connections.t1.ike.proposals[0]: ${msg}`]);
});

t.test('config: IKEv1 proposals are checked with the IKEv1 parser', async (t) => {
  // aes256gcm16 is ESP only in IKEv1 (no AEAD in phase 1); IKEv2 takes it for IKE.
  t.match(issuesOf(CONN(1, 'aes256gcm16-prfsha256-modp2048', 'aes128-sha1')), [
    /^connections\.t1\.ike\.proposals\[0\]: 'aes256gcm16' is not an IKEv1 phase-1 encryption algorithm$/,
  ]);
  t.same(issuesOf(CONN(2, 'aes256gcm16-prfsha256-modp2048', 'aes128-sha1')), []);
  t.match(issuesOf(CONN(1, 'aes999-sha1-modp1024', 'aes128-sha1')), [
    /^connections\.t1\.ike\.proposals\[0\]: unknown algorithm 'aes999'$/,
  ]);
});
