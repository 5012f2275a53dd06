/**
 * IKE_SA_INIT (RFC 7296 §1.2): proposals, Diffie-Hellman, nonces, NAT detection, and the two
 * ways it is sent again: INVALID_KE_PAYLOAD (the group the responder wants) and COOKIE.
 */
import { randomBytes } from 'node:crypto';
import { dhGenerate } from '../crypto/dh.js';
import { encrAlg } from '../crypto/encr.js';
import { integAlg } from '../crypto/integ.js';
import { deriveIkeKeys } from '../crypto/keys.js';
import { prfAlg } from '../crypto/prf.js';
import { SkProtector } from '../crypto/sk.js';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  type ProposalSpec,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../proposal.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { Payload } from '../wire/types.js';
import type { IkeSa } from './ike-sa.js';
import { detectNat, fakeNatHash, natHash } from './natd.js';
import { findKe, findNonce, findSa, notifies, notify } from './payload-find.js';
import type { OpenedMessage } from './protect.js';

const NONCE_LENGTH = 32;
const ZERO_SPI = Buffer.alloc(8);

export class InitFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function natNotifies(sa: IkeSa, spiR: Buffer): Payload[] {
  // With `encapsulation: udp` we announce a NAT that is not there, so that the peer floats to
  // port 4500 and both sides use ESP-in-UDP (strongSwan's `encap = yes` does the same).
  const src = sa.conn.encapsulation === 'udp' ? fakeNatHash() : natHash(sa.spiI, spiR, sa.local);
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, src),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(sa.spiI, spiR, sa.remote)),
  ];
}

function applyNat(sa: IkeSa, ps: Payload[], spiR: Buffer): void {
  const src = notifies(ps, NotifyType.NAT_DETECTION_SOURCE_IP).map((n) => n.data);
  const dst = notifies(ps, NotifyType.NAT_DETECTION_DESTINATION_IP)[0]?.data;
  const r = detectNat(sa.spiI, spiR, sa.local, sa.remote, src, dst);
  if (r) sa.nat = r;
  if (sa.conn.encapsulation === 'udp') sa.nat.local = true;
}

/**
 * Derives SKEYSEED and the SK_* keys (§2.14) and returns a function that arms the SK payload
 * protectors: a responder arms them only after its IKE_SA_INIT response went out in the clear.
 */
function deriveKeys(sa: IkeSa, chosen: Chosen, secret: Buffer): () => void {
  const prf = prfAlg(chosen.prf!);
  const encr = encrAlg(chosen.encr.id, chosen.encr.keyLen);
  const integ = chosen.integ ? integAlg(chosen.integ) : null;
  const keys = deriveIkeKeys(prf, encr, integ, sa.ni, sa.nr, secret, sa.spiI, sa.spiR);
  sa.prf = prf;
  sa.keys = keys;
  const i = new SkProtector(encr, integ, keys.skEi, integ ? keys.skAi : null);
  const r = new SkProtector(encr, integ, keys.skEr, integ ? keys.skAr : null);
  return () => {
    sa.skOut = sa.initiator ? i : r;
    sa.skIn = sa.initiator ? r : i;
  };
}

/** The group our KE carries first: the first group of our first proposal. */
export function preferredGroup(offer: ProposalSpec[]): number {
  for (const p of offer) if (p.dh.length) return p.dh[0]!;
  return 0;
}

/* ---------------------------------------------------------------- initiator */

export function sendInitRequest(sa: IkeSa, onDone: (err?: InitFailure) => void): void {
  sa.ni = randomBytes(NONCE_LENGTH);
  sa.dh = dhGenerate(sa.dhGroup);
  const payloads: Payload[] = [];
  if (sa.cookie) payloads.push(notify(NotifyType.COOKIE, sa.cookie));
  payloads.push(
    {
      type: PayloadType.SA,
      proposals: sa.ikeOffer.map((p, i) => toWireProposal(p, i + 1, ProtocolId.IKE, Buffer.alloc(0))),
    },
    { type: PayloadType.KE, group: sa.dhGroup, data: sa.dh.publicKey },
    { type: PayloadType.NONCE, data: sa.ni },
    ...natNotifies(sa, ZERO_SPI),
  );
  sa.initRequest = sa.request(
    ExchangeType.IKE_SA_INIT,
    payloads,
    (m) => {
      try {
        if (processInitResponse(sa, m) === 'restart') sendInitRequest(sa, onDone);
        else onDone();
      } catch (err) {
        onDone(
          err instanceof InitFailure
            ? err
            : new InitFailure('invalid_response', String((err as Error).message)),
        );
      }
    },
    () => onDone(new InitFailure('timeout', 'no response to IKE_SA_INIT')),
  );
}

