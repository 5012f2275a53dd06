/**
 * Main mode with pre-shared keys (RFC 2409 §5.4), both roles, six messages:
 *
 *   I1 SA VID           -> R1 SA VID              (proposal, NAT-T/DPD vendor IDs)
 *   I2 KE Ni NAT-D      -> R2 KE Nr NAT-D          (DH, nonces, NAT detection RFC 3947)
 *   I3 *ID HASH_I [N]   -> R3 *ID HASH_R           (encrypted: identities and authentication)
 *
 * The PSK is chosen before the peer's identity is known, by the addresses (as strongSwan does):
 * the first candidate connection's key. After I2/R2 a NAT on the path moves both sides to port
 * 4500 (RFC 3947 §4). The pieces shared with aggressive mode are in phase1.ts.
 */
import { IkeError } from '../../errors.js';
import { peerIdentityKey } from '../core/ike-sa.js';
import type { CoreServices } from '../core/protocol.js';
import { identityMatches, identityToString, parseIdentity } from '../identity.js';
import { ExchangeTypeV1, PayloadTypeV1 } from '../wire/v1/constants.js';
import type { PayloadV1 } from '../wire/v1/types.js';
import type { IkeSaV1 } from './ike-sa.js';
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
import type { InV1 } from './protocol.js';

const MM = ExchangeTypeV1.IDENTITY_PROTECTION;
const MODE = 'main mode';

/* ---------------------------------------------------------------- initiator */

export function mainModeStart(sa: IkeSaV1, onTimeout: () => void): void {
  sa.p1Offer = p1Offer(sa.conn);
  const bytes = sa.encode(MM, 0, [p1SaPayload(sa.p1Offer), ...vids(sa)], false);
  // SAi_b is the SA payload body as sent (HASH_I/HASH_R sign it).
  sa.saiB = sa.rawOut(bytes, PayloadTypeV1.SA);
  sa.step = 2;
  sa.send(0, bytes, { retransmit: true, onTimeout });
}

/** The initiator's side of messages R1-R3; true once authenticated. */
export function mainModeInitiator(core: CoreServices, sa: IkeSaV1, m: InV1, onTimeout: () => void): boolean {
  sa.settle(0);
  if (sa.step === 2) {
    const chosen = takeAnswer(sa, m, MODE);
    sa.step = 4;
    const out = [...keDh(sa, chosen.group), ...natPayloads(sa)];
    sa.send(0, sa.encode(MM, 0, out, false), { retransmit: true, onTimeout });
    return false;
  }
  if (sa.step === 4) {
    takeKeNonce(sa, m, MODE);
    deriveKeys(sa, sa.gxr);
    detectNat(sa, m.payloads);
    floatOnNat(core, sa);
    const id = ourId(sa);
    const ps: PayloadV1[] = [id, { type: PayloadTypeV1.HASH, data: hashI(sa, sa.bodyOf(id)) }];
    if (core.wantInitialContact(sa)) ps.push(initialContact(sa));
    sa.step = 6;
    sa.send(0, sa.encode(MM, 0, ps, true), { retransmit: true, onTimeout });
    return false;
  }
  if (sa.step === 6) {
    const { id: peer, body } = peerId(m, MODE);
    checkRemoteId(sa, peer);
    verifyHash(m, hashR(sa, body), 'HASH_R', identityToString(peer), MODE);
    sa.peerIdentity = peerIdentityKey(peer);
    sa.transition('established', `authenticated '${identityToString(peer)}' with PSK (main mode)`);
    sa.step = 0;
    return true;
  }
  throw new IkeError('unexpected', `main mode message in step ${sa.step}`);
}

/** RFC 3947 §4: with a NAT on the path, phase 1 goes on from port 4500 (both sides). */
export function floatOnNat(core: CoreServices, sa: IkeSaV1): void {
  if (!sa.nat.local && !sa.nat.remote) return;
  sa.local = { address: sa.local.address, port: core.ports.natt };
  sa.remote = { address: sa.remote.address, port: core.ports.natt };
}

/** The initiator's check of the responder's ID against the configured remoteId. */
export function checkRemoteId(sa: IkeSaV1, peer: ReturnType<typeof parseIdentity>): void {
  if (!identityMatches(parseIdentity(sa.conn.remoteId), peer))
    throw new IkeError(
      'auth_failed',
      `peer identity '${identityToString(peer)}' does not match remoteId '${sa.conn.remoteId}'`,
    );
}

/* ---------------------------------------------------------------- responder */

/** The responder's side of messages I1-I3; true once the initiator authenticated. */
export function mainModeResponder(core: CoreServices, sa: IkeSaV1, m: InV1): boolean {
  if (sa.step === 1) {
    const answer = chooseP1(sa, m, MODE);
    sa.step = 3;
    sa.send(0, sa.encode(MM, 0, [answer, ...vids(sa)], false), { retransmit: false });
    return false;
  }
  if (sa.step === 3) {
    takeKeNonce(sa, m, MODE);
    const out = keDh(sa, sa.p1!.group);
    detectNat(sa, m.payloads);
    deriveKeys(sa, sa.gxi);
    sa.step = 5;
    sa.send(0, sa.encode(MM, 0, [...out, ...natPayloads(sa)], false), { retransmit: false });
    return false;
  }
  if (sa.step === 5) {
    const { id: peer, body } = peerId(m, MODE);
    // The key was chosen by addresses; the identity now picks among the candidates that share it.
    const conn = sa.candidates.find(
      (c) => identityMatches(parseIdentity(c.remoteId), peer) && c.psk.equals(sa.conn.psk),
    );
    if (!conn)
      throw new IkeError('auth_failed', `no connection for peer identity '${identityToString(peer)}'`);
    verifyHash(m, hashI(sa, body), 'HASH_I', identityToString(peer), MODE);
    sa.conn = conn;
    // INITIAL-CONTACT is scoped by the identity the peer authenticated (ike-core.ts samePeer).
    sa.peerIdentity = peerIdentityKey(peer);
    const mine = ourId(sa);
    const reply = [mine, { type: PayloadTypeV1.HASH, data: hashR(sa, sa.bodyOf(mine)) } as PayloadV1];
    sa.send(0, sa.encode(MM, 0, reply, true), { retransmit: false });
    sa.transition('established', `authenticated '${identityToString(peer)}' with PSK (main mode)`);
    if (hasInitialContact(m.payloads)) core.peerInitialContact(sa, true);
    sa.step = 0;
    return true;
  }
  throw new IkeError('unexpected', `main mode message in step ${sa.step}`);
}
