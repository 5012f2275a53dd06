/**
 * Phase 2 (quick mode) ESP proposals (RFC 2407 §4.4.4, §4.5; RFC 3947 §5.1 for the UDP tunnel
 * mode): transform IDs, key length, HMAC, the PFS group and the lifetime, from the strongSwan
 * syntax the IKEv2 side parses (`aes128-sha1-modp1024`, `aes256gcm16`).
 */
import { IkeError } from '../../errors.js';
import { V1_ESP_TO_ENCR, v1EspInteg } from '../crypto/v1-algs.js';
import { type Chosen, parseProposals } from '../proposal.js';
import { EncrId, IntegId } from '../wire/constants.js';
import { attributeNumber, findAttribute } from '../wire/v1/attributes.js';
import {
  DOI_IPSEC,
  EncapsulationMode,
  Phase2Attr,
  ProtocolIdV1,
  SIT_IDENTITY_ONLY,
} from '../wire/v1/constants.js';
import type { DataAttribute, SaPayloadV1, TransformV1 } from '../wire/v1/types.js';

const ESP_ID: Record<number, number> = { [EncrId.AES_CBC]: 12, [EncrId.AES_GCM_16]: 20, [EncrId.DES3]: 3 };
const AUTH: Record<number, number> = {
  [IntegId.HMAC_SHA1_96]: 2,
  [IntegId.HMAC_SHA2_256_128]: 5,
  [IntegId.HMAC_SHA2_384_192]: 6,
  [IntegId.HMAC_SHA2_512_256]: 7,
};

/** One phase 2 transform as both sides state it. */
export interface P2Choice {
  espId: number;
  keyLen: number;
  auth: number;
  group: number;
  encap: number;
  life: number;
}

export function p2Choices(proposals: string[], life: number, udp: boolean): P2Choice[] {
  const encap = udp ? EncapsulationMode.UDP_TUNNEL : EncapsulationMode.TUNNEL;
  const out: P2Choice[] = [];
  for (const p of parseProposals(proposals, 'esp')) {
    const group = p.dh.find((g) => g !== 0) ?? 0;
    for (const e of p.encr) {
      const espId = ESP_ID[e.id];
      if (!espId) continue;
      const auths = p.integ.length ? p.integ.map((i) => AUTH[i] ?? -1).filter((a) => a > 0) : [0];
      for (const auth of auths)
        out.push({ espId, keyLen: espId === 3 ? 0 : e.keyLen, auth, group, encap, life });
    }
  }
  return out;
}

function transformOf(c: P2Choice, num: number): TransformV1 {
  const attrs: DataAttribute[] = [
    { type: Phase2Attr.SA_LIFE_TYPE, value: 1 },
    { type: Phase2Attr.SA_LIFE_DURATION, value: lifeValue(c.life) },
  ];
  if (c.group) attrs.push({ type: Phase2Attr.GROUP_DESCRIPTION, value: c.group });
  attrs.push({ type: Phase2Attr.ENCAPSULATION_MODE, value: c.encap });
  if (c.auth) attrs.push({ type: Phase2Attr.AUTHENTICATION_ALGORITHM, value: c.auth });
  if (c.keyLen) attrs.push({ type: Phase2Attr.KEY_LENGTH, value: c.keyLen });
  return { num, id: c.espId, attributes: attrs };
}

function lifeValue(s: number): number | Buffer {
  if (s < 0x10000) return s;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(s);
  return b;
}

export function p2SaPayload(choices: P2Choice[], spi: Buffer): SaPayloadV1 {
  return {
    type: 1,
    doi: DOI_IPSEC,
    situation: SIT_IDENTITY_ONLY,
    proposals: [
      {
        num: 1,
        protocolId: ProtocolIdV1.IPSEC_ESP,
        spi,
        transforms: choices.map((c, i) => transformOf(c, i + 1)),
      },
    ],
  };
}

export function choiceOf(t: TransformV1): P2Choice {
  const n = (type: number): number | undefined => {
    const a = findAttribute(t.attributes, type);
    return a ? attributeNumber(a) : undefined;
  };
  return {
    espId: t.id,
    keyLen: n(Phase2Attr.KEY_LENGTH) ?? 0,
    auth: n(Phase2Attr.AUTHENTICATION_ALGORITHM) ?? 0,
    group: n(Phase2Attr.GROUP_DESCRIPTION) ?? 0,
    encap: n(Phase2Attr.ENCAPSULATION_MODE) ?? EncapsulationMode.TUNNEL,
    life: n(Phase2Attr.SA_LIFE_DURATION) ?? 28800,
  };
}

const UDP_MODES = new Set<number>([EncapsulationMode.UDP_TUNNEL, EncapsulationMode.UDP_TUNNEL_DRAFT]);
const tunnel = (m: number): string =>
  UDP_MODES.has(m) ? 'udp' : m === EncapsulationMode.TUNNEL ? 'tunnel' : 'other';
const same = (a: P2Choice, b: P2Choice): boolean =>
  a.espId === b.espId &&
  a.keyLen === b.keyLen &&
  a.auth === b.auth &&
  a.group === b.group &&
  tunnel(a.encap) === tunnel(b.encap);

/** Responder: the first of ours the peer offered; the answer repeats its transform with our SPI. */
export function selectP2(
  ours: P2Choice[],
  sa: SaPayloadV1,
  ourSpi: Buffer,
): { choice: P2Choice; peerSpi: Buffer; answer: SaPayloadV1 } {
  const prop = sa.proposals.find((p) => p.protocolId === ProtocolIdV1.IPSEC_ESP && p.spi.length === 4);
  if (!prop) throw new IkeError('no_proposal_chosen', 'quick mode SA without an ESP proposal');
  for (const mine of ours) {
    for (const t of prop.transforms) {
      const c = choiceOf(t);
      if (tunnel(c.encap) === 'other' || !same(mine, { ...c, encap: mine.encap })) continue;
      return {
        choice: c,
        peerSpi: prop.spi,
        answer: { ...sa, proposals: [{ ...prop, spi: ourSpi, transforms: [t] }] },
      };
    }
  }
  throw new IkeError('no_proposal_chosen', 'no acceptable ESP transform in quick mode');
}

/** Initiator: the answer is one transform we offered; returns it and the responder's SPI. */
export function checkP2(ours: P2Choice[], sa: SaPayloadV1): { choice: P2Choice; peerSpi: Buffer } {
  const prop = sa.proposals[0];
  const t = prop?.transforms;
  if (!prop || prop.spi.length !== 4 || t?.length !== 1)
    throw new IkeError('invalid_syntax', 'quick mode answer is not one ESP transform');
  const c = choiceOf(t[0]!);
  if (!ours.some((o) => same(o, { ...c, encap: o.encap })))
    throw new IkeError('no_proposal_chosen', 'responder chose an ESP transform we did not offer');
  return { choice: c, peerSpi: prop.spi };
}

/** The choice in the IKEv2 shape the data plane hand-off and status use. */
export function asChosen(c: P2Choice, spi: Buffer): Chosen {
  const encrId = V1_ESP_TO_ENCR.get(c.espId);
  if (encrId === undefined)
    throw new IkeError('no_proposal_chosen', `ESP transform ${c.espId} is not supported`);
  return {
    num: 1,
    spi,
    encr: { id: encrId, keyLen: c.espId === 3 ? 192 : c.keyLen },
    integ: c.auth ? v1EspInteg(c.auth).integId : null,
    prf: null,
    dh: c.group || null,
    esn: false,
  };
}
