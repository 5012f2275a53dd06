/**
 * Quick mode ESP proposals on the wire (RFC 2407 §4.4.4, §4.5; RFC 3947 §5.1 for the UDP tunnel
 * mode), over `proposal.ts`, and the choice in the IKEv2 shape that the data plane hand-off and
 * status share.
 */
import type { ConnectionConfig } from '../../config/types.js';
import { IkeError } from '../../errors.js';
import { V1_ESP_TO_ENCR, v1EspInteg } from '../crypto/v1-algs.js';
import type { Chosen } from '../proposal.js';
import { EncapsulationMode } from '../wire/v1/constants.js';
import type { SaPayloadV1 } from '../wire/v1/types.js';
import { fromWire, saPayload, toWire } from './p1-proposal.js';
import {
  checkPhase2Chosen,
  parseV1Proposals,
  phase2Offer,
  selectPhase2,
  type V1EspSuite,
  type V1Proposal,
} from './proposal.js';

/** The chosen ESP transform and the lifetime both sides use. */
export interface P2Choice {
  suite: V1EspSuite;
  life: number;
  /** We shortened the peer's lifetime: say so with RESPONDER-LIFETIME (RFC 2407 §4.6.3.1). */
  responderLifetime: boolean;
}

/**
 * Our quick mode offer. With UDP encapsulation the mode is RFC 3947's UDP-Encapsulated-Tunnel,
 * or the drafts' private number when the peer announced only a draft (as strongSwan does).
 */
export function p2Offer(conn: ConnectionConfig, spi: Buffer, udp: boolean, draft = false): V1Proposal[] {
  const encapUdp = draft ? EncapsulationMode.UDP_TUNNEL_DRAFT : EncapsulationMode.UDP_TUNNEL;
  return phase2Offer(parseV1Proposals(conn.esp.proposals, 'esp'), {
    spi,
    lifeSeconds: conn.esp.lifetime,
    encap: udp ? encapUdp : EncapsulationMode.TUNNEL,
  });
}

export function p2SaPayload(offer: V1Proposal[]): SaPayloadV1 {
  return saPayload(
    offer.map((p) => ({
      num: p.num,
      protocolId: p.protocolId,
      spi: p.spi,
      transforms: p.transforms.map(toWire),
    })),
  );
}

/** Responder: ours first; the answer repeats the peer's transform with our SPI. */
export function selectP2(
  conn: ConnectionConfig,
  sa: SaPayloadV1,
  ourSpi: Buffer,
  udp: boolean,
): { choice: P2Choice; peerSpi: Buffer; answer: SaPayloadV1 } {
  const c = selectPhase2(parseV1Proposals(conn.esp.proposals, 'esp'), sa.proposals.map(fromWire), {
    lifeSeconds: conn.esp.lifetime,
    natT: udp,
    preferOurs: true,
  });
  if (!c) throw new IkeError('no_proposal_chosen', 'no acceptable ESP transform in quick mode');
  const prop = sa.proposals.find((p) => p.num === c.proposalNum && p.spi.equals(c.spi))!;
  return {
    choice: { suite: c.suite, life: c.lifeSeconds, responderLifetime: c.responderLifetime },
    peerSpi: c.spi,
    answer: { ...sa, proposals: [{ ...prop, spi: ourSpi, transforms: [toWire(c.transform)] }] },
  };
}

/** Initiator: the answer is one transform we offered; returns it and the responder's SPI. */
export function checkP2(
  conn: ConnectionConfig,
  offer: V1Proposal[],
  sa: SaPayloadV1,
): { choice: P2Choice; peerSpi: Buffer } {
  const s = checkPhase2Chosen(offer, sa.proposals.map(fromWire));
  const spi = sa.proposals[0]?.spi;
  if (!s || !spi)
    throw new IkeError('no_proposal_chosen', 'responder chose an ESP transform we did not offer');
  return {
    choice: { suite: s, life: s.lifeSeconds ?? conn.esp.lifetime, responderLifetime: false },
    peerSpi: spi,
  };
}

/** The choice in the IKEv2 shape (names, key lengths) the data plane hand-off and status use. */
export function asChosen(s: V1EspSuite, spi: Buffer): Chosen {
  const encrId = V1_ESP_TO_ENCR.get(s.transformId);
  if (encrId === undefined)
    throw new IkeError('no_proposal_chosen', `ESP transform ${s.transformId} is not supported`);
  return {
    num: 1,
    spi,
    encr: { id: encrId, keyLen: s.keyLen || 192 },
    integ: s.auth ? v1EspInteg(s.auth).integId : null,
    prf: null,
    dh: s.group,
    esn: false,
  };
}
