/**
 * The SA table: every IKE SA of both protocol versions by our SPI, the half-open responder SAs
 * (to recognise a retransmitted first message and to bound them), and the owner of each CHILD_SA
 * by its inbound SPI. Admission limits bound what a peer can make us hold.
 */
import type { BaseIkeSa } from './ike-sa.js';

/**
 * Bounds on the state a peer can make us hold. First messages beyond them are dropped and counted
 * ('limit'); half-open SAs also time out (Timing.halfOpenTimeout).
 */
export interface SaLimits {
  /** Responder SAs still waiting for authentication, per peer address. */
  halfOpenPerPeer: number;
  /** Responder SAs still waiting for authentication, in total. */
  halfOpen: number;
  /** IKE SAs (any state) per peer address. */
  perPeer: number;
  /** IKE SAs (any state) in total. */
  total: number;
  /**
   * CHILD_SA pairs (any state but deleted: replaced pairs waiting for their DELETE count too) per
   * IKE SA. An authenticated peer that keeps rekeying without deleting is refused beyond it
   * (NO_ADDITIONAL_SAS, RFC 7296 §1.3; IKEv1: the quick mode is refused).
   */
  childrenPerIke: number;
  /**
   * IKEv1 responder SAs whose peer has not yet proven it receives at its source address (it has
   * not echoed our responder cookie), per source address and in total. IKEv1 cannot answer
   * statelessly like IKEv2's COOKIE (RFC 7296 §2.6), so a spoofed first message costs an SA; at
   * these caps the oldest unproven SA makes room for the new one (a flood keeps displacing its own
   * SAs, a real peer only needs its SA to live one round trip: 4,096 of them last 0.6 s at
   * 6,500 spoofed messages a second). Proven SAs are never displaced, and unproven ones count
   * against neither `halfOpen` nor `halfOpenPerPeer` (they have these caps instead). Per source:
   * strongSwan's block_threshold (5) by default; a hub whose sites share one address (behind one
   * NAT, or a load generator) raises it (config `limits.v1UnprovenPerPeer`), else sites that start
   * at once displace each other before they can echo the cookie.
   */
  unprovenPerPeer: number;
  unproven: number;
}

export const DEFAULT_LIMITS: SaLimits = {
  halfOpenPerPeer: 16,
  halfOpen: 1024,
  perPeer: 64,
  total: 8192,
  childrenPerIke: 16,
  unprovenPerPeer: 5,
  unproven: 4096,
};

type AnySa = BaseIkeSa<unknown>;

export class SaTable {
  readonly limits: SaLimits;
  readonly #bySpi = new Map<string, AnySa>();
  readonly #halfOpen = new Map<string, { sa: AnySa; address: string }>();
  readonly #halfOpenKey = new WeakMap<AnySa, string>();
  /**
   * Responder SAs by the key of their first message for as long as they are in the table, not only
   * while half-open: a retransmission of that message can arrive after the SA authenticated (a hub
   * under load: charon retransmits IKE_SA_INIT after 1 s, and its IKE_AUTH on port 4500 can be read
   * before the retransmissions queued on port 500). See answeredFirst.
   */
  readonly #byFirst = new Map<string, AnySa>();
  readonly #firstKey = new WeakMap<AnySa, string>();
  /** Unproven responder SAs (IKEv1), oldest first: in total, and per source address. */
  readonly #unproven = new Map<AnySa, string>();
  readonly #unprovenOf = new Map<string, Set<AnySa>>();
  /** Per peer address: IKE SAs and half-open ones (O(1) admission checks). */
  readonly #perPeer = new Map<string, { all: number; halfOpen: number }>();
  /** CHILD_SA inbound SPI -> the IKE SA holding it now (IKE SA rekeys move children). */
  readonly #childOwner = new Map<number, AnySa>();
  /**
   * SAs by the identity their peer authenticated (BaseIkeSa.peerIdentity), oldest first: a hub
   * with thousands of peers finds one peer's SAs (INITIAL_CONTACT, re-authentication, IKEv1
   * quick mode collisions) without scanning every SA.
   */
  readonly #byIdentity = new Map<string, Set<AnySa>>();
  readonly #identityOf = new Map<AnySa, string>();
  /**
   * SAs by their connection's configured identity pair, once established or carrying our
   * INITIAL_CONTACT (IkeCore.wantInitialContact asks whether such an SA exists).
   */
  readonly #byIds = new Map<string, Set<AnySa>>();
  readonly #idsOf = new Map<AnySa, string>();
  /**
   * SAs by the name of the connection they serve now (a responder's changes when the peer
   * authenticates), and the order they came into the table: a connection's SAs (status, HA's
   * "is it up" on every CHILD_SA change) without a scan of every SA.
   */
  readonly #byConn = new Map<string, Set<AnySa>>();
  readonly #connOf = new Map<AnySa, string>();
  readonly #order = new WeakMap<AnySa, number>();
  #added = 0;

