/**
 * Algorithm proposals in strongSwan syntax (swanctl.conf `proposals`, `esp_proposals`), their wire
 * form, and proposal selection with strongSwan's semantics (libstrongswan proposal.c).
 *
 * Parsing rules mirrored from strongSwan:
 * - keywords are separated by '-', any order; within a kind, earlier means preferred;
 * - IKE without a PRF takes PRFs matching its integrity algorithms (sha256 -> prfsha256);
 * - AEAD-only proposals drop integrity algorithms (after they served to derive PRFs), so
 *   `aes256gcm16-sha384-ecp384` is valid; mixing AEAD and classic ciphers is an error;
 * - IKE needs an encryption algorithm, a PRF, a DH group and, if classic, an integrity algorithm;
 * - ESP: PRFs are ignored, a DH group requests PFS (`none` accepts no PFS), ESN defaults to noesn.
 * Deliberate differences: an AEAD IKE proposal with no PRF and no integrity keyword gets
 * prfsha256-prfsha384-prfsha512-prfsha1 (strongSwan rejects it, so this only accepts more);
 * classic ESP without an integrity algorithm is rejected (RFC 8221 forbids encryption-only ESP).
 */
import { TwinsecError } from '../errors.js';
import { isAeadEncr } from './crypto/encr.js';
import {
  ALG_TOKENS,
  algName,
  DEFAULT_DH,
  DEFAULT_INTEG,
  DEFAULT_PRFS,
  INTEG_TO_PRF,
} from './crypto/names.js';
import { DhId, EncrId, EsnId, IntegId, ProtocolId, TransformType } from './wire/constants.js';
import type { Proposal, Transform } from './wire/types.js';

export { algName } from './crypto/names.js';

export interface EncrSpec {
  id: number;
  /** Key length in bits. */
  keyLen: number;
}

export interface ProposalSpec {
  /** The configured text, for logs. */
  text: string;
  encr: EncrSpec[];
  integ: number[];
  prf: number[];
  /** ESP: empty = no PFS; may contain 0 (`none`) next to groups when PFS is optional. */
  dh: number[];
  /** ESP/AH only: ESN transform IDs (0 = noesn, 1 = esn); empty for IKE. */
  esn: number[];
}

export interface Chosen {
  num: number;
  /** SPI from the peer's proposal (its inbound SPI for ESP; empty in IKE_SA_INIT). */
  spi: Buffer;
  encr: EncrSpec;
  integ: number | null;
  prf: number | null;
  dh: number | null;
  esn: boolean;
}

export interface SelectOptions {
  /** Walk our proposals first (strongSwan's prefer_configured_proposals, default true). */
  preferOurs?: boolean;
  /** Ignore key exchange transforms, e.g. for the CHILD_SA negotiated inside IKE_AUTH. */
  ignoreDh?: boolean;
}

const fail = (msg: string): never => {
  throw new TwinsecError('ERR_PROPOSAL', msg);
};

/** Keywords strongSwan knows that twinsec refuses, with the reason (IKEv1's V1_REFUSED alike). */
const REFUSED: ReadonlyMap<string, string> = new Map([
  // 56-bit DES falls to exhaustive search (RFC 8221 §5: MUST NOT for ESP).
  ['des', 'DES is refused: its 56-bit key is too weak; use aes or 3des'],
]);

const aesAll = (id: number): EncrSpec[] => [128, 192, 256].map((keyLen) => ({ id, keyLen }));

/**
 * strongSwan's `default` keyword for the algorithms twinsec implements: a classic proposal, then
 * an AEAD one (the order vici uses).
 */
export function defaultProposals(kind: 'ike' | 'esp'): ProposalSpec[] {
  const ike = kind === 'ike';
  const make = (encrId: number, integ: readonly number[]): ProposalSpec => ({
    text: 'default',
    encr: aesAll(encrId),
    integ: [...integ],
    prf: ike ? [...DEFAULT_PRFS] : [],
    dh: ike ? [...DEFAULT_DH] : [],
    esn: ike ? [] : [EsnId.NO],
  });
  return [make(EncrId.AES_CBC, DEFAULT_INTEG), make(EncrId.AES_GCM_16, [])];
}

const pushUnique = <T>(list: T[], v: T, eq: (a: T, b: T) => boolean = (a, b) => a === b): void => {
  if (!list.some((x) => eq(x, v))) list.push(v);
};

