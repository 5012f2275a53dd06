/**
 * IKEv1 proposals: strongSwan proposal strings (`aes128-sha1-modp1024`, `aes256gcm16`) to phase-1
 * transforms (RFC 2409 Appendix A) and phase-2 ESP transforms (RFC 2407 §4.4.4, §4.5), responder
 * selection, the initiator's check of the answer, and names back for status.
 *
 * A small parser of its own: src/ike/proposal.ts is IKEv2's and rejects v1-only names (3des, sha
 * as an IKE hash with 3des, ...). Differences from strongSwan's v1 parsing: PRF keywords are
 * ignored (IKEv1's prf is the HMAC of the negotiated hash, RFC 2409 §4); DES and ESN are refused
 * outright (modp768 and HMAC-MD5 for ESP are accepted, with a configuration warning for modp768).
 *
 * IKEv1 has no per-type transform lists: each transform is a complete suite, so an offer is the
 * product of the configured algorithms (encryption outermost, as strongSwan orders it).
 */
import { TwinsecError } from '../../errors.js';
import { V1_ESP_TO_ENCR, v1EspEncrKeyLen, v1EspInteg } from '../crypto/v1-algs.js';
import {
  V1_REFUSED,
  V1_TOKENS,
  type V1Token,
  v1EncrName,
  v1EspEncrName,
  v1EspIntegName,
  v1GroupName,
  v1HashName,
} from '../crypto/v1-names.js';
import {
  decodeEsp,
  decodePhase1,
  encodeEsp,
  encodePhase1,
  type V1EspSuite,
  type V1Phase1Suite,
  type V1Proposal,
  type V1Transform,
} from '../crypto/v1-suites.js';
import { EncapsulationMode, EspTransformId, Phase1Auth } from '../wire/v1/constants.js';

export * from '../crypto/v1-suites.js';

export const V1_PROTO_ISAKMP = 1;
export const V1_PROTO_ESP = 3;
/** RFC 2407 §4.5: an IPsec SA offered without a lifetime lives 28800 seconds. */
export const V1_DEFAULT_IPSEC_LIFE = 28800;

export interface V1EncrSpec {
  /** Phase 1: Phase1Encr; phase 2: EspTransformId. */
  id: number;
  /** Key length in bits; 0 for 3DES (fixed key, no attribute). */
  keyLen: number;
}
export interface V1ProposalSpec {
  text: string;
  kind: 'ike' | 'esp';
  encr: V1EncrSpec[];
  /** Phase 1: Phase1Hash values; ESP: Phase2AuthAlg values (empty for AES-GCM). */
  integ: number[];
  /** DH groups. ESP: empty = no PFS; 0 (`none`) next to groups makes PFS optional. */
  groups: number[];
}

/** A responder's decision: the peer's transform to echo, and the lifetime we will use. */
export interface V1Choice<S> {
  proposalNum: number;
  /** The peer's SPI (its inbound SPI for ESP; empty or cookies for phase 1). */
  spi: Buffer;
  /** The peer's transform as received: RFC 2408 §4.2 has the responder return it unchanged. */
  transform: V1Transform;
  suite: S;
  lifeSeconds: number;
  /** The peer offered a longer lifetime than ours: answer with RESPONDER-LIFETIME (RFC 2407 §4.6.3.1). */
  responderLifetime: boolean;
}

const fail = (msg: string): never => {
  throw new TwinsecError('ERR_PROPOSAL', msg);
};

const addUnique = <T>(list: T[], v: T, eq: (a: T, b: T) => boolean = (a, b) => a === b): void => {
  if (!list.some((x) => eq(x, v))) list.push(v);
};

function addToken(spec: V1ProposalSpec, t: V1Token, word: string): void {
  const ike = spec.kind === 'ike';
  if (t.k === 'encr') {
    const e = ike ? t.ike : t.esp;
    if (!e) return fail(`'${word}' is not an IKEv1 phase-1 encryption algorithm`);
    addUnique(spec.encr, e, (a, b) => a.id === b.id && a.keyLen === b.keyLen);
  } else if (t.k === 'integ') {
    addUnique(spec.integ, ike ? t.hash : t.esp);
  } else if (t.k === 'group') addUnique(spec.groups, t.id);
}

