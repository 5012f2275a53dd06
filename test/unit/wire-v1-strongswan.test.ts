/**
 * ISAKMP messages captured from two strongSwan 5.9.8 charons (test/fixtures/strongswan/capture-v1.sh):
 * main mode and aggressive mode with PSK, quick mode with and without PFS, DPD and Delete
 * informationals.
 * Every message decodes and re-encodes byte for byte; for the encrypted ones the plaintext charon
 * logged after decryption (cipher padding included) decodes with decodePayloadsV1.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { peekVersion } from '../../src/ike/wire/header.js';
import {
  attributeNumber,
  DOI_IPSEC,
  EncapsulationMode,
  EspTransformId,
  ExchangeTypeV1,
  HeaderFlagV1,
  IdTypeV1,
  KEY_IKE,
  LifeType,
  NotifyTypeV1,
  Phase1Attr,
  Phase1Auth,
  Phase1Encr,
  Phase1Hash,
  Phase2Attr,
  Phase2AuthAlg,
  ProtocolIdV1,
  SIT_IDENTITY_ONLY,
} from '../../src/ike/wire/v1/index.js';
import {
  decodeMessageV1,
  decodePayloadsV1,
  encodeMessageV1,
  isEncryptedV1,
  rawPayloadsV1,
} from '../../src/ike/wire/v1/message.js';
import { encodePayloadsV1 } from '../../src/ike/wire/v1/payloads.js';
import type { MessageV1, PayloadV1, SaPayloadV1 } from '../../src/ike/wire/v1/types.js';

const DIR = new URL('../../../test/fixtures/strongswan/v1/', import.meta.url);
const EXCHANGES: Record<string, number> = {
  main: ExchangeTypeV1.IDENTITY_PROTECTION,
  aggressive: ExchangeTypeV1.AGGRESSIVE,
  quick: ExchangeTypeV1.QUICK,
  informational: ExchangeTypeV1.INFORMATIONAL,
};
const read = (file: string) => Buffer.from(readFileSync(new URL(file, DIR), 'utf8').trim(), 'hex');

interface Capture {
  file: string;
  variant: string;
  exchange: number;
  fromInitiator: boolean;
  buf: Buffer;
  msg: MessageV1;
  /** The payloads in clear, or decrypted from the .plain fixture. */
  payloads: PayloadV1[];
  plain?: Buffer;
}

const captures: Capture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .map((file) => {
    const [variant = '', , exchange = '', from] = file.split('.');
    const buf = read(file);
    const msg = decodeMessageV1(buf);
    const plainFile = file.replace(/\.hex$/, '.plain');
    const plain = existsSync(new URL(plainFile, DIR)) ? read(plainFile) : undefined;
    const payloads = isEncryptedV1(msg) ? decodePayloadsV1(msg.firstPayload, plain!) : msg.payloads;
    return {
      file,
      variant,
      exchange: EXCHANGES[exchange]!,
      fromInitiator: from === 'i',
      buf,
      msg,
      payloads,
      plain,
    };
  });
const of = (variant: string) => captures.filter((c) => c.variant === variant);
const types = (c: Capture) => c.payloads.map((p) => p.type);
const vids = (c: Capture) =>
  c.payloads.flatMap((p) => (p.type === 13 && 'data' in p ? [p.data.toString('hex')] : []));

const VID_XAUTH = '09002689dfd6b712';
const VID_DPD = 'afcad71368a1f1c96b8696fc77570100';
const VID_FRAG = '4048b7d56ebce88525e7de7f00d6c2d380000000';
const VID_RFC3947 = '4a131c81070358455c5728f20e95452f';
const VID_NATT_DRAFT_02 = '90cb80913ebb696e086381b5ec427b1f';

/** strongSwan's phase-1 offer: TV attributes, but a 24 h lifetime needs a 4-byte TLV. */
function phase1(encrKeyLength: number, hash: number): SaPayloadV1 {
  return {
    type: 1,
    doi: DOI_IPSEC,
    situation: SIT_IDENTITY_ONLY,
    proposals: [
      {
        num: 1,
        protocolId: ProtocolIdV1.ISAKMP,
        spi: Buffer.alloc(0),
        transforms: [
          {
            num: 1,
            id: KEY_IKE,
            attributes: [
              { type: Phase1Attr.ENCRYPTION_ALGORITHM, value: Phase1Encr.AES_CBC },
              { type: Phase1Attr.KEY_LENGTH, value: encrKeyLength },
              { type: Phase1Attr.HASH_ALGORITHM, value: hash },
              { type: Phase1Attr.GROUP_DESCRIPTION, value: 14 },
              { type: Phase1Attr.AUTHENTICATION_METHOD, value: Phase1Auth.PRE_SHARED_KEY },
              { type: Phase1Attr.LIFE_TYPE, value: LifeType.SECONDS },
              { type: Phase1Attr.LIFE_DURATION, value: Buffer.from('00017340', 'hex') },
            ],
          },
        ],
      },
    ],
  };
}

