/**
 * Phase 1 pieces that main mode and aggressive mode share (RFC 2409 §5): vendor IDs, NAT
 * detection (RFC 3947 and its drafts), KE/nonce, SKEYID and the first IV, HASH_I/HASH_R, our ID.
 * The two modes differ only in which message carries what.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { IkeError } from '../../errors.js';
import { dhGenerate } from '../crypto/dh.js';
import { v1CipherAlg, v1PrfAlg } from '../crypto/v1-algs.js';
import { V1Protector } from '../crypto/v1-cbc.js';
import { deriveV1Keys, v1EncryptionKey, v1HashI, v1HashR, v1Phase1Iv } from '../crypto/v1-keys.js';
import { parseAddress } from '../wire/ts.js';
import { NotifyTypeV1, PayloadTypeV1 } from '../wire/v1/constants.js';
import type { DataPayloadV1, IdPayloadV1, PayloadV1, SaPayloadV1 } from '../wire/v1/types.js';
import { phase1Id, phase1Identity } from './ids.js';
import type { IkeSaV1 } from './ike-sa.js';
import { checkP1, type P1Choice, selectP1 } from './p1-proposal.js';
import type { InV1 } from './protocol.js';

const NONCE_LENGTH = 32;

/* Vendor IDs: specification values (MD5 of the document names), strongSwan's order of preference. */
/** MD5("RFC 3947"). */
export const VID_NATT = Buffer.from('4a131c81070358455c5728f20e95452f', 'hex');
/** MD5("draft-ietf-ipsec-nat-t-ike-03"). */
export const VID_NATT_03 = Buffer.from('7d9419a65310ca6f2c179d9215529d56', 'hex');
/** MD5("draft-ietf-ipsec-nat-t-ike-02"). */
export const VID_NATT_02 = Buffer.from('cd60464335df21f87cfdb2fc68b6a448', 'hex');
/** MD5("draft-ietf-ipsec-nat-t-ike-02\n"): the -02 draft's own typo, sent by many implementations. */
export const VID_NATT_02N = Buffer.from('90cb80913ebb696e086381b5ec427b1f', 'hex');
/** RFC 3706 §5 DPD. */
export const VID_DPD = Buffer.from('afcad71368a1f1c96b8696fc77570100', 'hex');

/** The NAT-T versions we understand, best first (RFC 3947 before the drafts that preceded it). */
const NATT_VIDS = [VID_NATT, VID_NATT_03, VID_NATT_02, VID_NATT_02N];
/**
 * What an initiator announces: RFC 3947 and the -02\n draft, exactly strongSwan's set (its
 * isakmp_vendor.c marks only these two "send"); -02 and -03 are recognised when received.
 */
const NATT_SENT = [VID_NATT, VID_NATT_02N];

const vid = (data: Buffer): PayloadV1 => ({ type: PayloadTypeV1.VID, data }) as PayloadV1;

/**
 * Our vendor IDs. The initiator offers its NAT-T versions; the responder answers with the one
 * version it chose from the initiator's (as strongSwan does), or none.
 */
export function vids(sa: IkeSaV1): PayloadV1[] {
  const natt = sa.initiator ? NATT_SENT : sa.peerNatT ? [NATT_VIDS[sa.nattVersion]!] : [];
  return [...natt.map(vid), vid(VID_DPD)];
}

/** Reads the peer's vendor IDs: NAT-T (the best version both know) and DPD. */
export function learnVids(sa: IkeSaV1, ps: PayloadV1[]): void {
  let best = -1;
  for (const p of ps) {
    if (p.type !== PayloadTypeV1.VID) continue;
    const data = (p as DataPayloadV1).data;
    const i = NATT_VIDS.findIndex((v) => v.equals(data));
    if (i >= 0 && (best < 0 || i < best)) best = i;
    if (data.equals(VID_DPD)) sa.peerDpd = true;
  }
  // The initiator learns from the answer only versions it offered; anything else is ignored.
  if (best >= 0 && (!sa.initiator || NATT_SENT.includes(NATT_VIDS[best]!))) {
    sa.peerNatT = true;
    sa.nattVersion = best;
  }
}

/**
 * NAT-D payload type: 20 (RFC 3947 §3.2) once both sides speak the RFC, else the drafts' private
 * number 130 (NAT-OA likewise 21 / 131).
 */
export const natDType = (sa: IkeSaV1): number =>
  sa.nattVersion === 0 ? PayloadTypeV1.NAT_D : PayloadTypeV1.NAT_D_DRAFT;

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
export function natPayloads(sa: IkeSaV1): PayloadV1[] {
  if (!sa.peerNatT) return [];
  const local =
    sa.conn.encapsulation === 'udp'
      ? sa.ctx.random.bytes(sa.prf!.outLen)
      : natHash(sa, sa.local.address, sa.local.port);
  const type = natDType(sa);
  return [
    { type, data: natHash(sa, sa.remote.address, sa.remote.port) },
    { type, data: local },
  ] as PayloadV1[];
}

