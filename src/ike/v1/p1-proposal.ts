/**
 * Phase 1 proposals (RFC 2409 §5, Appendix A): one ISAKMP proposal whose transforms (KEY_IKE) each
 * name an encryption algorithm (+ key length), a hash (which is also the prf), pre-shared key
 * authentication, a DH group and a lifetime, built from the strongSwan proposal syntax the IKEv2
 * side parses (`aes128-sha1-modp1024`).
 */
import { IkeError } from '../../errors.js';
import { parseProposals } from '../proposal.js';
import { EncrId, PrfId } from '../wire/constants.js';
import { attributeNumber, findAttribute } from '../wire/v1/attributes.js';
import { DOI_IPSEC, KEY_IKE, Phase1Attr, ProtocolIdV1, SIT_IDENTITY_ONLY } from '../wire/v1/constants.js';
import type { DataAttribute, SaPayloadV1, TransformV1 } from '../wire/v1/types.js';

const V1_ENCR: Record<number, number> = { [EncrId.AES_CBC]: 7, [EncrId.DES3]: 5 };
const V1_HASH: Record<number, number> = {
  [PrfId.HMAC_MD5]: 1,
  [PrfId.HMAC_SHA1]: 2,
  [PrfId.HMAC_SHA2_256]: 4,
  [PrfId.HMAC_SHA2_384]: 5,
  [PrfId.HMAC_SHA2_512]: 6,
};
const PSK = 1;
const SECONDS = 1;

export interface P1Choice {
  hash: number;
  encr: number;
  keyLen: number;
  group: number;
  life: number;
}

/** A lifetime as TV when it fits 16 bits, else TLV of 4 bytes (RFC 2408 §3.3), as strongSwan does. */
function life(seconds: number): DataAttribute {
  if (seconds < 0x10000) return { type: Phase1Attr.LIFE_DURATION, value: seconds };
  const b = Buffer.alloc(4);
  b.writeUInt32BE(seconds);
  return { type: Phase1Attr.LIFE_DURATION, value: b };
}

export function p1Choices(proposals: string[], lifetime: number): P1Choice[] {
  const out: P1Choice[] = [];
  for (const p of parseProposals(proposals, 'ike')) {
    for (const e of p.encr) {
      const encr = V1_ENCR[e.id];
      if (!encr) continue;
      for (const prf of p.prf) {
        const hash = V1_HASH[prf];
        if (!hash) continue;
        for (const group of p.dh)
          out.push({ hash, encr, keyLen: encr === 7 ? (e.keyLen ?? 128) : 0, group, life: lifetime });
      }
    }
  }
  return out;
}

export function transformOf(c: P1Choice, num: number): TransformV1 {
  const attributes: DataAttribute[] = [{ type: Phase1Attr.ENCRYPTION_ALGORITHM, value: c.encr }];
  if (c.keyLen) attributes.push({ type: Phase1Attr.KEY_LENGTH, value: c.keyLen });
  attributes.push(
    { type: Phase1Attr.HASH_ALGORITHM, value: c.hash },
    { type: Phase1Attr.AUTHENTICATION_METHOD, value: PSK },
    { type: Phase1Attr.GROUP_DESCRIPTION, value: c.group },
    { type: Phase1Attr.LIFE_TYPE, value: SECONDS },
    life(c.life),
  );
  return { num, id: KEY_IKE, attributes };
}

export function p1SaPayload(choices: P1Choice[]): SaPayloadV1 {
  return {
    type: 1,
    doi: DOI_IPSEC,
    situation: SIT_IDENTITY_ONLY,
    proposals: [
      {
        num: 1,
        protocolId: ProtocolIdV1.ISAKMP,
        spi: Buffer.alloc(0),
        transforms: choices.map((c, i) => transformOf(c, i + 1)),
      },
    ],
  };
}

/** The choice a transform states; null when it is not pre-shared keys with seconds. */
export function choiceOf(t: TransformV1): P1Choice | null {
  const n = (type: number): number | undefined => {
    const a = findAttribute(t.attributes, type);
    return a ? attributeNumber(a) : undefined;
  };
  if (n(Phase1Attr.AUTHENTICATION_METHOD) !== PSK) return null;
  const lt = n(Phase1Attr.LIFE_TYPE);
  const encr = n(Phase1Attr.ENCRYPTION_ALGORITHM);
  const hash = n(Phase1Attr.HASH_ALGORITHM);
  const group = n(Phase1Attr.GROUP_DESCRIPTION);
  if (encr === undefined || hash === undefined || group === undefined) return null;
  return {
    encr,
    hash,
    group,
    keyLen: n(Phase1Attr.KEY_LENGTH) ?? 0,
    life: lt === undefined || lt === SECONDS ? (n(Phase1Attr.LIFE_DURATION) ?? 28800) : 28800,
  };
}

const same = (a: P1Choice, b: P1Choice): boolean =>
  a.encr === b.encr && a.hash === b.hash && a.group === b.group && a.keyLen === b.keyLen;

/**
 * Responder: the first of our choices the peer offered (strongSwan prefers its configured order);
 * the answer repeats the peer's transform as it was (with its lifetime, RFC 2409 §5). Throws
 * NO-PROPOSAL-CHOSEN.
 */
export function selectP1(ours: P1Choice[], sa: SaPayloadV1): { choice: P1Choice; answer: SaPayloadV1 } {
  const prop = sa.proposals[0];
  if (sa.doi !== DOI_IPSEC || !prop || prop.protocolId !== ProtocolIdV1.ISAKMP)
    throw new IkeError('no_proposal_chosen', 'phase 1 SA without an ISAKMP proposal');
  for (const mine of ours) {
    for (const t of prop.transforms) {
      const c = choiceOf(t);
      if (!c || !same(mine, c)) continue;
      return { choice: c, answer: { ...sa, proposals: [{ ...prop, transforms: [t] }] } };
    }
  }
  throw new IkeError('no_proposal_chosen', 'no acceptable phase 1 transform');
}

/** Initiator: the responder's answer must be one transform we offered. */
export function checkP1(ours: P1Choice[], sa: SaPayloadV1): P1Choice {
  const t = sa.proposals[0]?.transforms;
  const c = t?.length === 1 ? choiceOf(t[0]!) : null;
  if (!c || !ours.some((o) => same(o, c)))
    throw new IkeError('no_proposal_chosen', 'responder chose a phase 1 transform we did not offer');
  return c;
}
