/**
 * Phase 1 proposals on the wire (RFC 2409 §5, Appendix A): the ISAKMP SA payload built from and
 * checked against `proposal.ts` (strongSwan syntax to suites, selection, lifetimes), converted
 * between its shapes and the codec's.
 */
import type { ConnectionConfig } from '../../config/types.js';
import { IkeError } from '../../errors.js';
import { DOI_IPSEC, SIT_IDENTITY_ONLY } from '../wire/v1/constants.js';
import type { ProposalV1, SaPayloadV1, TransformV1 } from '../wire/v1/types.js';
import {
  checkPhase1Chosen,
  parseV1Proposals,
  phase1Offer,
  selectPhase1,
  V1_PROTO_ISAKMP,
  type V1Proposal,
  type V1Transform,
} from './proposal.js';

/** The phase 1 choice the exchange works with. */
export interface P1Choice {
  hash: number;
  encr: number;
  keyLen: number;
  group: number;
  life: number;
}

export const toWire = (t: V1Transform): TransformV1 => ({ num: t.num, id: t.id, attributes: t.attrs });
export const fromWire = (p: ProposalV1): V1Proposal => ({
  num: p.num,
  protocolId: p.protocolId,
  spi: p.spi,
  transforms: p.transforms.map((t) => ({ num: t.num, id: t.id, attrs: t.attributes })),
});

export const saPayload = (proposals: ProposalV1[]): SaPayloadV1 => ({
  type: 1,
  doi: DOI_IPSEC,
  situation: SIT_IDENTITY_ONLY,
  proposals,
});

/** Our offer: one ISAKMP proposal, a KEY_IKE transform per suite (aggressive mode: one DH group). */
export function p1Offer(conn: ConnectionConfig): V1Transform[] {
  return phase1Offer(parseV1Proposals(conn.ike.proposals, 'ike'), {
    lifeSeconds: conn.ike.lifetime,
    singleGroup: conn.mode === 'aggressive',
  });
}

export function p1SaPayload(offer: V1Transform[]): SaPayloadV1 {
  return saPayload([
    { num: 1, protocolId: V1_PROTO_ISAKMP, spi: Buffer.alloc(0), transforms: offer.map(toWire) },
  ]);
}

/**
 * Responder: our configured order first (strongSwan's prefer_configured_proposals); the answer
 * repeats the peer's transform unchanged (RFC 2408 §4.2). Throws NO-PROPOSAL-CHOSEN.
 */
export function selectP1(conn: ConnectionConfig, sa: SaPayloadV1): { choice: P1Choice; answer: SaPayloadV1 } {
  if (sa.doi !== DOI_IPSEC) throw new IkeError('no_proposal_chosen', `phase 1 SA with DOI ${sa.doi}`);
  const c = selectPhase1(parseV1Proposals(conn.ike.proposals, 'ike'), sa.proposals.map(fromWire), {
    lifeSeconds: conn.ike.lifetime,
    preferOurs: true,
  });
  if (!c) throw new IkeError('no_proposal_chosen', 'no acceptable phase 1 transform');
  const prop = sa.proposals.find((p) => p.num === c.proposalNum)!;
  const s = c.suite;
  return {
    choice: { hash: s.hash, encr: s.encr, keyLen: s.keyLen, group: s.group, life: c.lifeSeconds },
    answer: { ...sa, proposals: [{ ...prop, transforms: [toWire(c.transform)] }] },
  };
}

/** Initiator: the responder's answer must be one transform we offered. */
export function checkP1(conn: ConnectionConfig, offer: V1Transform[], sa: SaPayloadV1): P1Choice {
  const s = checkPhase1Chosen(offer, sa.proposals.map(fromWire));
  if (!s) throw new IkeError('no_proposal_chosen', 'responder chose a phase 1 transform we did not offer');
  return {
    hash: s.hash,
    encr: s.encr,
    keyLen: s.keyLen,
    group: s.group,
    life: s.lifeSeconds ?? conn.ike.lifetime,
  };
}