/** Parses one proposal. `default` yields the classic default proposal (see parseProposals). */
export function parseProposal(text: string, kind: 'ike' | 'esp'): ProposalSpec {
  const src = text.trim();
  const lower = src.toLowerCase();
  if (lower === '') fail('empty proposal');
  if (lower === 'default') return defaultProposals(kind)[0] as ProposalSpec;
  const spec: ProposalSpec = { text: src, encr: [], integ: [], prf: [], dh: [], esn: [] };
  for (const word of lower.split('-')) {
    const t = word.trim();
    if (t === '') fail(`empty algorithm in proposal '${src}'`);
    if (t === 'default') fail(`'default' cannot be combined with other algorithms`);
    const refused = REFUSED.get(t);
    if (refused) fail(refused);
    const token = ALG_TOKENS.get(t);
    if (!token) return fail(`unknown algorithm '${t}'`);
    switch (token.type) {
      case TransformType.ENCR:
        pushUnique(
          spec.encr,
          { id: token.id, keyLen: token.keyLen },
          (a, b) => a.id === b.id && a.keyLen === b.keyLen,
        );
        break;
      case TransformType.INTEG:
        pushUnique(spec.integ, token.id);
        break;
      case TransformType.PRF:
        pushUnique(spec.prf, token.id);
        break;
      case TransformType.DH:
        pushUnique(spec.dh, token.id);
        break;
      default:
        pushUnique(spec.esn, token.id);
    }
  }
  const P = kind === 'ike' ? 'IKE' : 'ESP';
  if (spec.encr.length === 0) fail(`an encryption algorithm is mandatory in ${P} proposals`);
  const aead = spec.encr.filter((e) => isAeadEncr(e.id)).length;
  if (aead > 0 && aead < spec.encr.length) {
    fail(`classic and AEAD encryption algorithms can't be mixed in one ${P} proposal`);
  }
  const allAead = aead > 0;
  if (kind === 'ike') {
    // 3DES is here for legacy peers' ESP (RFC 2451); twinsec's IKEv2 SA protection (sk.ts) is
    // AES only, and a peer that speaks IKEv2 speaks AES (RFC 8247 §2.1: AES-CBC MUST).
    if (spec.encr.some((e) => e.id === EncrId.DES3)) {
      fail("'3des' is supported for ESP only with IKEv2; use aes for the IKE SA");
    }
    if (spec.esn.length > 0) fail('esn/noesn are only valid in ESP proposals');
    if (spec.prf.length === 0) {
      for (const i of spec.integ) pushUnique(spec.prf, INTEG_TO_PRF.get(i) as number);
      if (spec.prf.length === 0 && allAead) spec.prf = [...DEFAULT_PRFS];
    }
    spec.dh = spec.dh.filter((d) => d !== DhId.NONE);
    if (spec.dh.length === 0) fail('a DH group is mandatory in IKE proposals');
  } else {
    spec.prf = [];
    if (spec.dh.length === 1 && spec.dh[0] === DhId.NONE) spec.dh = [];
    if (spec.esn.length === 0) spec.esn = [EsnId.NO];
  }
  if (allAead) spec.integ = [];
  else if (spec.integ.length === 0) {
    fail(`an integrity algorithm is mandatory in ${P} proposals with classic (non-AEAD) encryption`);
  }
  return spec;
}

/**
 * Parses a proposal list: an array of proposals or one comma-separated string. `default` expands
 * to both default proposals, as in swanctl.conf.
 */
export function parseProposals(list: string | string[], kind: 'ike' | 'esp'): ProposalSpec[] {
  const items = typeof list === 'string' ? list.split(',') : list;
  const out: ProposalSpec[] = [];
  for (const item of items) {
    if (item.trim().toLowerCase() === 'default') out.push(...defaultProposals(kind));
    else out.push(parseProposal(item, kind));
  }
  if (out.length === 0) fail('no proposals');
  return out;
}

/** Canonical strongSwan-style text of a proposal, e.g. aes256gcm16-prfsha384-ecp384. */
export function specToString(spec: ProposalSpec): string {
  return [
    ...spec.encr.map((e) => algName(TransformType.ENCR, e.id, e.keyLen)),
    ...spec.integ.map((i) => algName(TransformType.INTEG, i)),
    ...spec.prf.map((p) => algName(TransformType.PRF, p)),
    ...spec.dh.map((d) => algName(TransformType.DH, d)),
    ...spec.esn.map((e) => algName(TransformType.ESN, e)),
  ].join('-');
}

/** Canonical text of a negotiated proposal, for logs and status. */
export function chosenToString(c: Chosen): string {
  const parts = [algName(TransformType.ENCR, c.encr.id, c.encr.keyLen)];
  if (c.integ !== null) parts.push(algName(TransformType.INTEG, c.integ));
  if (c.prf !== null) parts.push(algName(TransformType.PRF, c.prf));
  if (c.dh !== null) parts.push(algName(TransformType.DH, c.dh));
  if (c.esn) parts.push('esn');
  return parts.join('-');
}

