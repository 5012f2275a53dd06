/**
 * Informational exchanges after phase 1 (RFC 2408 §4.8, RFC 2409 §5.7): one protected message,
 * HASH(1) = prf(SKEYID_a, M-ID | N/D), no answer. They carry DELETE of the ISAKMP SA or of IPsec
 * SAs, INITIAL-CONTACT, and dead peer detection (RFC 3706: R-U-THERE, answered R-U-THERE-ACK with
 * the same sequence number).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import type { CoreServices } from '../core/protocol.js';
import { v1InfoHash } from '../crypto/v1-keys.js';
import { spiBuffer } from '../v2/tasks/child-create.js';
import {
  DOI_IPSEC,
  ExchangeTypeV1,
  NotifyTypeV1,
  PayloadTypeV1,
  ProtocolIdV1,
} from '../wire/v1/constants.js';
import { encodePayloadsV1 } from '../wire/v1/payloads.js';
import type { DeletePayloadV1, NotifyPayloadV1, PayloadV1 } from '../wire/v1/types.js';
import type { IkeSaV1 } from './ike-sa.js';
import type { InV1 } from './protocol.js';

const INFO = ExchangeTypeV1.INFORMATIONAL;

/** Sends one protected informational message carrying `ps` (a fresh message ID each). */
export function sendInformational(sa: IkeSaV1, ps: PayloadV1[], to?: Endpoint): void {
  let mid = 0;
  while (mid === 0) mid = sa.ctx.random.bytes(4).readUInt32BE(0);
  const rest = encodePayloadsV1(ps).bytes;
  const hash: PayloadV1 = {
    type: PayloadTypeV1.HASH,
    data: v1InfoHash(sa.prf!, sa.keys!.skeyidA, mid, rest),
  } as PayloadV1;
  sa.send(mid, sa.encode(INFO, mid, [hash, ...ps], true), { retransmit: false, to });
  sa.forget(mid);
}

export function deleteIsakmp(sa: IkeSaV1): PayloadV1 {
  return {
    type: PayloadTypeV1.D,
    doi: DOI_IPSEC,
    protocolId: ProtocolIdV1.ISAKMP,
    spiSize: 16,
    spis: [Buffer.concat([sa.spiI, sa.spiR])],
  } as PayloadV1;
}

export function deleteEsp(spisIn: number[]): PayloadV1 {
  return {
    type: PayloadTypeV1.D,
    doi: DOI_IPSEC,
    protocolId: ProtocolIdV1.IPSEC_ESP,
    spiSize: 4,
    spis: spisIn.map(spiBuffer),
  } as PayloadV1;
}

/** RFC 3706 §7: R-U-THERE / R-U-THERE-ACK carry the ISAKMP cookies as SPI and a sequence number. */
export function dpdNotify(sa: IkeSaV1, type: number, seq: number): PayloadV1 {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(seq >>> 0);
  return {
    type: PayloadTypeV1.N,
    doi: DOI_IPSEC,
    protocolId: ProtocolIdV1.ISAKMP,
    spi: Buffer.concat([sa.spiI, sa.spiR]),
    notifyType: type,
    data,
  } as PayloadV1;
}