  constructor(limits: Partial<SaLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  get size(): number {
    return this.#bySpi.size;
  }

  all(): AnySa[] {
    return [...this.#bySpi.values()];
  }

  get(ourSpi: Buffer): AnySa | undefined {
    return this.#bySpi.get(ourSpi.toString('hex'));
  }

  add(sa: AnySa): void {
    const key = sa.ourSpi.toString('hex');
    if (this.#bySpi.has(key)) return;
    this.#bySpi.set(key, sa);
    this.#peer(sa.remote.address).all++;
    this.#order.set(sa, this.#added++);
    this.identified(sa);
    this.connChanged(sa);
  }

  remove(sa: AnySa): void {
    const key = sa.ourSpi.toString('hex');
    if (this.#bySpi.get(key) !== sa) return;
    this.#bySpi.delete(key);
    this.settle(sa);
    const fk = this.#firstKey.get(sa);
    if (fk !== undefined && this.#byFirst.get(fk) === sa) this.#byFirst.delete(fk);
    const p = this.#peer(sa.remote.address);
    p.all--;
    this.#tidy(sa.remote.address);
    for (const c of sa.children) if (this.#childOwner.get(c.spiIn) === sa) this.#childOwner.delete(c.spiIn);
    unindex(this.#byIdentity, this.#identityOf, sa);
    unindex(this.#byIds, this.#idsOf, sa);
    unindex(this.#byConn, this.#connOf, sa);
  }

  /** `sa` serves another connection now (BaseIkeSa calls this when its `conn` is set). */
  connChanged(sa: AnySa): void {
    const name = sa.conn.name;
    if (this.#connOf.get(sa) === name || this.#bySpi.get(sa.ourSpi.toString('hex')) !== sa) return;
    unindex(this.#byConn, this.#connOf, sa);
    index(this.#byConn, this.#connOf, sa, name);
  }

  /** The SAs of connection `name` (any state but removed), newest in the table first. */
  ofConn(name: string): AnySa[] {
    const order = (sa: AnySa): number => this.#order.get(sa) ?? 0;
    return [...(this.#byConn.get(name) ?? [])].sort((a, b) => order(b) - order(a));
  }

  /** Whether some SA of connection `name` satisfies `pred` (stops at the first; no copy). */
  someOfConn(name: string, pred: (sa: AnySa) => boolean): boolean {
    for (const sa of this.#byConn.get(name) ?? []) if (pred(sa)) return true;
    return false;
  }

  /**
   * `sa`'s peer identity was set (or changed): it is filed under it. BaseIkeSa calls this when
   * peerIdentity is set, add() when an SA that already has one (an IKEv2 rekey's) comes in.
   */
  identified(sa: AnySa): void {
    const key = sa.peerIdentity;
    if (key === undefined || this.#identityOf.get(sa) === key) return;
    if (this.#bySpi.get(sa.ourSpi.toString('hex')) !== sa) return;
    unindex(this.#byIdentity, this.#identityOf, sa);
    index(this.#byIdentity, this.#identityOf, sa, key);
  }

  /** The SAs (any state but removed) whose peer authenticated as `identity`, oldest first. */
  withIdentity(identity: string | undefined): AnySa[] {
    if (identity === undefined) return [];
    return [...(this.#byIdentity.get(identity) ?? [])];
  }

  /**
   * `sa` is established or sent INITIAL_CONTACT: filed under its connection's configured identity
   * pair (final by then: a responder picks its connection when the peer authenticates).
   */
  markIds(sa: AnySa): void {
    if (this.#idsOf.has(sa) || this.#bySpi.get(sa.ourSpi.toString('hex')) !== sa) return;
    index(this.#byIds, this.#idsOf, sa, idsKey(sa));
  }

  /** The SAs marked (markIds) with the configured identity pair of `sa`'s connection. */
  withIds(sa: AnySa): AnySa[] {
    return [...(this.#byIds.get(idsKey(sa)) ?? [])];
  }

  /**
   * A responder SA waiting for authentication, under the key of its first message; `unproven`:
   * its peer has not shown yet that it receives at its address (see SaLimits.unproven).
   */
  addHalfOpen(key: string, sa: AnySa, unproven = false): void {
    this.#halfOpen.set(key, { sa, address: sa.remote.address });
    this.#halfOpenKey.set(sa, key);
    this.#byFirst.set(key, sa);
    this.#firstKey.set(sa, key);
    this.#peer(sa.remote.address).halfOpen++;
    if (!unproven) return;
    const address = sa.remote.address;
    this.#unproven.set(sa, address);
    let set = this.#unprovenOf.get(address);
    if (!set) {
      set = new Set();
      this.#unprovenOf.set(address, set);
    }
    set.add(sa);
  }

  halfOpen(key: string): AnySa | undefined {
    return this.#halfOpen.get(key)?.sa;
  }

  /** The responder SA made for the first message under `key`, half-open or not, while it exists. */
  answeredFirst(key: string): AnySa | undefined {
    return this.#byFirst.get(key);
  }

  /** Half-open responder SAs in total, and of one peer address (the cookie thresholds count them). */
  get halfOpenCount(): number {
    return this.#halfOpen.size;
  }

  halfOpenOf(peer: string): number {
    return this.#perPeer.get(peer)?.halfOpen ?? 0;
  }

  get unprovenCount(): number {
    return this.#unproven.size;
  }

  isUnproven(sa: AnySa): boolean {
    return this.#unproven.has(sa);
  }

  /** The peer of `sa` echoed our responder cookie: it receives at its address. */
  proven(sa: AnySa): void {
    const address = this.#unproven.get(sa);
    if (address === undefined) return;
    this.#unproven.delete(sa);
    const set = this.#unprovenOf.get(address);
    set?.delete(sa);
    if (set?.size === 0) this.#unprovenOf.delete(address);
  }

  /**
   * The unproven SAs that must go so that one more from `peer` fits the unproven caps: the peer's
   * oldest when its own cap is reached, else the oldest of all when the total cap is.
   */
  unprovenVictims(peer: string): AnySa[] {
    const l = this.limits;
    const own = this.#unprovenOf.get(peer);
    if (own && own.size >= l.unprovenPerPeer) return oldest(own, own.size - l.unprovenPerPeer + 1);
    if (this.#unproven.size < l.unproven) return [];
    return oldest(this.#unproven.keys(), this.#unproven.size - l.unproven + 1);
  }

  /** The SA authenticated (or went): it no longer counts as half-open. */
  settle(sa: AnySa): void {
    this.proven(sa);
    const k = this.#halfOpenKey.get(sa);
    const v = k === undefined ? undefined : this.#halfOpen.get(k);
    if (k === undefined || v?.sa !== sa) return;
    this.#halfOpen.delete(k);
    this.#halfOpenKey.delete(sa);
    this.#peer(v.address).halfOpen--;
    this.#tidy(v.address);
  }

  /** The peer of `sa` moved (NAT): its per-address counts move with it. */
  moved(sa: AnySa, oldAddress: string): void {
    if (oldAddress === sa.remote.address || this.#bySpi.get(sa.ourSpi.toString('hex')) !== sa) return;
    this.#peer(oldAddress).all--;
    this.#tidy(oldAddress);
    this.#peer(sa.remote.address).all++;
  }

  /** Why a new responder SA from `peer` is refused, or null. */
  overLimit(peer: string): string | null {
    const l = this.limits;
    const p = this.#perPeer.get(peer) ?? { all: 0, halfOpen: 0 };
    // Unproven IKEv1 SAs have their own caps, where the oldest makes room (unprovenVictims): a
    // spoofed flood must not fill the half-open table and lock real peers out. Per source too, so
    // that `unprovenPerPeer` above `halfOpenPerPeer` (a hub's sites behind one address) means what
    // it says instead of refusing at `halfOpenPerPeer` without displacing.
    const halfOpen = this.#halfOpen.size - this.#unproven.size;
    if (halfOpen >= l.halfOpen) return `${halfOpen} half-open IKE SAs in total`;
    const ownHalfOpen = p.halfOpen - (this.#unprovenOf.get(peer)?.size ?? 0);
    if (ownHalfOpen >= l.halfOpenPerPeer) return `${ownHalfOpen} half-open IKE SAs from ${peer}`;
    if (this.#bySpi.size >= l.total) return `${this.#bySpi.size} IKE SAs in total`;
    if (p.all >= l.perPeer) return `${p.all} IKE SAs with ${peer}`;
    return null;
  }

  /**
   * Why a new IKE SA made by rekeying an established one is refused, or null. A rekey adds an SA
   * until the peer DELETEs the old one, so rekeys count against the same bounds as new SAs.
   */
  overLimitRekey(peer: string): string | null {
    const l = this.limits;
    const all = this.#perPeer.get(peer)?.all ?? 0;
    if (this.#bySpi.size >= l.total) return `${this.#bySpi.size} IKE SAs in total`;
    if (all >= l.perPeer) return `${all} IKE SAs with ${peer}`;
    return null;
  }

  /** Why `sa` may not hold one more CHILD_SA pair, or null. */
  overChildLimit(sa: AnySa, pending = 0): string | null {
    const n = sa.children.filter((c) => c.state !== 'deleted').length + pending;
    return n >= this.limits.childrenPerIke ? `${n} CHILD_SA pairs on IKE SA #${sa.serial}` : null;
  }

  setChildOwner(spiIn: number, sa: AnySa): void {
    this.#childOwner.set(spiIn, sa);
  }

  dropChildOwner(spiIn: number): void {
    this.#childOwner.delete(spiIn);
  }

  ownerOf(spiIn: number): AnySa | undefined {
    return this.#childOwner.get(spiIn);
  }

  #peer(address: string): { all: number; halfOpen: number } {
    let p = this.#perPeer.get(address);
    if (!p) {
      p = { all: 0, halfOpen: 0 };
      this.#perPeer.set(address, p);
    }
    return p;
  }

  #tidy(address: string): void {
    const p = this.#perPeer.get(address);
    if (p && p.all <= 0 && p.halfOpen <= 0) this.#perPeer.delete(address);
  }
}

function index(map: Map<string, Set<AnySa>>, of: Map<AnySa, string>, sa: AnySa, key: string): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(sa);
  of.set(sa, key);
}

function unindex(map: Map<string, Set<AnySa>>, of: Map<AnySa, string>, sa: AnySa): void {
  const key = of.get(sa);
  if (key === undefined) return;
  of.delete(sa);
  const set = map.get(key);
  set?.delete(sa);
  if (set?.size === 0) map.delete(key);
}

/** A connection's configured identity pair (IkeCore.wantInitialContact compares SAs by it). */
const idsKey = (sa: AnySa): string => `${sa.conn.localId}\0${sa.conn.remoteId}`;

/** The first `n` of an insertion-ordered collection (n is 1 unless a cap was lowered). */
function oldest(items: Iterable<AnySa>, n: number): AnySa[] {
  const out: AnySa[] = [];
  for (const sa of items) {
    if (out.length >= n) break;
    out.push(sa);
  }
  return out;
}