/** Parses one proposal for phase 1 (`ike`) or phase 2 (`esp`). */
export function parseV1Proposal(text: string, kind: 'ike' | 'esp'): V1ProposalSpec {
  const src = text.trim();
  if (src === '') fail('empty proposal');
  const spec: V1ProposalSpec = { text: src, kind, encr: [], integ: [], groups: [] };
  let aead = 0;
  for (const word of src.toLowerCase().split('-')) {
    const refused = V1_REFUSED.get(word);
    if (refused) fail(refused);
    const t = V1_TOKENS.get(word);
    if (!t) return fail(word === '' ? `empty algorithm in proposal '${src}'` : `unknown algorithm '${word}'`);
    if (t.k === 'encr' && t.aead) aead++;
    addToken(spec, t, word);
  }
  const P = kind === 'ike' ? 'IKEv1 phase-1' : 'ESP';
  if (spec.encr.length === 0) fail(`an encryption algorithm is mandatory in ${P} proposals`);
  if (aead > 0 && spec.encr.some((e) => e.id !== EspTransformId.ESP_AES_GCM_16)) {
    fail(`classic and AEAD encryption algorithms can't be mixed in one ${P} proposal`);
  }
  if (aead > 0) spec.integ = [];
  else if (spec.integ.length === 0) fail(`an integrity algorithm is mandatory in ${P} proposals`);
  if (kind === 'ike') {
    spec.groups = spec.groups.filter((g) => g !== 0);
    if (spec.groups.length === 0) fail('a DH group is mandatory in IKEv1 phase-1 proposals');
  } else if (spec.groups.length === 1 && spec.groups[0] === 0) spec.groups = [];
  return spec;
}

/** Parses a comma-separated list or an array of proposals. */
export function parseV1Proposals(list: string | string[], kind: 'ike' | 'esp'): V1ProposalSpec[] {
  const items = typeof list === 'string' ? list.split(',') : list;
  const out = items.map((x) => parseV1Proposal(x, kind));
  if (out.length === 0) fail('no proposals');
  return out;
}

/** Every phase-1 suite a proposal list offers, in preference order. */
export function phase1Suites(
  specs: V1ProposalSpec[],
  opts: { lifeSeconds: number | null; auth?: number },
): V1Phase1Suite[] {
  const out: V1Phase1Suite[] = [];
  for (const s of specs) {
    for (const e of s.encr)
      for (const hash of s.integ)
        for (const group of s.groups) {
          const auth = opts.auth ?? Phase1Auth.PRE_SHARED_KEY;
          out.push({ encr: e.id, keyLen: e.keyLen, hash, group, auth, lifeSeconds: opts.lifeSeconds });
        }
  }
  return out;
}

/** The transforms of our phase-1 SA payload (one proposal, KEY_IKE transforms numbered from 1). */
export function phase1Offer(
  specs: V1ProposalSpec[],
  opts: { lifeSeconds: number | null; auth?: number; singleGroup?: boolean },
): V1Transform[] {
  let suites = phase1Suites(specs, opts);
  // Aggressive mode sends its KE with the proposal (RFC 2409 §5.4): one group, the first one.
  if (opts.singleGroup) suites = suites.filter((s) => s.group === suites[0]!.group);
  return suites.map((s, i) => encodePhase1(s, i + 1));
}

/** Every ESP suite one proposal offers (PFS group `0` = a transform without a group). */
export function espSuites(
  spec: V1ProposalSpec,
  opts: { lifeSeconds: number | null; encap: number },
): V1EspSuite[] {
  const { lifeSeconds, encap } = opts;
  const out: V1EspSuite[] = [];
  const auths = spec.integ.length > 0 ? spec.integ : [null];
  const groups = spec.groups.length > 0 ? spec.groups : [0];
  for (const e of spec.encr)
    for (const auth of auths)
      for (const g of groups) {
        const group = g === 0 ? null : g;
        out.push({ transformId: e.id, keyLen: e.keyLen, auth, group, encap, lifeSeconds });
      }
  return out;
}

/** Our quick-mode SA offer: one ESP proposal per configured proposal, our inbound SPI in each. */
export function phase2Offer(
  specs: V1ProposalSpec[],
  opts: { spi: Buffer; lifeSeconds: number | null; encap: number },
): V1Proposal[] {
  return specs.map((spec, i) => ({
    num: i + 1,
    protocolId: V1_PROTO_ESP,
    spi: opts.spi,
    transforms: espSuites(spec, opts).map((s, j) => encodeEsp(s, j + 1)),
  }));
}

