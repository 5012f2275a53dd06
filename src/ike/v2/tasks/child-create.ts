/**
 * Creating a CHILD_SA (RFC 7296 §1.3, §2.9, §2.17), shared by IKE_AUTH and CREATE_CHILD_SA: ESP
 * proposals with our inbound SPI, traffic selectors and responder narrowing, keys, and the
 * hand-off to the data plane through the core.
 */
import type { ChildSaSpec } from '../../../dataplane/types.js';
import { ChildSa } from '../../core/child-sa.js';
import type { Random } from '../../core/clock.js';
import type { SaContext } from '../../core/ike-sa.js';
import { childVolumeLimits } from '../../core/lifetimes.js';
import { encrAlg } from '../../crypto/encr.js';
import { integAlg } from '../../crypto/integ.js';
import { deriveChildKeys } from '../../crypto/keys.js';
import {
  algName,
  type Chosen,
  type ProposalSpec,
  parseProposals,
  selectProposal,
  toWireProposal,
} from '../../proposal.js';
import { PayloadType, ProtocolId, TransformType } from '../../wire/constants.js';
import { cidrToTs, tsIntersect, tsToString } from '../../wire/ts.js';
import type { Payload, SaPayload, TrafficSelector } from '../../wire/types.js';
import type { IkeSaV2, V2Child } from '../ike-sa.js';
import type { V2Services } from '../task.js';

/**
 * An inbound SPI: random, never in the reserved range 0-255 (RFC 4303 §2.1), and not `taken`: the
 * SPI alone selects the inbound SA (RFC 4301 §4.1), so a duplicate would replace or shadow a pair.
 */
export function newSpi(random: Random, taken: (spi: number) => boolean = () => false): number {
  for (;;) {
    const v = random.bytes(4).readUInt32BE(0);
    if (v > 255 && !taken(v)) return v;
  }
}

/** An inbound SPI for a new CHILD_SA of `sa`, unused by every CHILD_SA the daemon holds. */
export function childSpi(sa: { ctx: SaContext }): number {
  const table = sa.ctx.table;
  return newSpi(sa.ctx.random, (spi) => table?.ownerOf(spi) !== undefined);
}

export function spiBuffer(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi >>> 0);
  return b;
}

export function espOffer(sa: IkeSaV2): ProposalSpec[] {
  return parseProposals(sa.conn.esp.proposals, 'esp');
}

/**
 * IKE_AUTH carries no KE, so its ESP proposals leave out DH groups (which apply to rekeys only) and
 * selection ignores any the peer sends, as strongSwan does.
 */
export function childRequestPayloads(sa: IkeSaV2, spiIn: number): Payload[] {
  const offer = espOffer(sa);
  return [
    {
      type: PayloadType.SA,
      proposals: offer.map((p, i) =>
        toWireProposal(p, i + 1, ProtocolId.ESP, spiBuffer(spiIn), { omitDh: true }),
      ),
    },
    { type: PayloadType.TSi, selectors: sa.conn.localSubnets.map((c) => cidrToTs(c)) },
    { type: PayloadType.TSr, selectors: sa.conn.remoteSubnets.map((c) => cidrToTs(c)) },
  ];
}

/** Responder narrowing (§2.9): every offered selector intersected with every configured one. */
export function narrow(offered: TrafficSelector[], configured: string[]): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  const seen = new Set<string>();
  for (const c of configured) {
    const mine = cidrToTs(c);
    for (const o of offered) {
      const x = tsIntersect(o, mine);
      if (!x) continue;
      const key = tsToString(x);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(x);
    }
  }
  return out;
}

/** Initiator check: what the responder returned must lie inside what we asked for. */
export function withinOffer(returned: TrafficSelector[], configured: string[]): boolean {
  return returned.every((r) => {
    const narrowed = narrow([r], configured);
    return narrowed.length === 1 && tsToString(narrowed[0]!) === tsToString(r);
  });
}

