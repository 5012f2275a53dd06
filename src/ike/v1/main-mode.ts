/**
 * Main mode with pre-shared keys (RFC 2409 §5.4), both roles, six messages:
 *
 *   I1 SA VID           -> R1 SA VID              (proposal, NAT-T/DPD vendor IDs)
 *   I2 KE Ni NAT-D      -> R2 KE Nr NAT-D          (DH, nonces, NAT detection RFC 3947)
 *   I3 *ID HASH_I [N]   -> R3 *ID HASH_R           (encrypted: identities and authentication)
 *
 * The PSK is chosen before the peer's identity is known, by the addresses (as strongSwan does):
 * the first candidate connection's key. After I2/R2 a NAT on the path moves both sides to port
 * 4500 (RFC 3947 §4).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { IkeError } from '../../errors.js';
import type { CoreServices } from '../core/protocol.js';
import { dhGenerate } from '../crypto/dh.js';
import { v1CipherAlg, v1PrfAlg } from '../crypto/v1-algs.js';
import { V1Protector } from '../crypto/v1-cbc.js';
import { deriveV1Keys, v1EncryptionKey, v1HashI, v1HashR, v1Phase1Iv } from '../crypto/v1-keys.js';
import { identityMatches, identityToString, parseIdentity } from '../identity.js';
import { parseAddress } from '../wire/ts.js';
import { ExchangeTypeV1, NotifyTypeV1, PayloadTypeV1 } from '../wire/v1/constants.js';
import type { DataPayloadV1, IdPayloadV1, PayloadV1, SaPayloadV1 } from '../wire/v1/types.js';
import { phase1Id, phase1Identity } from './ids.js';
import type { IkeSaV1 } from './ike-sa.js';
import { checkP1, p1Offer, p1SaPayload, selectP1 } from './p1-proposal.js';
import type { InV1 } from './protocol.js';

const MM = ExchangeTypeV1.IDENTITY_PROTECTION;
const NONCE_LENGTH = 32;
/** MD5("RFC 3947") and the RFC 3706 DPD vendor ID, as every implementation sends them. */
export const VID_NATT = Buffer.from('4a131c81070358455c5728f20e95452f', 'hex');
export const VID_DPD = Buffer.from('afcad71368a1f1c96b8696fc77570100', 'hex');

const vids = (): PayloadV1[] => [
  { type: PayloadTypeV1.VID, data: VID_NATT },
  { type: PayloadTypeV1.VID, data: VID_DPD },
];

function learnVids(sa: IkeSaV1, ps: PayloadV1[]): void {
  for (const p of ps) {
    if (p.type !== PayloadTypeV1.VID) continue;
    const data = (p as DataPayloadV1).data;
    if (data.equals(VID_NATT)) sa.peerNatT = true;
    if (data.equals(VID_DPD)) sa.peerDpd = true;
  }
}

const find = <T extends PayloadV1>(ps: PayloadV1[], type: number): T | undefined =>
  ps.find((p) => p.type === type) as T | undefined;

/** RFC 3947 §3.2: HASH(CKY-I | CKY-R | IP | port) with the negotiated hash. */
function natHash(sa: IkeSaV1, address: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return createHash(sa.prf!.hash)
    .update(sa.spiI)
    .update(sa.spiR)
    .update(parseAddress(address))
    .update(p)
    .digest();
}

/** Ours: first the peer's address as we send to it, then ours (faked with `encapsulation: udp`). */
function natPayloads(sa: IkeSaV1): PayloadV1[] {
  if (!sa.peerNatT) return [];
  const local =
    sa.conn.encapsulation === 'udp'
      ? sa.ctx.random.bytes(sa.prf!.outLen)
      : natHash(sa, sa.local.address, sa.local.port);
  return [
    { type: PayloadTypeV1.NAT_D, data: natHash(sa, sa.remote.address, sa.remote.port) },
    { type: PayloadTypeV1.NAT_D, data: local },
  ];
}

function detectNat(sa: IkeSaV1, ps: PayloadV1[]): void {
  const ds = ps.filter(
    (p) => p.type === PayloadTypeV1.NAT_D || p.type === PayloadTypeV1.NAT_D_DRAFT,
  ) as DataPayloadV1[];
  if (ds.length >= 2) {
    sa.nat.local = !ds[0]!.data.equals(natHash(sa, sa.local.address, sa.local.port));
    const them = natHash(sa, sa.remote.address, sa.remote.port);
    sa.nat.remote = !ds.slice(1).some((x) => x.data.equals(them));
  }
  if (sa.conn.encapsulation === 'udp') sa.nat.local = true;
  sa.debug(
    `NAT-D (RFC 3947): NAT local ${sa.nat.local ? 'yes' : 'no'}, remote ${sa.nat.remote ? 'yes' : 'no'}`,
  );
}