t.test('both variants are present, with plaintexts for every encrypted message', async (t) => {
  // How many DPD exchanges fit the idle time varies; at least one each way plus two Deletes.
  const main = of('main-psk').map((c) => c.exchange);
  t.strictSame(main.slice(0, 9), [2, 2, 2, 2, 2, 2, 32, 32, 32]);
  t.ok(main.length >= 13 && main.slice(9).every((e) => e === 5), 'then informationals');
  const aggr = of('aggr-psk').map((c) => c.exchange);
  t.strictSame(aggr.slice(0, 6), [4, 4, 4, 32, 32, 32]);
  t.ok(aggr.length >= 10 && aggr.slice(6).every((e) => e === 5), 'then informationals');
  for (const c of captures)
    t.equal(c.plain !== undefined, isEncryptedV1(c.msg), `${c.file}: plaintext iff E`);
});

t.test('every capture re-encodes to identical bytes', async (t) => {
  for (const c of captures) {
    t.equal(peekVersion(c.buf), 1, `${c.file}: IKEv1`);
    t.equal(c.msg.header.version, 0x10, `${c.file}: version 1.0`);
    t.equal(c.msg.header.exchange, c.exchange, `${c.file}: exchange`);
    t.equal(encodeMessageV1(c.msg).toString('hex'), c.buf.toString('hex'), `${c.file}: byte-identical`);
  }
});

t.test('main mode 1-4 in clear, 5-6 encrypted; the cookies', async (t) => {
  const mm = of('main-psk');
  for (const [i, c] of mm.slice(0, 6).entries()) {
    t.equal(c.fromInitiator, i % 2 === 0, `${c.file}: direction`);
    t.equal(c.msg.header.flags, i < 4 ? 0 : HeaderFlagV1.ENCRYPTION, `${c.file}: flags`);
    t.same(c.msg.header.spiI, mm[0]!.msg.header.spiI, `${c.file}: initiator cookie`);
  }
  t.equal(mm[0]!.msg.header.spiR.toString('hex'), '0000000000000000', 'no responder cookie yet');
  t.equal(mm[0]!.msg.header.messageId, 0, 'phase 1 has message ID 0');
  t.strictSame(types(mm[0]!), [1, 13, 13, 13, 13, 13]);
  t.strictSame(vids(mm[0]!), [VID_XAUTH, VID_DPD, VID_FRAG, VID_RFC3947, VID_NATT_DRAFT_02]);
  t.strictSame(types(mm[1]!), [1, 13, 13, 13, 13]);
  t.strictSame(vids(mm[1]!), [VID_XAUTH, VID_DPD, VID_FRAG, VID_RFC3947], 'the responder picks RFC 3947');
  t.strictSame(mm[0]!.payloads[0], phase1(128, Phase1Hash.SHA2_256), 'offered SA');
  t.strictSame(mm[1]!.payloads[0], phase1(128, Phase1Hash.SHA2_256), 'accepted SA echoes the transform');
  const sa = mm[0]!.payloads[0] as SaPayloadV1;
  const life = sa.proposals[0]!.transforms[0]!.attributes.find((a) => a.type === Phase1Attr.LIFE_DURATION)!;
  t.equal(attributeNumber(life), 95040, '24 h rekey + over time as a TLV life duration');
  for (const c of [mm[2]!, mm[3]!]) {
    t.strictSame(types(c), [4, 10, 20, 20], `${c.file}: KE, NONCE, NAT-D x2`);
    t.equal((c.payloads[0] as { data: Buffer }).data.length, 256, 'MODP-2048 public value');
    t.equal((c.payloads[1] as { data: Buffer }).data.length, 32, 'nonce');
    t.equal((c.payloads[2] as { data: Buffer }).data.length, 32, 'NAT-D is a SHA-256 hash');
  }
  t.strictSame(types(mm[4]!), [5, 8, 11], 'IDii, HASH_I, INITIAL-CONTACT');
  t.match(mm[4]!.payloads[0], { type: 5, idType: IdTypeV1.FQDN, protocolId: 0, port: 0 });
  t.equal((mm[4]!.payloads[0] as { data: Buffer }).data.toString(), 'a.tsw.test');
  t.match(mm[4]!.payloads[2], {
    type: 11,
    doi: DOI_IPSEC,
    protocolId: ProtocolIdV1.ISAKMP,
    notifyType: NotifyTypeV1.INITIAL_CONTACT,
  });
  t.equal((mm[4]!.payloads[2] as { spi: Buffer }).spi.length, 16, 'ISAKMP SPI: both cookies');
  t.strictSame(types(mm[5]!), [5, 8], 'IDir, HASH_R');
  for (const c of [mm[4]!, mm[5]!])
    t.equal(isEncryptedV1(c.msg) && c.msg.firstPayload, 5, `${c.file}: first ID`);
});