const p1Matches = (spec: V1ProposalSpec, s: V1Phase1Suite, auth: number): boolean =>
  s.auth === auth &&
  spec.encr.some((e) => e.id === s.encr && e.keyLen === s.keyLen) &&
  spec.integ.includes(s.hash) &&
  spec.groups.includes(s.group);

function espMatches(spec: V1ProposalSpec, s: V1EspSuite, natT: boolean): boolean {
  const encapOk = natT
    ? s.encap === EncapsulationMode.UDP_TUNNEL || s.encap === EncapsulationMode.UDP_TUNNEL_DRAFT
    : s.encap === EncapsulationMode.TUNNEL;
  if (!encapOk || !spec.encr.some((e) => e.id === s.transformId && e.keyLen === s.keyLen)) return false;
  const aead = s.transformId === EspTransformId.ESP_AES_GCM_16;
  if (aead ? s.auth !== null : s.auth === null || !spec.integ.includes(s.auth)) return false;
  if (s.group === null) return spec.groups.length === 0 || spec.groups.includes(0);
  return spec.groups.includes(s.group);
}

/**
 * Lifetime rule: the peer's if not longer than ours, else ours announced by RESPONDER-LIFETIME. A
 * duration of 0 would mean an SA that expires at once: answered with ours like a longer one.
 */
function decideLife(peer: number | null, ours: number): { lifeSeconds: number; responderLifetime: boolean } {
  if (peer === null || peer <= 0 || peer > ours)
    return { lifeSeconds: ours, responderLifetime: peer !== null };
  return { lifeSeconds: peer, responderLifetime: false };
}

interface Candidate<S> {
  p: V1Proposal;
  t: V1Transform;
  s: S;
}

function pickFirst<S>(
  specs: V1ProposalSpec[],
  cands: Candidate<S>[],
  ok: (spec: V1ProposalSpec, s: S) => boolean,
  preferOurs: boolean,
): Candidate<S> | null {
  if (preferOurs) {
    for (const spec of specs) for (const c of cands) if (ok(spec, c.s)) return c;
  } else {
    for (const c of cands) if (specs.some((spec) => ok(spec, c.s))) return c;
  }
  return null;
}

export interface V1SelectOptions {
  /** Our lifetime in seconds. */
  lifeSeconds: number;
  /** Walk our proposals first (strongSwan's prefer_configured_proposals); default: the peer's order. */
  preferOurs?: boolean;
}

/** Responder: picks a phase-1 transform from the peer's SA payload; null = NO-PROPOSAL-CHOSEN. */
export function selectPhase1(
  ours: V1ProposalSpec[],
  theirs: V1Proposal[],
  opts: V1SelectOptions & { auth?: number },
): V1Choice<V1Phase1Suite> | null {
  const cands: Candidate<V1Phase1Suite>[] = [];
  for (const p of theirs) {
    if (p.protocolId !== V1_PROTO_ISAKMP) continue;
    for (const t of p.transforms) {
      const s = decodePhase1(t);
      if (s) cands.push({ p, t, s });
    }
  }
  const auth = opts.auth ?? Phase1Auth.PRE_SHARED_KEY;
  const c = pickFirst(ours, cands, (spec, s) => p1Matches(spec, s, auth), opts.preferOurs ?? false);
  if (!c) return null;
  const life = decideLife(c.s.lifeSeconds, opts.lifeSeconds);
  return { proposalNum: c.p.num, spi: c.p.spi, transform: c.t, suite: { ...c.s, ...life }, ...life };
}

/**
 * Responder: picks an ESP transform from the peer's quick-mode SA payload. Proposals sharing a
 * number form an AND-bundle (RFC 2408 §4.2), e.g. AH+ESP, which twinsec does not do: skipped.
 * `natT` requires UDP-encapsulated tunnel mode (RFC 3947 §5), else plain tunnel mode.
 */
export function selectPhase2(
  ours: V1ProposalSpec[],
  theirs: V1Proposal[],
  opts: V1SelectOptions & { natT: boolean },
): V1Choice<V1EspSuite> | null {
  const cands: Candidate<V1EspSuite>[] = [];
  for (const p of theirs) {
    const bundled = theirs.filter((q) => q.num === p.num).length > 1;
    if (p.protocolId !== V1_PROTO_ESP || p.spi.length !== 4 || bundled) continue;
    for (const t of p.transforms) {
      const s = decodeEsp(t);
      if (s) cands.push({ p, t, s });
    }
  }
  const ok = (spec: V1ProposalSpec, s: V1EspSuite) => espMatches(spec, s, opts.natT);
  const c = pickFirst(ours, cands, ok, opts.preferOurs ?? false);
  if (!c) return null;
  const life = decideLife(c.s.lifeSeconds ?? V1_DEFAULT_IPSEC_LIFE, opts.lifeSeconds);
  return { proposalNum: c.p.num, spi: c.p.spi, transform: c.t, suite: { ...c.s, ...life }, ...life };
}

