/**
 * Aggressive mode with pre-shared keys (RFC 2409 §5.4), both roles, three messages:
 *
 *   I1 SA KE Ni IDii VID            -> (one DH group only: the KE goes with the proposal)
 *   R1 SA KE Nr IDir HASH_R VID NAT-D
 *   I2 *HASH_I NAT-D [N]            -> (encrypted, as strongSwan sends and requires it)
 *
 * Identities travel in the clear, so unlike main mode the responder picks the connection, and
 * with it the PSK, by the initiator's ID. NAT-D can only be sent once both cookies are known:
 * by the responder in its one message, by the initiator in its second (RFC 3947 §3.2); the
 * initiator floats to port 4500 before that second message (§4). RFC 2409 does not mark the
 * third message encrypted; strongSwan encrypts it and accepts it either way, and so do we.
 */
import { IkeError } from '../../errors.js';
import { peerIdentityKey } from '../core/ike-sa.js';
import type { CoreServices } from '../core/protocol.js';
import { identityMatches, identityToString, parseIdentity } from '../identity.js';
import { ExchangeTypeV1, PayloadTypeV1 } from '../wire/v1/constants.js';
import type { PayloadV1 } from '../wire/v1/types.js';
import type { IkeSaV1 } from './ike-sa.js';
import { checkRemoteId, floatOnNat } from './main-mode.js';
import { p1Offer, p1SaPayload } from './p1-proposal.js';
import {
  chooseP1,
  deriveKeys,
  detectNat,
  hashI,
  hashR,
  hasInitialContact,
  initialContact,
  keDh,
  natPayloads,
  ourId,
  peerId,
  takeAnswer,
  takeKeNonce,
  verifyHash,
  vids,
} from './phase1.js';
import { decodePhase1 } from './proposal.js';
import type { InV1 } from './protocol.js';

const AM = ExchangeTypeV1.AGGRESSIVE;
const MODE = 'aggressive mode';

/* ---------------------------------------------------------------- initiator */

export function aggressiveModeStart(sa: IkeSaV1, onTimeout: () => void): void {
  sa.aggressive = true;
  // The offer holds one group (p1Offer with mode aggressive; the config check refuses more).
  sa.p1Offer = p1Offer(sa.conn);
  const group = decodePhase1(sa.p1Offer[0]!)!.group;
  const ps = [p1SaPayload(sa.p1Offer), ...keDh(sa, group), ourId(sa), ...vids(sa)];
  const bytes = sa.encode(AM, 0, ps, false);
  // SAi_b: the SA payload body as sent (HASH_I/HASH_R sign it, §5).
  sa.saiB = sa.rawOut(bytes, PayloadTypeV1.SA);
  sa.step = 2;
  sa.send(0, bytes, { retransmit: true, onTimeout });
}

/** The initiator's side of the responder's message; true once both sides are authenticated. */
export function aggressiveModeInitiator(core: CoreServices, sa: IkeSaV1, m: InV1): boolean {
  if (sa.step !== 2) throw new IkeError('unexpected', `aggressive mode message in step ${sa.step}`);
  sa.settle(0);
  takeAnswer(sa, m, MODE);
  takeKeNonce(sa, m, MODE);
  sameGroup(sa);
  deriveKeys(sa, sa.gxr);
  const { id: peer, body } = peerId(m, MODE);
  checkRemoteId(sa, peer);
  // A wrong PSK shows here first (HASH_R); the responder then never sees our HASH_I.
  verifyHash(m, hashR(sa, body), 'HASH_R', identityToString(peer), MODE);
  sa.peerIdentity = peerIdentityKey(peer);
  detectNat(sa, m.payloads);
  floatOnNat(core, sa);
  const ps: PayloadV1[] = [{ type: PayloadTypeV1.HASH, data: hashI(sa, sa.bodyOf(ourId(sa))) }];
  ps.push(...natPayloads(sa));
  if (core.wantInitialContact(sa)) ps.push(initialContact(sa));
  // The last message: not retransmitted on a timer, only when the responder repeats its own.
  sa.send(0, sa.encode(AM, 0, ps, true), { retransmit: false });
  sa.transition('established', `authenticated '${identityToString(peer)}' with PSK (aggressive mode)`);
  sa.step = 0;
  return true;
}

/* ---------------------------------------------------------------- responder */

/**
 * The responder's side of messages I1 and I2; true once the initiator authenticated.
 * `onTimeout`: our answer to I1 went unanswered (it is retransmitted, since I2 is the last
 * message and the initiator has nothing to repeat).
 */
export function aggressiveModeResponder(
  core: CoreServices,
  sa: IkeSaV1,
  m: InV1,
  onTimeout: () => void,
): boolean {
  if (sa.step === 1) {
    sa.aggressive = true;
    const { id: peer, body } = peerId(m, MODE);
    // The ID is in the clear: it, not the address, picks the connection and so the PSK.
    const conn = sa.candidates.find((c) => identityMatches(parseIdentity(c.remoteId), peer));
    if (!conn)
      throw new IkeError(
        'auth_failed',
        `no aggressive mode connection for peer identity '${identityToString(peer)}'`,
      );
    sa.conn = conn;
    sa.peerIdB = Buffer.from(body);
    const answer = chooseP1(sa, m, MODE);
    takeKeNonce(sa, m, MODE);
    const ke = keDh(sa, sa.p1!.group);
    sameGroup(sa);
    deriveKeys(sa, sa.gxi);
    const mine = ourId(sa);
    const hash: PayloadV1 = { type: PayloadTypeV1.HASH, data: hashR(sa, sa.bodyOf(mine)) };
    const reply = [answer, ...ke, mine, hash, ...vids(sa), ...natPayloads(sa)];
    sa.step = 3;
    sa.send(0, sa.encode(AM, 0, reply, false), { retransmit: true, onTimeout });
    return false;
  }
  if (sa.step === 3) {
    sa.settle(0);
    // IDii_b is the ID payload body: type, protocol, port, then the identity (RFC 2407 §4.6.2).
    const peer = identityToString({ type: sa.peerIdB[0]!, data: sa.peerIdB.subarray(4) });
    verifyHash(m, hashI(sa, sa.peerIdB), 'HASH_I', peer, MODE);
    // INITIAL-CONTACT is scoped by the identity the peer authenticated (ike-core.ts samePeer).
    sa.peerIdentity = peerIdentityKey({ type: sa.peerIdB[0]!, data: sa.peerIdB.subarray(4) });
    // The initiator floated to 4500 before this message and hashed the addresses it used then:
    // take them as the message came (authenticated by HASH_I) before comparing (RFC 3947 §4).
    if (m.d.remote.address === sa.remote.address) {
      sa.local = m.d.local;
      sa.remote = m.d.remote;
    }
    detectNat(sa, m.payloads);
    sa.transition('established', `authenticated '${peer}' with PSK (aggressive mode)`);
    if (hasInitialContact(m.payloads)) core.peerInitialContact(sa, true);
    sa.step = 0;
    return true;
  }
  throw new IkeError('unexpected', `aggressive mode message in step ${sa.step}`);
}

/**
 * Both KE values must be of the chosen group. Public values of one group have one length, so a
 * length mismatch means the initiator's KE is not of the transform it had chosen (RFC 2409 §5.4:
 * the group cannot be negotiated in aggressive mode).
 */
function sameGroup(sa: IkeSaV1): void {
  if (sa.gxi.length !== sa.gxr.length)
    throw new IkeError('invalid_syntax', `KE of ${sa.gxi.length} bytes for a ${sa.gxr.length}-byte group`);
}
