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
}

export const DEFAULT_LIMITS: SaLimits = {
  halfOpenPerPeer: 16,
  halfOpen: 1024,
  perPeer: 64,
  total: 8192,
  childrenPerIke: 16,
};

type AnySa = BaseIkeSa<unknown>;

export class SaTable {
  readonly limits: SaLimits;
  readonly #bySpi = new Map<string, AnySa>();
  readonly #halfOpen = new Map<string, { sa: AnySa; address: string }>();
  readonly #halfOpenKey = new WeakMap<AnySa, string>();
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
    const p = this.#peer(sa.remote.address);
    p.all--;
    this.#tidy(sa.remote.address);
    for (const c of sa.children) if (this.#childOwner.get(c.spiIn) === sa) this.#childOwner.delete(c.spiIn);
  }

  /** A responder SA waiting for authentication, under the key of its first message. */
  addHalfOpen(key: string, sa: AnySa): void {
    this.#halfOpen.set(key, { sa, address: sa.remote.address });
    this.#halfOpenKey.set(sa, key);
    this.#peer(sa.remote.address).halfOpen++;
  }

  halfOpen(key: string): AnySa | undefined {
    return this.#halfOpen.get(key)?.sa;
  }

  /** The SA authenticated (or went): it no longer counts as half-open. */
  settle(sa: AnySa): void {
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
    if (this.#halfOpen.size >= l.halfOpen) return `${this.#halfOpen.size} half-open IKE SAs in total`;
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
  overChildLimit(sa: AnySa): string | null {
    const n = sa.children.filter((c) => c.state !== 'deleted').length;
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
