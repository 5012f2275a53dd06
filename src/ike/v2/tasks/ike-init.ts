/**
 * IKE_SA_INIT (RFC 7296 §1.2): proposals, Diffie-Hellman, nonces, NAT detection (§2.23), and the
 * two ways the initiator sends it again: INVALID_KE_PAYLOAD (the group the responder wants, §1.2)
 * and COOKIE (§2.6).
 */
import { IkeError } from '../../../errors.js';
import { newIkeSpi } from '../../core/ike-sa.js';
import { dhGenerate } from '../../crypto/dh.js';
import { encrAlg } from '../../crypto/encr.js';
import { integAlg } from '../../crypto/integ.js';
import { deriveIkeKeys } from '../../crypto/keys.js';
import { prfAlg } from '../../crypto/prf.js';
import { SkProtector } from '../../crypto/sk.js';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  type ProposalSpec,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../../proposal.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/constants.js';
import type { NotifyPayload, Payload } from '../../wire/types.js';
import { notifyReason, peerRefused } from '../errors.js';
import type { IkeSaV2 } from '../ike-sa.js';
import { nonceTooShort } from '../nonce.js';
import { findKe, findNonce, findSa, firstError, notifies, notify } from '../payload-find.js';
import type { OpenedMessage } from '../protect.js';
import { AGAIN, type Task } from '../task.js';
import { detectNat, fakeNatHash, natHash } from './natd.js';

export const NONCE_LENGTH = 32;
const ZERO_SPI = Buffer.alloc(8);

function natNotifies(sa: IkeSaV2, spiR: Buffer): Payload[] {
  // With `encapsulation: udp` we announce a NAT that is not there, so that the peer floats to
  // port 4500 and both sides use ESP-in-UDP (strongSwan's `encap = yes` does the same).
  const src = sa.conn.encapsulation === 'udp' ? fakeNatHash() : natHash(sa.spiI, spiR, sa.local);
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, src),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(sa.spiI, spiR, sa.remote)),
  ];
}