t.test('aggressive mode: 1-2 in clear, 3 encrypted', async (t) => {
  const am = of('aggr-psk');
  t.strictSame(types(am[0]!), [1, 4, 10, 5, 13, 13, 13, 13, 13]);
  t.strictSame(types(am[1]!), [1, 4, 10, 5, 13, 13, 13, 13, 20, 20, 8]);
  t.strictSame(am[0]!.payloads[0], phase1(256, Phase1Hash.SHA));
  t.strictSame(am[1]!.payloads[0], phase1(256, Phase1Hash.SHA));
  t.equal((am[1]!.payloads[10] as { data: Buffer }).data.length, 20, 'HASH_R is an HMAC-SHA1');
  t.equal(am[0]!.msg.header.flags, 0);
  t.equal(am[2]!.msg.header.flags, HeaderFlagV1.ENCRYPTION);
  t.strictSame(types(am[2]!), [8, 20, 20], 'HASH_I and NAT-D, encrypted');
});

t.test('quick mode: HASH first, SA with the ESP proposal, UDP-encapsulated tunnel', async (t) => {
  for (const [variant, pfs, keyLength, auth] of [
    ['main-psk', true, 128, Phase2AuthAlg.HMAC_SHA2_256],
    ['aggr-psk', false, 256, Phase2AuthAlg.HMAC_SHA],
  ] as const) {
    const qm = of(variant).filter((c) => c.exchange === ExchangeTypeV1.QUICK);
    t.equal(qm.length, 3, `${variant}: three messages`);
    const ids = pfs ? [8, 1, 10, 4, 5, 5] : [8, 1, 10, 5, 5];
    t.strictSame(types(qm[0]!), ids, `${variant}: HASH(1), SA, Ni, [KE,] IDci, IDcr`);
    t.strictSame(types(qm[1]!), ids, `${variant}: HASH(2), SA, Nr, [KE,] IDci, IDcr`);
    t.strictSame(types(qm[2]!), [8], `${variant}: HASH(3)`);
    t.not(qm[0]!.msg.header.messageId, 0, 'phase 2 message ID');
    const sa = qm[0]!.payloads[1] as SaPayloadV1;
    const [proposal] = sa.proposals;
    t.match(proposal, { num: 1, protocolId: ProtocolIdV1.IPSEC_ESP });
    t.equal(proposal!.spi.length, 4, 'ESP SPI');
    const [transform] = proposal!.transforms;
    t.equal(transform!.id, EspTransformId.ESP_AES_CBC);
    const attr = (type: number) => transform!.attributes.find((a) => a.type === type)?.value;
    t.equal(attr(Phase2Attr.KEY_LENGTH), keyLength);
    t.equal(attr(Phase2Attr.AUTHENTICATION_ALGORITHM), auth);
    t.equal(attr(Phase2Attr.ENCAPSULATION_MODE), EncapsulationMode.UDP_TUNNEL, 'NAT-T forced by libipsec');
    t.equal(attr(Phase2Attr.GROUP_DESCRIPTION), pfs ? 14 : undefined, 'PFS group');
    t.equal(attr(Phase2Attr.SA_LIFE_DURATION), 3960, 'child life as a TV attribute');
    const idci = qm[0]!.payloads.at(-2);
    t.match(idci, { type: 5, idType: IdTypeV1.IPV4_ADDR_SUBNET, protocolId: 0, port: 0 });
    t.equal((idci as { data: Buffer }).data.toString('hex'), 'c6120100ffffff00', '198.18.1.0/24');
  }
});