function keDh(sa: IkeSaV1): PayloadV1[] {
  const dh = dhGenerate(sa.p1!.group);
  sa.dhPrivate = dh;
  const n = sa.ctx.random.bytes(NONCE_LENGTH);
  if (sa.initiator) {
    sa.gxi = dh.publicKey;
    sa.niB = n;
  } else {
    sa.gxr = dh.publicKey;
    sa.nrB = n;
  }
  return [
    { type: PayloadTypeV1.KE, data: dh.publicKey },
    { type: PayloadTypeV1.NONCE, data: n },
  ];
}

/** SKEYID and friends (§5), the phase 1 key (Appendix B) and the first IV. */
function deriveKeys(sa: IkeSaV1, peerKe: Buffer): void {
  const gxy = sa.dhPrivate!.computeSecret(peerKe);
  sa.dhPrivate = undefined;
  const prf = sa.prf!;
  sa.keys = deriveV1Keys(prf, sa.conn.psk, sa.niB, sa.nrB, gxy, sa.spiI, sa.spiR);
  const cipher = v1CipherAlg(sa.p1!.encr, sa.p1!.keyLen || undefined);
  const key = v1EncryptionKey(prf, sa.keys.skeyidE, cipher.keyLen);
  sa.protector = new V1Protector(cipher, key, prf, v1Phase1Iv(prf, sa.gxi, sa.gxr, cipher.blockLen));
}

function hashI(sa: IkeSaV1, idiiB: Buffer): Buffer {
  return v1HashI(sa.prf!, sa.keys!.skeyid, sa.gxi, sa.gxr, sa.spiI, sa.spiR, sa.saiB, idiiB);
}
function hashR(sa: IkeSaV1, idirB: Buffer): Buffer {
  return v1HashR(sa.prf!, sa.keys!.skeyid, sa.gxi, sa.gxr, sa.spiI, sa.spiR, sa.saiB, idirB);
}

function ourId(sa: IkeSaV1): IdPayloadV1 {
  return { type: PayloadTypeV1.ID, ...phase1Id(sa.conn.localId) } as IdPayloadV1;
}

/* ---------------------------------------------------------------- initiator */

export function mainModeStart(sa: IkeSaV1, onTimeout: () => void): void {
  sa.p1Offer = p1Offer(sa.conn);
  const bytes = sa.encode(MM, 0, [p1SaPayload(sa.p1Offer), ...vids()], false);
  // SAi_b is the SA payload body as sent (HASH_I/HASH_R sign it).
  sa.saiB = sa.rawOut(bytes, PayloadTypeV1.SA);
  sa.step = 2;
  sa.send(0, bytes, { retransmit: true, onTimeout });
}

/** The initiator's side of messages R1-R3; true once authenticated. */
export function mainModeInitiator(core: CoreServices, sa: IkeSaV1, m: InV1, onTimeout: () => void): boolean {
  sa.settle(0);
  if (sa.step === 2) {
    sa.spiR = Buffer.from(m.header.spiR);
    const chosen = checkP1(sa.conn, sa.p1Offer, need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA));
    sa.p1 = chosen;
    sa.prf = v1PrfAlg(chosen.hash);
    learnVids(sa, m.payloads);
    sa.step = 4;
    sa.send(0, sa.encode(MM, 0, [...keDh(sa), ...natPayloads(sa)], false), { retransmit: true, onTimeout });
    return false;
  }
  if (sa.step === 4) {
    sa.gxr = need<DataPayloadV1>(m.payloads, PayloadTypeV1.KE).data;
    sa.nrB = need<DataPayloadV1>(m.payloads, PayloadTypeV1.NONCE).data;
    deriveKeys(sa, sa.gxr);
    detectNat(sa, m.payloads);
    // RFC 3947 §4: with a NAT on the path, main mode goes on from port 4500.
    if (sa.nat.local || sa.nat.remote) {
      sa.local = { address: sa.local.address, port: core.ports.natt };
      sa.remote = { address: sa.remote.address, port: core.ports.natt };
    }
    const id = ourId(sa);
    const idB = sa.bodyOf(id);
    const ps: PayloadV1[] = [id, { type: PayloadTypeV1.HASH, data: hashI(sa, idB) }];
    if (core.wantInitialContact(sa)) ps.push(initialContact(sa));
    sa.step = 6;
    sa.send(0, sa.encode(MM, 0, ps, true), { retransmit: true, onTimeout });
    return false;
  }
  if (sa.step === 6) {
    const id = need<IdPayloadV1>(m.payloads, PayloadTypeV1.ID);
    const idB = m.raw.find((r) => r.type === PayloadTypeV1.ID)!.body;
    const peer = phase1Identity(id);
    if (!identityMatches(parseIdentity(sa.conn.remoteId), peer))
      throw new IkeError(
        'auth_failed',
        `peer identity '${identityToString(peer)}' does not match remoteId '${sa.conn.remoteId}'`,
      );
    if (!equal(need<DataPayloadV1>(m.payloads, PayloadTypeV1.HASH).data, hashR(sa, idB)))
      throw new IkeError('auth_failed', `HASH_R of '${identityToString(peer)}' does not verify with our PSK`);
    sa.transition('established', `authenticated '${identityToString(peer)}' with PSK (main mode)`);
    sa.step = 0;
    return true;
  }
  throw new IkeError('unexpected', `main mode message in step ${sa.step}`);
}

