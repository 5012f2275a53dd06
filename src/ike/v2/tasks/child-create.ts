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
import { dataplaneName } from '../../core/site-routes.js';
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
import { PayloadType, ProtocolId, TransformType, TsType } from '../../wire/constants.js';
import { cidrToTs, formatAddress, parseAddress, tsRangeToCidrs, tsToString } from '../../wire/ts.js';
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

/**
 * The most selectors of one TS payload we narrow. RFC 7296 §3.13 lets a peer send 255, and
 * narrowing costs offered x configured comparisons; a real peer offers a handful (strongSwan: its
 * configured subnets, plus the triggering packet's selector first, §2.9). More is refused
 * TS_UNACCEPTABLE, so a request costs a bounded amount of work (security issue #11).
 */
export const MAX_SELECTORS = 64;

/** A selector as an address range: start and end as 4 or 16 bytes, compared with Buffer.compare. */
interface Range {
  type: number;
  lo: Buffer;
  hi: Buffer;
}

/**
 * A selector the data plane can enforce as an address range, or null. The data plane filters by
 * CIDR prefixes only (ChildSaSpec.tsLocal/tsRemote): a selector limited to a protocol or to ports
 * would be installed as the whole address range, i.e. wider than negotiated, and one it cannot
 * parse would leave the IKE SA without its CHILD_SA. RFC 7296 §2.9 lets a responder narrow, never
 * widen, so such a selector is dropped here rather than stretched to "any protocol, any port".
 */
function enforceable(ts: TrafficSelector): Range | null {
  if (ts.ipProtocol !== 0 || ts.startPort !== 0 || ts.endPort !== 65535) return null;
  const size = ts.tsType === TsType.IPV4 ? 4 : ts.tsType === TsType.IPV6 ? 16 : 0;
  let lo: Buffer;
  let hi: Buffer;
  try {
    lo = parseAddress(ts.startAddr);
    hi = parseAddress(ts.endAddr);
  } catch {
    return null;
  }
  if (lo.length !== size || hi.length !== size || Buffer.compare(lo, hi) > 0) return null;
  return { type: ts.tsType, lo, hi };
}

function configuredRange(cidr: string): Range {
  const ts = cidrToTs(cidr);
  return { type: ts.tsType, lo: parseAddress(ts.startAddr), hi: parseAddress(ts.endAddr) };
}

/** The prefix length if lo..hi is exactly one CIDR block, else -1 (bytes, no bigint). */
export function cidrPrefix(lo: Buffer, hi: Buffer): number {
  let i = 0;
  while (i < lo.length && lo[i] === hi[i]) i++;
  if (i === lo.length) return lo.length * 8;
  const a = lo[i]!;
  const b = hi[i]!;
  // Below the first differing bit, lo must be all zeros and hi all ones.
  const low = 32 - Math.clz32(a ^ b);
  const mask = (1 << low) - 1;
  if ((a & mask) !== 0 || (b & mask) !== mask) return -1;
  for (let j = i + 1; j < lo.length; j++) if (lo[j] !== 0 || hi[j] !== 0xff) return -1;
  return i * 8 + 8 - low;
}

function wholeRange(type: number, lo: Buffer, hi: Buffer): TrafficSelector {
  return {
    tsType: type,
    ipProtocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: formatAddress(lo),
    endAddr: formatAddress(hi),
  };
}

/**
 * A range as the data plane takes it: itself when it is one CIDR block, else the CIDR blocks that
 * cover exactly it (a responder may narrow to several selectors, §2.9).
 */
function asCidrs(type: number, lo: Buffer, hi: Buffer): TrafficSelector[] {
  const ts = wholeRange(type, lo, hi);
  if (cidrPrefix(lo, hi) >= 0) return [ts];
  return tsRangeToCidrs(ts).map((c) => cidrToTs(c));
}

/**
 * Responder narrowing (§2.9): every offered selector the data plane can enforce, intersected with
 * every configured subnet. Each offered selector is parsed once and the pairs are compared as
 * bytes, so the work is offered + offered x configured cheap comparisons, with offered at most
 * MAX_SELECTORS (more: nothing is narrowed, the caller answers TS_UNACCEPTABLE). Protocol- or
 * port-limited selectors are dropped (see enforceable); an empty result means TS_UNACCEPTABLE.
 */
export function narrow(offered: TrafficSelector[], configured: string[]): TrafficSelector[] {
  if (offered.length > MAX_SELECTORS) return [];
  const theirs: Range[] = [];
  for (const o of offered) {
    const r = enforceable(o);
    if (r) theirs.push(r);
  }
  const out: TrafficSelector[] = [];
  if (!theirs.length) return out;
  const seen = new Set<string>();
  for (const c of configured) {
    const mine = configuredRange(c);
    for (const o of theirs) {
      if (o.type !== mine.type) continue;
      const lo = Buffer.compare(o.lo, mine.lo) >= 0 ? o.lo : mine.lo;
      const hi = Buffer.compare(o.hi, mine.hi) <= 0 ? o.hi : mine.hi;
      if (Buffer.compare(lo, hi) > 0) continue;
      for (const x of asCidrs(mine.type, lo, hi)) {
        const key = `${x.startAddr}-${x.endAddr}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push(x);
        // A subset of the intersection is still a valid narrowing; the answer stays bounded.
        if (out.length >= MAX_SELECTORS) return out;
      }
    }
  }
  return out;
}

/**
 * Initiator check: what the responder returned must lie inside what we asked for (§2.9: it may
 * only narrow), and be something the data plane enforces (whole protocol, all ports, one CIDR
 * block each); anything else is refused, never installed wider than negotiated.
 */
export function withinOffer(returned: TrafficSelector[], configured: string[]): boolean {
  if (returned.length > MAX_SELECTORS) return false;
  const mine = configured.map(configuredRange);
  return returned.every((r) => {
    const x = enforceable(r);
    if (!x || cidrPrefix(x.lo, x.hi) < 0) return false;
    return mine.some(
      (m) => m.type === x.type && Buffer.compare(m.lo, x.lo) <= 0 && Buffer.compare(x.hi, m.hi) <= 0,
    );
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
  const tsRemote = c.tsRemote.map(tsToString);
  const spec: ChildSaSpec = {
    ...dataplaneName(sa, tsRemote),
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
    tsRemote,
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