/** RFC 3947 §3.2: the first NAT-D is the address the peer sent to (us), the rest its own. */
export function detectNat(sa: IkeSaV1, ps: PayloadV1[]): void {
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

/** Initiator: the responder's cookie, its SA answer (one of our transforms), the prf, its vendor IDs. */
export function takeAnswer(sa: IkeSaV1, m: InV1, mode: string): P1Choice {
  sa.spiR = Buffer.from(m.header.spiR);
  const chosen = checkP1(sa.conn, sa.p1Offer, need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA, mode));
  sa.p1 = chosen;
  sa.prf = v1PrfAlg(chosen.hash);
  learnVids(sa, m.payloads);
  return chosen;
}

/** Responder: SAi_b, our choice of the initiator's transforms, the prf, its vendor IDs; the answer. */
export function chooseP1(sa: IkeSaV1, m: InV1, mode: string): SaPayloadV1 {
  const offer = need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA, mode);
  sa.saiB = m.raw.find((r) => r.type === PayloadTypeV1.SA)!.body;
  const { choice, answer } = selectP1(sa.conn, offer);
  sa.p1 = choice;
  sa.prf = v1PrfAlg(choice.hash);
  learnVids(sa, m.payloads);
  return answer;
}

/** The peer's KE and nonce: g^xi and Ni from the initiator, g^xr and Nr from the responder. */
export function takeKeNonce(sa: IkeSaV1, m: InV1, mode: string): void {
  const ke = need<DataPayloadV1>(m.payloads, PayloadTypeV1.KE, mode).data;
  const nonce = need<DataPayloadV1>(m.payloads, PayloadTypeV1.NONCE, mode).data;
  if (sa.initiator) {
    sa.gxr = ke;
    sa.nrB = nonce;
  } else {
    sa.gxi = ke;
    sa.niB = nonce;
  }
}

/** Our KE (a fresh key pair of `group`) and nonce. */
export function keDh(sa: IkeSaV1, group: number): PayloadV1[] {
  const dh = dhGenerate(group);
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
export function deriveKeys(sa: IkeSaV1, peerKe: Buffer): void {
  const gxy = sa.dhPrivate!.computeSecret(peerKe);
  sa.dhPrivate = undefined;
  const prf = sa.prf!;
  sa.keys = deriveV1Keys(prf, sa.conn.psk, sa.niB, sa.nrB, gxy, sa.spiI, sa.spiR);
  const cipher = v1CipherAlg(sa.p1!.encr, sa.p1!.keyLen || undefined);
  const key = v1EncryptionKey(prf, sa.keys.skeyidE, cipher.keyLen);
  sa.protector = new V1Protector(cipher, key, prf, v1Phase1Iv(prf, sa.gxi, sa.gxr, cipher.blockLen));
}

export function hashI(sa: IkeSaV1, idiiB: Buffer): Buffer {
  return v1HashI(sa.prf!, sa.keys!.skeyid, sa.gxi, sa.gxr, sa.spiI, sa.spiR, sa.saiB, idiiB);
}
export function hashR(sa: IkeSaV1, idirB: Buffer): Buffer {
  return v1HashR(sa.prf!, sa.keys!.skeyid, sa.gxi, sa.gxr, sa.spiI, sa.spiR, sa.saiB, idirB);
}

export function ourId(sa: IkeSaV1): IdPayloadV1 {
  return { type: PayloadTypeV1.ID, ...phase1Id(sa.conn.localId) } as IdPayloadV1;
}

/** The peer's ID payload: the identity and its body as on the wire (IDii_b/IDir_b). */
export function peerId(m: InV1, mode: string): { id: ReturnType<typeof phase1Identity>; body: Buffer } {
  const id = need<IdPayloadV1>(m.payloads, PayloadTypeV1.ID, mode);
  return { id: phase1Identity(id), body: m.raw.find((r) => r.type === PayloadTypeV1.ID)!.body };
}

/** Checks the peer's HASH_I or HASH_R in constant time; a mismatch is a PSK mismatch. */
export function verifyHash(m: InV1, expected: Buffer, what: string, peer: string, mode: string): void {
  const got = need<DataPayloadV1>(m.payloads, PayloadTypeV1.HASH, mode).data;
  if (!(got.length === expected.length && timingSafeEqual(got, expected)))
    throw new IkeError('auth_failed', `${what} of '${peer}' does not verify with our PSK`);
  m.authentic();
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

export const hasInitialContact = (ps: PayloadV1[]): boolean =>
  ps.some(
    (p) =>
      p.type === PayloadTypeV1.N && (p as { notifyType: number }).notifyType === NotifyTypeV1.INITIAL_CONTACT,
  );

export function need<T extends PayloadV1>(ps: PayloadV1[], type: number, mode: string): T {
  const p = ps.find((x) => x.type === type) as T | undefined;
  if (!p)
    throw new IkeError('invalid_syntax', `${mode} message without ${PayloadTypeV1[type] ?? type} payload`);
  return p;
}