// A fixed-key-length cipher (3DES, keyLen 0) carries no Key Length attribute (RFC 7296 §3.3.5).
const encrTransform = (e: EncrSpec): Transform =>
  e.keyLen === 0
    ? { type: TransformType.ENCR, id: e.id }
    : { type: TransformType.ENCR, id: e.id, keyLength: e.keyLen };

/**
 * Wire proposal for an offer. IKE gets ENCR, PRF, INTEG, DH; ESP gets ENCR, INTEG, DH (only with
 * PFS) and always ESN. `omitDh` strips key exchange transforms (CHILD_SA inside IKE_AUTH).
 */
export function toWireProposal(
  spec: ProposalSpec,
  num: number,
  protocolId: number,
  spi: Buffer,
  opts: { omitDh?: boolean } = {},
): Proposal {
  const ike = protocolId === ProtocolId.IKE;
  const transforms: Transform[] = spec.encr.map(encrTransform);
  if (ike) for (const id of spec.prf) transforms.push({ type: TransformType.PRF, id });
  for (const id of spec.integ) transforms.push({ type: TransformType.INTEG, id });
  if (!opts.omitDh) for (const id of spec.dh) transforms.push({ type: TransformType.DH, id });
  if (!ike) {
    for (const id of spec.esn.length > 0 ? spec.esn : [EsnId.NO])
      transforms.push({ type: TransformType.ESN, id });
  }
  return { num, protocolId, spi, transforms };
}

/**
 * The single-transform-per-type proposal a responder returns. `spi` overrides the SPI: for ESP the
 * responder must send its own inbound SPI, not the one it received.
 */
export function chosenToWire(c: Chosen, protocolId: number, spi?: Buffer): Proposal {
  const transforms: Transform[] = [encrTransform(c.encr)];
  if (c.prf !== null) transforms.push({ type: TransformType.PRF, id: c.prf });
  if (c.integ !== null) transforms.push({ type: TransformType.INTEG, id: c.integ });
  if (c.dh !== null) transforms.push({ type: TransformType.DH, id: c.dh });
  if (protocolId !== ProtocolId.IKE)
    transforms.push({ type: TransformType.ESN, id: c.esn ? EsnId.YES : EsnId.NO });
  return { num: c.num, protocolId, spi: spi ?? c.spi, transforms };
}

/** RFC 9370 Additional Key Exchange transform types: only their NONE value is acceptable here. */
const isAddKe = (type: number): boolean => type >= 6 && type <= 12;

/** Reads a responder's reply proposal: exactly one ENCR, at most one transform of other types. */
export function wireToChosen(p: Proposal): Chosen {
  const by = new Map<number, Transform[]>();
  for (const t of p.transforms) {
    if (isAddKe(t.type)) {
      if (t.id !== 0) fail(`unsupported additional key exchange in proposal ${p.num}`);
      continue;
    }
    if (t.type < TransformType.ENCR || t.type > TransformType.ESN)
      fail(`unknown transform type ${t.type} in proposal ${p.num}`);
    by.set(t.type, [...(by.get(t.type) ?? []), t]);
  }
  for (const [type, ts] of by) {
    if (ts.length > 1) fail(`selected proposal ${p.num} has several transforms of type ${type}`);
  }
  const one = (type: number): Transform | undefined => by.get(type)?.[0];
  const encr = one(TransformType.ENCR);
  if (!encr) return fail(`selected proposal ${p.num} has no encryption algorithm`);
  const opt = (type: number): number | null => {
    const id = one(type)?.id;
    return id === undefined || id === 0 ? null : id;
  };
  return {
    num: p.num,
    spi: p.spi,
    encr: { id: encr.id, keyLen: encr.keyLength ?? 0 },
    integ: opt(TransformType.INTEG),
    prf: opt(TransformType.PRF),
    dh: opt(TransformType.DH),
    esn: one(TransformType.ESN)?.id === EsnId.YES,
  };
}

/** Initiator side: is the responder's choice one of the combinations we offered? */
export function checkChosenInOffer(
  chosen: Chosen,
  ours: ProposalSpec[],
  opts: { ignoreDh?: boolean } = {},
): boolean {
  return ours.some((s) => {
    if (!s.encr.some((e) => e.id === chosen.encr.id && e.keyLen === chosen.encr.keyLen)) return false;
    if (isAeadEncr(chosen.encr.id) ? chosen.integ !== null : !s.integ.includes(chosen.integ as number))
      return false;
    if (s.prf.length > 0 ? !s.prf.includes(chosen.prf as number) : chosen.prf !== null) return false;
    if (chosen.dh === null) {
      if (!opts.ignoreDh && s.dh.length > 0 && !s.dh.includes(DhId.NONE)) return false;
    } else if (!s.dh.includes(chosen.dh)) return false;
    const esn = chosen.esn ? EsnId.YES : EsnId.NO;
    return s.esn.length > 0 ? s.esn.includes(esn) : !chosen.esn;
  });
}