t.test('Delete informationals: ESP SA, then the ISAKMP SA by its cookies', async (t) => {
  for (const variant of ['main-psk', 'aggr-psk']) {
    const info = of(variant).filter((c) => c.payloads.some((p) => p.type === 12));
    const esp = of(variant).find((c) => c.exchange === ExchangeTypeV1.QUICK)!.payloads[1] as SaPayloadV1;
    t.strictSame(info.map(types), [
      [8, 12],
      [8, 12],
    ]);
    t.strictSame(info[0]!.payloads[1], {
      type: 12,
      doi: DOI_IPSEC,
      protocolId: ProtocolIdV1.IPSEC_ESP,
      spiSize: 4,
      spis: [esp.proposals[0]!.spi],
    });
    const cookies = Buffer.concat([info[1]!.msg.header.spiI, info[1]!.msg.header.spiR]);
    t.strictSame(info[1]!.payloads[1], {
      type: 12,
      doi: DOI_IPSEC,
      protocolId: ProtocolIdV1.ISAKMP,
      spiSize: 16,
      spis: [cookies],
    });
  }
});

t.test('DPD (RFC 3706): each R-U-THERE answered by an ACK with its sequence number', async (t) => {
  for (const variant of ['main-psk', 'aggr-psk']) {
    const dpd = of(variant).flatMap((c) =>
      c.payloads.flatMap((p) =>
        p.type === 11 && 'notifyType' in p && p.notifyType > 36000 ? [{ c, p }] : [],
      ),
    );
    const asks = dpd.filter(({ p }) => p.notifyType === NotifyTypeV1.R_U_THERE);
    t.ok(asks.length >= 1, `${variant}: ${asks.length} R-U-THERE`);
    for (const { c, p } of dpd) {
      t.strictSame(types(c), [8, 11], `${c.file}: HASH, N`);
      const cookies = Buffer.concat([c.msg.header.spiI, c.msg.header.spiR]);
      t.match(p, { doi: DOI_IPSEC, protocolId: ProtocolIdV1.ISAKMP, spi: cookies });
      t.equal(p.data.length, 4, 'a 32-bit sequence number');
    }
    for (const { c, p } of asks) {
      const ack = dpd.find(
        (d) =>
          d.p.notifyType === NotifyTypeV1.R_U_THERE_ACK &&
          d.p.data.equals(p.data) &&
          d.c.fromInitiator !== c.fromInitiator,
      );
      t.ok(ack, `${c.file}: acknowledged by the peer`);
    }
  }
});

t.test('decrypted bodies: zero padding after the chain, re-encoded without it', async (t) => {
  for (const c of captures.filter((c) => c.plain)) {
    if (!isEncryptedV1(c.msg)) continue;
    const { first, bytes } = encodePayloadsV1(c.payloads);
    t.equal(first, c.msg.firstPayload, `${c.file}: first payload`);
    t.equal(c.plain!.length % 16, 0, `${c.file}: AES blocks`);
    t.ok(c.plain!.length > bytes.length, `${c.file}: strongSwan always pads`);
    t.equal(c.plain!.subarray(0, bytes.length).toString('hex'), bytes.toString('hex'), `${c.file}: chain`);
    t.ok(c.plain!.subarray(bytes.length).equals(Buffer.alloc(c.plain!.length - bytes.length)), 'zero pad');
  }
});

t.test('raw payloads: the SA and ID bodies HASH_I/HASH_R cover', async (t) => {
  const [m1, m2] = of('aggr-psk');
  const raw = rawPayloadsV1(1, m1!.buf.subarray(28));
  t.strictSame(
    raw.map((r) => r.type),
    types(m1!),
  );
  const sa = raw[0]!;
  t.equal(sa.raw.readUInt16BE(2), sa.raw.length, 'raw holds the generic header');
  t.equal(sa.body.length, sa.raw.length - 4);
  t.equal(sa.body.readUInt32BE(0), DOI_IPSEC, 'SAi_b starts with the DOI');
  const id = raw[3]!;
  t.equal(id.body.toString('hex'), `02000000${Buffer.from('a.tsw.test').toString('hex')}`, 'IDii_b');
  t.equal(Buffer.concat(raw.map((r) => r.raw)).toString('hex'), m1!.buf.subarray(28).toString('hex'));
  // Quick mode HASH(1) covers everything after the HASH payload, without the padding.
  const qm = of('main-psk').find((c) => c.exchange === ExchangeTypeV1.QUICK)!;
  const qraw = rawPayloadsV1(8, qm.plain!, true);
  const covered = Buffer.concat(qraw.slice(1).map((r) => r.raw));
  t.equal(qraw[0]!.raw.length + covered.length, encodePayloadsV1(qm.payloads).bytes.length);
  t.ok(m2, 'aggressive message 2 present');
});