/** What an informational message asked of us; HASH(1) failures are dropped by the caller. */
export function informationalInput(
  core: CoreServices,
  sa: IkeSaV1,
  m: InV1,
  dpdAck: (seq: number) => void,
): void {
  const [first, ...rest] = m.raw;
  if (first?.type !== PayloadTypeV1.HASH)
    throw new IkeError('invalid_hash_information', 'informational message without HASH(1)');
  const want = v1InfoHash(
    sa.prf!,
    sa.keys!.skeyidA,
    m.header.messageId,
    Buffer.concat(rest.map((r) => r.raw)),
  );
  if (first.body.length !== want.length || !timingSafeEqual(first.body, want))
    throw new IkeError('invalid_hash_information', 'informational HASH(1) does not verify');
  sa.protector!.confirm(m.header.messageId);
  m.authentic();
  sa.forget(m.header.messageId);
  for (const p of m.payloads) {
    if (p.type === PayloadTypeV1.D) {
      const d = p as DeletePayloadV1;
      if (d.protocolId === ProtocolIdV1.ISAKMP) {
        // IPsec SAs do not depend on the ISAKMP SA that negotiated them (RFC 2409 ties no phase 2
        // SA to its phase 1 SA). A peer that re-authenticated (strongSwan: a new main mode, then
        // DELETE of the old ISAKMP SA alone) keeps using them and later DELETEs them on the new SA:
        // they move to the newest other ISAKMP SA with that peer instead of going down here.
        const heir = siblings(core, sa)
          .filter((o) => o.phase === 'established')
          .at(-1);
        if (heir) {
          sa.debug(`deleted by the peer; its ${sa.children.length} IPsec SA(s) move to #${heir.serial}`);
          sa.moveChildrenTo(heir);
          for (const c of heir.children) core.table.setChildOwner(c.spiIn, heir);
        }
        core.destroy(sa, 'deleted by peer');
        return;
      }
      if (d.protocolId !== ProtocolIdV1.IPSEC_ESP || d.spiSize !== 4) continue;
      for (const spi of d.spis) {
        // The peer names its inbound SPI: our outbound one, negotiated on this or (before a
        // re-authentication) on another ISAKMP SA with the peer.
        const out = spi.readUInt32BE(0);
        const owner = [sa, ...siblings(core, sa)].find((o) => o.childByOut(out));
        const child = owner?.childByOut(out);
        if (owner && child) core.removeChild(owner, child.spiIn, 'deleted by peer');
      }
    }
    if (p.type === PayloadTypeV1.N) {
      const n = p as NotifyPayloadV1;
      const seq = n.data.length === 4 ? n.data.readUInt32BE(0) : -1;
      if (n.notifyType === NotifyTypeV1.R_U_THERE && seq >= 0)
        sendInformational(sa, [dpdNotify(sa, NotifyTypeV1.R_U_THERE_ACK, seq)]);
      else if (n.notifyType === NotifyTypeV1.R_U_THERE_ACK && seq >= 0) dpdAck(seq);
      else if (n.notifyType === NotifyTypeV1.INITIAL_CONTACT) core.peerInitialContact(sa, true);
    }
  }
}

/**
 * The other ISAKMP SAs of the same connection with the same peer, oldest first: those its
 * re-authentications left (RFC 2409 has no phase 1 rekey; a new main mode comes up beside the old
 * SA, whose IPsec SAs the peer goes on using and later replaces or DELETEs from the new one).
 *
 * The peer is the identity it authenticated with (and the key it proved), never its address: a
 * hub connection (`remote: %any`) serves many sites, and several may share one address (behind one
 * NAT, or a load generator) and propose the same selectors. Each site's ISAKMP SA owns its IPsec
 * SAs; one site's quick mode must not replace, nor its DELETE remove, another site's pair
 * (strongSwan: each IKE_SA owns its CHILD_SAs, only its uniqueness policy replaces by identity).
 * An SA not yet authenticated has no siblings. Found through the SA table's index by identity,
 * not a scan of every SA (a hub holds thousands).
 */
export function siblings(core: CoreServices, sa: IkeSaV1): IkeSaV1[] {
  const key = (x: IkeSaV1): Buffer => x.psk ?? x.conn.psk;
  return (core.table.withIdentity(sa.peerIdentity) as IkeSaV1[])
    .filter(
      (o) =>
        o !== sa &&
        o.version === 1 &&
        o.name === sa.name &&
        o.phase !== 'dead' &&
        o.peerIdentity === sa.peerIdentity &&
        key(o).equals(key(sa)),
    )
    .sort((a, b) => a.serial - b.serial);
}