/** A proposal reduced to transform lists, ours or theirs alike. */
interface Offer {
  encr: EncrSpec[];
  integ: number[];
  prf: number[];
  dh: number[];
  esn: number[];
  /** RFC 9370 additional key exchange types present in the peer's offer, with their IDs. */
  addKe: Map<number, number[]>;
}

function offerFromWire(p: Proposal): Offer | null {
  const o: Offer = { encr: [], integ: [], prf: [], dh: [], esn: [], addKe: new Map() };
  for (const t of p.transforms) {
    switch (t.type) {
      case TransformType.ENCR:
        o.encr.push({ id: t.id, keyLen: t.keyLength ?? 0 });
        break;
      case TransformType.PRF:
        o.prf.push(t.id);
        break;
      case TransformType.INTEG:
        o.integ.push(t.id);
        break;
      case TransformType.DH:
        o.dh.push(t.id);
        break;
      case TransformType.ESN:
        o.esn.push(t.id);
        break;
      default:
        // RFC 7296 §3.3.6: a proposal with a transform type we don't understand is unacceptable.
        if (!isAddKe(t.type)) return null;
        o.addKe.set(t.type, [...(o.addKe.get(t.type) ?? []), t.id]);
    }
  }
  return o;
}

const NO_MATCH = Symbol('no match');

/**
 * strongSwan's select_algo for one transform type: the first of `prefer` also in `match`. An
 * optional type (key exchange in ESP) may be absent on one side if the other side offers NONE (0).
 * Returns the selected ID (0 = NONE/noesn) or null when neither side has the type.
 */
function pick(prefer: number[], match: number[], optional: boolean): number | null | typeof NO_MATCH {
  if (prefer.length === 0 || match.length === 0) {
    const other = prefer.length === 0 ? match : prefer;
    if (other.length === 0) return null;
    return optional && other.includes(0) ? null : NO_MATCH;
  }
  for (const a of prefer) if (match.includes(a)) return a;
  return NO_MATCH;
}

function selectPair(
  prefer: Offer,
  match: Offer,
  ike: boolean,
  opts: SelectOptions,
): Omit<Chosen, 'num' | 'spi'> | null {
  const encr = prefer.encr.find((a) => match.encr.some((b) => a.id === b.id && a.keyLen === b.keyLen));
  if (!encr) return null;
  let integ: number | null = null;
  if (!isAeadEncr(encr.id)) {
    const i = pick(prefer.integ, match.integ, false);
    if (i === NO_MATCH || i === null || i === IntegId.NONE) return null;
    integ = i;
  }
  const prf = pick(prefer.prf, match.prf, false);
  if (prf === NO_MATCH || (ike && (prf === null || prf === 0))) return null;
  let dh: number | null = null;
  if (!opts.ignoreDh) {
    const d = pick(prefer.dh, match.dh, !ike);
    if (d === NO_MATCH || (ike && (d === null || d === DhId.NONE))) return null;
    dh = d === DhId.NONE ? null : d;
    for (const type of new Set([...prefer.addKe.keys(), ...match.addKe.keys()])) {
      const r = pick(prefer.addKe.get(type) ?? [], match.addKe.get(type) ?? [], true);
      if (r !== null && r !== 0) return null;
    }
  }
  const esn = pick(prefer.esn, match.esn, false);
  if (esn === NO_MATCH) return null;
  return { encr: { ...encr }, integ, prf: prf === 0 ? null : prf, dh, esn: esn === EsnId.YES };
}

/**
 * Responder side: choose one combination from the peer's proposals (strongSwan proposal_select).
 * With preferOurs (default) our proposals and algorithm order win; otherwise the peer's do. The
 * result carries the peer's proposal number and SPI. Null means NO_PROPOSAL_CHOSEN.
 */
export function selectProposal(
  ours: ProposalSpec[],
  theirs: Proposal[],
  protocolId: number,
  opts: SelectOptions = {},
): Chosen | null {
  const ike = protocolId === ProtocolId.IKE;
  const mine: Offer[] = ours.map((s) => ({ ...s, addKe: new Map() }));
  const peer: { p: Proposal; o: Offer }[] = [];
  for (const p of theirs) {
    if (p.protocolId !== protocolId) continue;
    const o = offerFromWire(p);
    if (o) peer.push({ p, o });
  }
  if (opts.preferOurs ?? true) {
    for (const m of mine) {
      for (const { p, o } of peer) {
        const c = selectPair(m, o, ike, opts);
        if (c) return { num: p.num, spi: p.spi, ...c };
      }
    }
  } else {
    for (const { p, o } of peer) {
      for (const m of mine) {
        const c = selectPair(o, m, ike, opts);
        if (c) return { num: p.num, spi: p.spi, ...c };
      }
    }
  }
  return null;
}
