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
   * 6,500 spoofed messages a second). Proven SAs are never displaced, and unproven ones do not
   * count against `halfOpen`. Per source: strongSwan's block_threshold (5).
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
    // Unproven IKEv1 SAs have their own cap, where the oldest makes room (unprovenVictims): a
    // spoofed flood must not fill the half-open table and lock real peers out.
    const halfOpen = this.#halfOpen.size - this.#unproven.size;
    if (halfOpen >= l.halfOpen) return `${halfOpen} half-open IKE SAs in total`;
    if (p.halfOpen >= l.halfOpenPerPeer) return `${p.halfOpen} half-open IKE SAs from ${peer}`;
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

/** The first `n` of an insertion-ordered collection (n is 1 unless a cap was lowered). */
function oldest(items: Iterable<AnySa>, n: number): AnySa[] {
  const out: AnySa[] = [];
  for (const sa of items) {
    if (out.length >= n) break;
    out.push(sa);
  }
  return out;
}