const sameBut = <S extends { lifeSeconds: number | null }>(a: S, b: S): boolean =>
  JSON.stringify({ ...a, lifeSeconds: 0 }) === JSON.stringify({ ...b, lifeSeconds: 0 });

/**
 * The lifetime an initiator keeps: the shorter of ours and the answer's. RFC 2408 §4.2 has the
 * responder echo our transform, but strongSwan (main_mode.c, quick_mode.c) accepts a differing
 * lifetime with a log line instead of failing, and so do we; a longer one never extends ours.
 */
function keptLife(answer: number | null, offered: number | null): number | null {
  if (answer === null || answer <= 0) return offered;
  return offered === null ? answer : Math.min(answer, offered);
}

function single(answer: V1Proposal[], protocolId: number): { p: V1Proposal; t: V1Transform } | null {
  const p = answer.length === 1 ? answer[0] : undefined;
  const t = p?.transforms.length === 1 ? p.transforms[0] : undefined;
  return p && t && p.protocolId === protocolId ? { p, t } : null;
}

/** Initiator: the responder's phase-1 answer, if it is one transform we offered (lifetime aside). */
export function checkPhase1Chosen(offered: V1Transform[], answer: V1Proposal[]): V1Phase1Suite | null {
  const one = single(answer, V1_PROTO_ISAKMP);
  const s = one && decodePhase1(one.t);
  if (!s) return null;
  const match = offered.map(decodePhase1).find((o) => o && sameBut(o, s));
  return match ? { ...s, lifeSeconds: keptLife(s.lifeSeconds, match.lifeSeconds) } : null;
}

/** Initiator: the quick-mode answer, if it is one transform of the proposal it names (lifetime aside). */
export function checkPhase2Chosen(offered: V1Proposal[], answer: V1Proposal[]): V1EspSuite | null {
  const one = single(answer, V1_PROTO_ESP);
  const s = one && one.p.spi.length === 4 ? decodeEsp(one.t) : null;
  if (!one || !s) return null;
  const mine = offered.filter((p) => p.num === one.p.num).flatMap((p) => p.transforms.map(decodeEsp));
  const match = mine.find((o) => o && sameBut(o, s));
  return match ? { ...s, lifeSeconds: keptLife(s.lifeSeconds, match.lifeSeconds) } : null;
}

/** strongSwan-style name of a phase-1 suite, e.g. aes128-sha1-modp1024. */
export function phase1Name(s: V1Phase1Suite): string {
  return [v1EncrName(s.encr, s.keyLen), v1HashName(s.hash), v1GroupName(s.group)].join('-');
}

/** Data-plane names of an ESP suite (see dataplane/types.ts): encr and integ keywords. */
export function espAlgNames(s: V1EspSuite): { encr: string; integ: string | null } {
  const integ = s.auth === null ? null : v1EspIntegName(s.auth);
  return { encr: v1EspEncrName(s.transformId, s.keyLen), integ };
}

/** strongSwan-style name of an ESP suite, e.g. aes128-sha1-modp1024 or aes256gcm16. */
export function phase2Name(s: V1EspSuite): string {
  const n = espAlgNames(s);
  const group = s.group !== null ? [v1GroupName(s.group)] : [];
  return [n.encr, ...(n.integ ? [n.integ] : []), ...group].join('-');
}

/** KEYMAT lengths per direction (encryption key with the GCM salt, integrity key) and the ENCR ID. */
export function espKeyLengths(s: V1EspSuite): { encrId: number; encrKeyLen: number; integKeyLen: number } {
  const encrId = V1_ESP_TO_ENCR.get(s.transformId);
  if (encrId === undefined) return fail(`unsupported ESP transform ${s.transformId}`);
  return {
    encrId,
    encrKeyLen: v1EspEncrKeyLen(s.transformId, s.keyLen),
    integKeyLen: s.auth === null ? 0 : v1EspInteg(s.auth).keyLen,
  };
}