/** 'restart' when IKE_SA_INIT must be sent again (INVALID_KE_PAYLOAD or COOKIE). */
function processInitResponse(sa: IkeSa, m: OpenedMessage): 'done' | 'restart' {
  const ps = m.payloads;
  const cookie = notifies(ps, NotifyType.COOKIE)[0];
  if (cookie) {
    if (sa.cookie) throw new InitFailure('cookie', 'peer asked for a cookie twice');
    sa.cookie = cookie.data;
    sa.debug('peer asked for a cookie, sending IKE_SA_INIT again');
    sa.restartInit();
    return 'restart';
  }
  const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
  if (invalidKe) {
    const group = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
    const offered = sa.ikeOffer.some((p) => p.dh.includes(group));
    if (!offered || group === sa.dhGroup) {
      throw new InitFailure('invalid_ke_payload', `peer wants DH group ${group}, which we did not offer`);
    }
    sa.debug(`peer wants DH group ${group} instead of ${sa.dhGroup}, retrying`);
    sa.dhGroup = group;
    sa.restartInit();
    return 'restart';
  }
  const err = ps.find(
    (p) => p.type === PayloadType.NOTIFY && (p as { notifyType: number }).notifyType < 16384,
  );
  if (err) {
    const code = (err as { notifyType: number }).notifyType;
    const name = NotifyType[code] ?? String(code);
    throw new InitFailure(name.toLowerCase(), `peer answered IKE_SA_INIT with ${name}`);
  }
  const saP = findSa(ps);
  const ke = findKe(ps);
  const nonce = findNonce(ps);
  if (!saP || !ke || !nonce)
    throw new InitFailure('invalid_syntax', 'IKE_SA_INIT response lacks SA, KE or Nonce');
  if (saP.proposals.length !== 1)
    throw new InitFailure('invalid_syntax', 'responder returned more than one proposal');
  const chosen = wireToChosen(saP.proposals[0]!);
  if (!checkChosenInOffer(chosen, sa.ikeOffer))
    throw new InitFailure('no_proposal_chosen', 'responder chose a proposal we did not offer');
  if (chosen.dh !== sa.dhGroup || ke.group !== sa.dhGroup)
    throw new InitFailure(
      'invalid_ke_payload',
      `responder KE group ${ke.group} does not match ${sa.dhGroup}`,
    );
  sa.spiR = Buffer.from(m.header.spiR);
  sa.nr = nonce.data;
  sa.chosen = chosen;
  sa.initResponse = sa.lastInbound;
  deriveKeys(sa, chosen, sa.dh!.computeSecret(ke.data))();
  applyNat(sa, ps, sa.spiR);
  // §2.23: the initiator moves to port 4500 once a NAT is known on either side.
  if (sa.nat.local || sa.nat.remote) {
    sa.local = { address: sa.local.address, port: sa.env.ports.natt };
    sa.remote = { address: sa.remote.address, port: sa.env.ports.natt };
  }
  sa.dh = undefined;
  return 'done';
}

/* ---------------------------------------------------------------- responder */

export type InitAnswer =
  | { kind: 'reject'; payloads: Payload[]; reason: string }
  | { kind: 'accept'; payloads: Payload[]; armKeys: () => void };

/**
 * Processes an IKE_SA_INIT request on a fresh responder SA. On 'accept' the SA holds its keys
 * (armed only after the response goes out, which must stay in the clear).
 */
export function processInitRequest(sa: IkeSa, ps: Payload[]): InitAnswer {
  const saP = findSa(ps);
  const ke = findKe(ps);
  const nonce = findNonce(ps);
  if (!saP || !ke || !nonce) {
    return { kind: 'reject', reason: 'invalid_syntax', payloads: [notify(NotifyType.INVALID_SYNTAX)] };
  }
  // Prefer a proposal that works with the KE the initiator already sent (saves a round trip).
  const withKe = sa.ikeOffer.filter((p) => p.dh.includes(ke.group)).map((p) => ({ ...p, dh: [ke.group] }));
  const chosen =
    selectProposal(withKe, saP.proposals, ProtocolId.IKE) ??
    selectProposal(sa.ikeOffer, saP.proposals, ProtocolId.IKE);
  if (!chosen) {
    return {
      kind: 'reject',
      reason: 'no_proposal_chosen',
      payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)],
    };
  }
  if (chosen.dh !== ke.group) {
    const data = Buffer.alloc(2);
    data.writeUInt16BE(chosen.dh ?? 0);
    return {
      kind: 'reject',
      reason: 'invalid_ke_payload',
      payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, data)],
    };
  }
  sa.spiR = randomBytes(8);
  sa.ni = nonce.data;
  sa.nr = randomBytes(NONCE_LENGTH);
  sa.chosen = chosen;
  sa.dhGroup = ke.group;
  const dh = dhGenerate(ke.group);
  const secret = dh.computeSecret(ke.data);
  applyNat(sa, ps, ZERO_SPI);
  const armKeys = deriveKeys(sa, chosen, secret);
  return {
    kind: 'accept',
    armKeys,
    payloads: [
      { type: PayloadType.SA, proposals: [chosenToWire(chosen, ProtocolId.IKE)] },
      { type: PayloadType.KE, group: ke.group, data: dh.publicKey },
      { type: PayloadType.NONCE, data: sa.nr },
      ...natNotifies(sa, sa.spiR),
    ],
  };
}