export function initialContact(sa: IkeSaV1): PayloadV1 {
  return {
    type: PayloadTypeV1.N,
    doi: 1,
    protocolId: 1,
    spi: Buffer.concat([sa.spiI, sa.spiR]),
    notifyType: NotifyTypeV1.INITIAL_CONTACT,
    data: Buffer.alloc(0),
  } as PayloadV1;
}

/* ---------------------------------------------------------------- responder */

/** The responder's side of messages I1-I3; true once the initiator authenticated. */
export function mainModeResponder(core: CoreServices, sa: IkeSaV1, m: InV1): boolean {
  if (sa.step === 1) {
    const saP = need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA);
    sa.saiB = m.raw.find((r) => r.type === PayloadTypeV1.SA)!.body;
    const { choice, answer } = selectP1(sa.conn, saP);
    sa.p1 = choice;
    sa.prf = v1PrfAlg(choice.hash);
    learnVids(sa, m.payloads);
    sa.step = 3;
    sa.send(0, sa.encode(MM, 0, [answer, ...vids()], false), { retransmit: false });
    return false;
  }
  if (sa.step === 3) {
    sa.gxi = need<DataPayloadV1>(m.payloads, PayloadTypeV1.KE).data;
    sa.niB = need<DataPayloadV1>(m.payloads, PayloadTypeV1.NONCE).data;
    const out = keDh(sa);
    detectNat(sa, m.payloads);
    deriveKeys(sa, sa.gxi);
    sa.step = 5;
    sa.send(0, sa.encode(MM, 0, [...out, ...natPayloads(sa)], false), { retransmit: false });
    return false;
  }
  if (sa.step === 5) {
    const id = need<IdPayloadV1>(m.payloads, PayloadTypeV1.ID);
    const idB = m.raw.find((r) => r.type === PayloadTypeV1.ID)!.body;
    const peer = phase1Identity(id);
    // The key was chosen by addresses; the identity now picks among the candidates that share it.
    const conn = sa.candidates.find(
      (c) => identityMatches(parseIdentity(c.remoteId), peer) && c.psk.equals(sa.conn.psk),
    );
    if (!conn)
      throw new IkeError('auth_failed', `no connection for peer identity '${identityToString(peer)}'`);
    if (!equal(need<DataPayloadV1>(m.payloads, PayloadTypeV1.HASH).data, hashI(sa, idB)))
      throw new IkeError('auth_failed', `HASH_I of '${identityToString(peer)}' does not verify with our PSK`);
    sa.conn = conn;
    const mine = ourId(sa);
    const reply = [mine, { type: PayloadTypeV1.HASH, data: hashR(sa, sa.bodyOf(mine)) } as PayloadV1];
    sa.send(0, sa.encode(MM, 0, reply, true), { retransmit: false });
    sa.transition('established', `authenticated '${identityToString(peer)}' with PSK (main mode)`);
    if (
      m.payloads.some(
        (p) =>
          p.type === PayloadTypeV1.N &&
          (p as { notifyType: number }).notifyType === NotifyTypeV1.INITIAL_CONTACT,
      )
    )
      core.peerInitialContact(sa);
    sa.step = 0;
    return true;
  }
  throw new IkeError('unexpected', `main mode message in step ${sa.step}`);
}

function need<T extends PayloadV1>(ps: PayloadV1[], type: number): T {
  const p = find<T>(ps, type);
  if (!p)
    throw new IkeError('invalid_syntax', `main mode message without ${PayloadTypeV1[type] ?? type} payload`);
  return p;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