export function selectEsp(sa: IkeSaV2, saP: SaPayload): Chosen | null {
  return selectProposal(espOffer(sa), saP.proposals, ProtocolId.ESP, { ignoreDh: true });
}

/**
 * Nonces and DH secret a CHILD_SA's KEYMAT comes from. IKE_AUTH uses the IKE SA's; a
 * CREATE_CHILD_SA uses its own nonces, optional g^ir (PFS), and "initiator" means the initiator of
 * that exchange (§2.17), not of the IKE SA.
 */
export interface ChildKeying {
  ni: Buffer;
  nr: Buffer;
  dhSecret?: Buffer;
  initiator: boolean;
  /**
   * False for the responder of a rekey (RFC 7296 §2.8): the new inbound SA works at once, but
   * traffic keeps leaving on the old SA until the peer uses the new one (or deletes the old one).
   */
  activate?: boolean;
}

export interface NewChild {
  spiIn: number;
  spiOut: number;
  chosen: Chosen;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
}

/**
 * Derives the CHILD_SA keys (§2.17: initiator-to-responder keys come first in KEYMAT), installs the
 * pair in the data plane and hands the CHILD_SA to the core (lifetimes, child-up).
 */
export function installChild(
  core: V2Services,
  sa: IkeSaV2,
  c: NewChild,
  keying: ChildKeying = { ni: sa.ni, nr: sa.nr, initiator: sa.initiator },
): ChildSa<V2Child> {
  const encr = encrAlg(c.chosen.encr.id, c.chosen.encr.keyLen);
  const integ = c.chosen.integ ? integAlg(c.chosen.integ) : null;
  const km = deriveChildKeys(
    sa.prf!,
    sa.keys!.skD,
    encr.keyLen + encr.saltLen,
    integ ? integ.keyLen : 0,
    keying.ni,
    keying.nr,
    keying.dhSecret,
  );
  const [encIn, intIn, encOut, intOut] = keying.initiator
    ? [km.encrR, km.integR, km.encrI, km.integI]
    : [km.encrI, km.integI, km.encrR, km.integR];
  const encapsulation: 'udp' | 'esp' =
    sa.conn.encapsulation === 'udp' || (sa.conn.encapsulation === 'auto' && (sa.nat.local || sa.nat.remote))
      ? 'udp'
      : 'esp';
  const port = (p: number): number => (encapsulation === 'udp' ? p : 0);
  const spec: ChildSaSpec = {
    connection: sa.name,
    spiIn: c.spiIn,
    spiOut: c.spiOut,
    encr: algName(TransformType.ENCR, c.chosen.encr.id, c.chosen.encr.keyLen),
    integ: integ ? algName(TransformType.INTEG, integ.id) : null,
    encrKeyIn: encIn,
    encrKeyOut: encOut,
    integKeyIn: integ ? intIn : null,
    integKeyOut: integ ? intOut : null,
    esn: c.chosen.esn,
    encapsulation,
    local: { address: sa.local.address, port: port(sa.local.port) },
    remote: { address: sa.remote.address, port: port(sa.remote.port) },
    tsLocal: c.tsLocal.map(tsToString),
    tsRemote: c.tsRemote.map(tsToString),
    ...childVolumeLimits(sa.conn.esp),
  };
  core.dataplane.installSa(keying.activate === false ? { ...spec, activate: false } : spec);
  const child = new ChildSa<V2Child>(
    sa.ctx.bus,
    {
      connection: sa.name,
      spiIn: c.spiIn,
      spiOut: c.spiOut,
      encr: spec.encr,
      integ: spec.integ,
      dh: c.chosen.dh ? algName(TransformType.DH, c.chosen.dh) : null,
      encapsulation,
      tsLocal: spec.tsLocal,
      tsRemote: spec.tsRemote,
    },
    { chosen: c.chosen, tsLocal: c.tsLocal, tsRemote: c.tsRemote },
  );
  core.childInstalled(sa, child as ChildSa<unknown>);
  return child;
}