function applyNat(sa: IkeSaV2, ps: Payload[], spiR: Buffer): void {
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
function deriveKeys(sa: IkeSaV2, chosen: Chosen, secret: Buffer): () => void {
  const prf = prfAlg(chosen.prf!);
  const encr = encrAlg(chosen.encr.id, chosen.encr.keyLen);
  const integ = chosen.integ ? integAlg(chosen.integ) : null;
  const keys = deriveIkeKeys(prf, encr, integ, sa.ni, sa.nr, secret, sa.spiI, sa.spiR);
  // g^ir and SKEYSEED are needed for nothing else (§2.14): wiped (security issue #11).
  secret.fill(0);
  keys.skeyseed.fill(0);
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

/**
 * How often one IKE_SA_INIT may be sent anew on the responder's word (COOKIE and
 * INVALID_KE_PAYLOAD together): strongSwan's MAX_RETRIES. Those answers are unauthenticated, so
 * whoever sees our request could otherwise keep us re-sending it.
 */
export const MAX_INIT_RETRIES = 5;
/** §3.10.1: COOKIE data is 1 to 64 octets. */
const MAX_COOKIE = 64;

export class IkeInitTask implements Task<undefined> {
  readonly name = 'ike-init';
  readonly exchange = ExchangeType.IKE_SA_INIT;
  readonly #sa: IkeSaV2;
  /** COOKIE and INVALID_KE_PAYLOAD retries so far (MAX_INIT_RETRIES). */
  #retries = 0;
  /** §1.3: the responder names its group once; a second INVALID_KE_PAYLOAD is not followed. */
  #keRetried = false;
  /** The group of the KE we hold (a new one only after INVALID_KE_PAYLOAD). */
  #dhGroup = 0;
  /** The last error notify ignored as unauthenticated: it names the failure if no valid answer comes. */
  #ignored: NotifyPayload | undefined;

  constructor(sa: IkeSaV2) {
    this.#sa = sa;
  }

  build(): Payload[] {
    const sa = this.#sa;
    // §2.6: the request repeated with a cookie carries "all other payloads unchanged": the cookie
    // covers Ni, so the nonce (and the KE, unless INVALID_KE_PAYLOAD changed the group) stays.
    if (!sa.ni.length) sa.ni = sa.ctx.random.bytes(NONCE_LENGTH);
    if (!sa.dh || this.#dhGroup !== sa.dhGroup) {
      sa.dh = dhGenerate(sa.dhGroup);
      this.#dhGroup = sa.dhGroup;
    }
    const payloads: Payload[] = [];
    // §2.6: the COOKIE is the first payload.
    if (sa.cookie) payloads.push(notify(NotifyType.COOKIE, sa.cookie));
    payloads.push(
      {
        type: PayloadType.SA,
        proposals: sa.ikeOffer.map((p, i) => toWireProposal(p, i + 1, ProtocolId.IKE, Buffer.alloc(0))),
      },
      { type: PayloadType.KE, group: sa.dhGroup, data: sa.dh!.publicKey },
      { type: PayloadType.NONCE, data: sa.ni },
      ...natNotifies(sa, ZERO_SPI),
    );
    return payloads;
  }

  sent(bytes: Buffer): void {
    this.#sa.initRequest = bytes;
  }

  /**
   * The IKE_SA_INIT response is not authenticated (§2.21.1: "the recipient should continue trying
   * for some time before giving up ... should not immediately act based on the error
   * notification unless corrective actions are defined"). What we may not act on is ignored: the
   * request stays outstanding and is retransmitted, and a valid answer may still come.
   * NO_PROPOSAL_CHOSEN still ends the attempt at once (a configuration mismatch, reported as such).
   */
  screen(m: OpenedMessage): string | undefined {
    const sa = this.#sa;
    const ps = m.payloads;
    const cookie = notifies(ps, NotifyType.COOKIE)[0];
    if (cookie) {
      // strongSwan ignores a COOKIE equal to the one it sent: the answer to an earlier copy.
      if (sa.cookie?.equals(cookie.data)) return 'a COOKIE we already sent';
      if (cookie.data.length < 1 || cookie.data.length > MAX_COOKIE)
        return `a COOKIE of ${cookie.data.length} octets`;
      if (this.#retries >= MAX_INIT_RETRIES) return `COOKIE after ${this.#retries} retries`;
      return undefined;
    }
    const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
    if (invalidKe) {
      const group = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      // §1.3: the group must be one of the offered ones, and a peer that named its group has no
      // reason to name another: a second one (or one we did not offer) would let whoever sees our
      // request ping-pong us between groups or pick one for us.
      if (this.#keRetried) return `a second INVALID_KE_PAYLOAD (group ${group})`;
      if (!sa.ikeOffer.some((p) => p.dh.includes(group)))
        return `INVALID_KE_PAYLOAD for DH group ${group}, which we did not offer`;
      if (group === sa.dhGroup) return `INVALID_KE_PAYLOAD for DH group ${group}, the one we sent`;
      if (this.#retries >= MAX_INIT_RETRIES) return `INVALID_KE_PAYLOAD after ${this.#retries} retries`;
      return undefined;
    }
    const err = firstError(ps);
    if (err && err.notifyType !== NotifyType.NO_PROPOSAL_CHOSEN) {
      this.#ignored = err;
      return `unauthenticated ${NotifyType[err.notifyType] ?? `notify ${err.notifyType}`}`;
    }
    // An answer to a request sent before INVALID_KE_PAYLOAD changed our group (same message ID 0).
    const ke = findKe(ps);
    if (!err && ke && ke.group !== sa.dhGroup) return `a KE of group ${ke.group}, not ${sa.dhGroup}`;
    return undefined;
  }

  /** The retransmissions ended without a valid answer: name an ignored error notify, if any. */
  timedOut(): IkeError | undefined {
    const n = this.#ignored;
    if (!n) return undefined;
    const name = NotifyType[n.notifyType] ?? `notify ${n.notifyType}`;
    return new IkeError(
      notifyReason(n),
      `no valid answer to IKE_SA_INIT; ignored the unauthenticated ${name}`,
    );
  }

  process(m: OpenedMessage): undefined | typeof AGAIN {
    const sa = this.#sa;
    const ps = m.payloads;
    const cookie = notifies(ps, NotifyType.COOKIE)[0];
    if (cookie) {
      sa.cookie = cookie.data;
      this.#retries++;
      sa.debug('peer asked for a cookie, sending IKE_SA_INIT again');
      sa.restartInit();
      return AGAIN;
    }
    const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
    if (invalidKe) {
      const group = invalidKe.data.readUInt16BE(0);
      sa.debug(`peer wants DH group ${group} instead of ${sa.dhGroup}, retrying`);
      this.#keRetried = true;
      this.#retries++;
      sa.dhGroup = group;
      sa.restartInit();
      return AGAIN;
    }
    const err = firstError(ps);
    if (err) throw peerRefused(err, 'peer answered IKE_SA_INIT with');
    const saP = findSa(ps);
    const ke = findKe(ps);
    const nonce = findNonce(ps);
    if (!saP || !ke || !nonce)
      throw new IkeError('invalid_syntax', 'IKE_SA_INIT response lacks SA, KE or Nonce');
    if (saP.proposals.length !== 1)
      throw new IkeError('invalid_syntax', 'responder returned more than one proposal');
    const chosen = wireToChosen(saP.proposals[0]!);
    if (!checkChosenInOffer(chosen, sa.ikeOffer))
      throw new IkeError('no_proposal_chosen', 'responder chose a proposal we did not offer');
    if (chosen.dh !== sa.dhGroup || ke.group !== sa.dhGroup)
      throw new IkeError('invalid_ke_payload', `responder KE group ${ke.group} does not match ${sa.dhGroup}`);
    const short = nonceTooShort(nonce.data, prfAlg(chosen.prf!));
    if (short) throw new IkeError('invalid_syntax', `IKE_SA_INIT response: ${short}`);
    sa.spiR = Buffer.from(m.header.spiR);
    sa.nr = nonce.data;
    sa.chosen = chosen;
    sa.initResponse = sa.lastInbound;
    deriveKeys(sa, chosen, sa.dh!.computeSecret(ke.data))();
    applyNat(sa, ps, sa.spiR);
    // §2.23: the initiator moves to port 4500 once a NAT is known on either side.
    if (sa.nat.local || sa.nat.remote) {
      sa.local = { address: sa.local.address, port: sa.ctx.ports.natt };
      sa.remote = { address: sa.remote.address, port: sa.ctx.ports.natt };
    }
    sa.dh = undefined;
    return undefined;
  }
}

/* ---------------------------------------------------------------- responder */

export type InitAnswer =
  | { kind: 'reject'; payloads: Payload[]; reason: string }
  | { kind: 'accept'; payloads: Payload[]; armKeys: () => void };

/**
 * Processes an IKE_SA_INIT request on a fresh responder SA. On 'accept' the SA holds its keys
 * (armed only after the response goes out, which must stay in the clear).
 */
export function respondIkeInit(sa: IkeSaV2, ps: Payload[]): InitAnswer {
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
  const short = nonceTooShort(nonce.data, prfAlg(chosen.prf!));
  if (short) {
    return { kind: 'reject', reason: 'invalid_syntax', payloads: [notify(NotifyType.INVALID_SYNTAX)] };
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
  sa.spiR = newIkeSpi(sa.ctx);
  sa.ni = nonce.data;
  sa.nr = sa.ctx.random.bytes(NONCE_LENGTH);
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
