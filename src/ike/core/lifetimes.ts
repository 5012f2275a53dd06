/**
 * SA lifetimes (RFC 7296 §2.8; RFC 2409 §4.5 for IKEv1): every IKE SA and CHILD_SA is rekeyed by
 * us at a soft limit of REKEY_AT + random(0..REKEY_JITTER) of its configured lifetime (80-90 %: the
 * jitter makes it unlikely that both peers rekey the same SA at once), or at the configured
 * rekeyTime minus up to 10 %, and deleted at the hard limit, the lifetime itself, if it is still
 * there. A failed rekey is tried once more after RETRY_AT of the lifetime.
 *
 * CHILD_SAs also have volume limits (esp.lifePackets / lifeBytes, and without ESN the 32-bit
 * sequence space, RFC 4303 §3.3.3): the data plane counts, and when a pair crosses its soft mark
 * (VOLUME_REKEY_AT of the limit) or reaches the limit it reports it (DataPlane.onSaLimit), which
 * lands in volumeSoft / volumeHard here and takes the same path as the time limits, only earlier.
 */
import type { EspParams } from '../../config/types.js';
import type { SaVolumeLimits } from '../../dataplane/types.js';
import type { EventBus } from '../../events.js';
import type { Clock, Random, TimerHandle } from './clock.js';
import type { AnySa, IkeProtocol, Timing } from './protocol.js';
import { spiHex } from './view.js';

const REKEY_AT = 0.8;
const REKEY_JITTER = 0.1;
const RETRY_AT = 0.03;
/** Soft limit of a CHILD_SA whose shorter lifetime the peer chose: 95-98 % of it. */
const PEER_FIRST_AT = 0.95;
const PEER_FIRST_JITTER = 0.03;

/** Soft mark of a configured volume limit: strongSwan's rekey_packets/_bytes below life_*. */
export const VOLUME_REKEY_AT = 0.9;

/**
 * The data plane's limits for a pair of this connection (ChildSaSpec.limits), or nothing when none
 * is configured: the soft mark at VOLUME_REKEY_AT of lifePackets / lifeBytes, the hard limit at
 * the value itself. The data plane adds its own non-ESN sequence limit (RFC 4303 §3.3.3) either way.
 */
export function childVolumeLimits(esp: EspParams): { limits?: SaVolumeLimits } {
  const limits: SaVolumeLimits = {};
  if (esp.lifePackets !== undefined) {
    limits.softPackets = Math.floor(esp.lifePackets * VOLUME_REKEY_AT);
    limits.hardPackets = esp.lifePackets;
  }
  if (esp.lifeBytes !== undefined) {
    limits.softBytes = Math.floor(esp.lifeBytes * VOLUME_REKEY_AT);
    limits.hardBytes = esp.lifeBytes;
  }
  return Object.keys(limits).length > 0 ? { limits } : {};
}

/** A CHILD_SA lifetime the peers negotiated (IKEv1): seconds, and whether the peer chose it. */
export interface ChildLifetime {
  seconds: number;
  peerFirst?: boolean;
}

export interface LifetimeHost {
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly random: Random;
  readonly timing: Timing;
  stopped(): boolean;
  protocol(sa: AnySa): IkeProtocol;
  ownerOf(spiIn: number): AnySa | undefined;
  /** The IKE SA's hard limit (or its last CHILD_SA's): DELETE, forget, negotiate again. */
  ikeHard(sa: AnySa, reason: string): void;
  removeChild(sa: AnySa, spiIn: number, reason: string): void;
}

interface ChildLife {
  soft?: TimerHandle;
  hard?: TimerHandle;
  /** The one retry after a failed rekey has been used. */
  retried: boolean;
  /** The peer chose the (shorter) lifetime: its DELETE of a replaced pair is waited for a moment. */
  peerFirst?: boolean;
}

/** How long past the hard limit a replaced pair waits for the DELETE of the peer that chose it. */
const PEER_DELETE_GRACE = 0.1;

export class Lifetimes {
  readonly #h: LifetimeHost;
  /** Per CHILD_SA (our inbound SPI): kept here, not on the IKE SA, since an IKE SA rekey moves children. */
  readonly #child = new Map<number, ChildLife>();
  /** IKE SAs with an IKE SA rekey of ours in flight: CHILD_SA rekeys wait for it. */
  readonly #ikeRekeying = new WeakSet<AnySa>();

  constructor(host: LifetimeHost) {
    this.#h = host;
  }

  #softDelay(life: number, rekey?: number): number {
    const j = this.#h.random.float() * REKEY_JITTER;
    return rekey !== undefined ? rekey * (1 - j) : life * (REKEY_AT + j);
  }

  #unit(s: number | undefined): number | undefined {
    return s === undefined ? undefined : s * this.#h.timing.lifetimeUnit;
  }

  /* ------------------------------------------------------------ IKE SA */

  armIke(sa: AnySa): void {
    const [life, rekey] = this.#limits(sa.conn.ike, sa.negotiatedLifetime);
    sa.timers.set(this.#softDelay(life, rekey), () => this.#ikeSoft(sa, false));
    sa.timers.set(life, () => this.#h.ikeHard(sa, 'IKE SA lifetime expired'));
  }

  /**
   * Hard limit and configured soft limit (ms). An IKEv1 lifetime is negotiated (RFC 2407 §4.5,
   * §4.6.3.1 RESPONDER-LIFETIME): when it is shorter than ours, it is the hard limit, and a
   * configured rekeyTime that no longer fits gives way to the 80-90 % rule.
   */
  #limits(
    c: { lifetime: number; rekeyTime?: number },
    negotiated: number | undefined,
  ): [number, number | undefined] {
    const seconds =
      negotiated !== undefined && negotiated > 0 ? Math.min(negotiated, c.lifetime) : c.lifetime;
    const rekey = c.rekeyTime !== undefined && c.rekeyTime < seconds ? c.rekeyTime : undefined;
    return [this.#unit(seconds)!, this.#unit(rekey)];
  }

  /** Soft limit of an IKE SA: rekey it (after any exchange in flight), one retry on failure. */
  #ikeSoft(sa: AnySa, retried: boolean): void {
    if (this.#h.stopped() || sa.phase !== 'established') return;
    const retry = this.#unit(sa.conn.ike.lifetime)! * RETRY_AT;
    const proto = this.#h.protocol(sa);
    if (proto.busy(sa)) {
      // Window size 1: a CHILD_SA rekey (or DPD) is in flight; do not interleave with it.
      sa.timers.set(retry, () => this.#ikeSoft(sa, retried));
      return;
    }
    sa.debug('IKE SA reached its soft lifetime, rekeying');
    this.#ikeRekeying.add(sa);
    proto.rekeyIke(sa).then(
      () => this.#ikeRekeying.delete(sa),
      (err: Error & { reason?: string }) => {
        this.#ikeRekeying.delete(sa);
        if (err.reason === 'sa_gone') return;
        this.#h.bus.emit('ike-failure', {
          connection: sa.name,
          reason: err.reason ?? 'error',
          detail: err.message,
        });
        if (!retried && sa.phase === 'established') sa.timers.set(retry, () => this.#ikeSoft(sa, true));
      },
    );
  }

  isRekeying(sa: AnySa): boolean {
    return this.#ikeRekeying.has(sa);
  }

  /* ------------------------------------------------------------ CHILD_SA */

  /**
   * `negotiated`: the CHILD_SA's lifetime as the peers agreed it (IKEv1), if any. When the peer
   * asked for a shorter one than ours (`peerFirst`: it initiated with that offer), the peer is
   * expected to rekey first, as strongSwan does at 90 % at the latest: our own soft limit then
   * waits until PEER_FIRST_AT, so the two do not race; the hard limit stays the agreed one.
   */
  armChild(sa: AnySa, spiIn: number, negotiated?: ChildLifetime): void {
    const [life, rekey] = this.#limits(sa.conn.esp, negotiated?.seconds);
    const peerFirst = negotiated?.peerFirst === true && negotiated.seconds < sa.conn.esp.lifetime;
    const soft = peerFirst
      ? life * (PEER_FIRST_AT + this.#h.random.float() * PEER_FIRST_JITTER)
      : this.#softDelay(life, rekey);
    this.#child.set(spiIn, { retried: false, peerFirst });
    this.#childTimer(spiIn, 'soft', soft, () => this.#childSoft(spiIn));
    this.#childTimer(spiIn, 'hard', life, () => this.#childHard(spiIn));
  }

  forgetChild(spiIn: number): void {
    const life = this.#child.get(spiIn);
    this.#h.clock.clearTimer(life?.soft);
    this.#h.clock.clearTimer(life?.hard);
    this.#child.delete(spiIn);
  }

  #childTimer(spiIn: number, which: 'soft' | 'hard', ms: number, fn: () => void): void {
    const life = this.#child.get(spiIn);
    if (!life) return;
    this.#h.clock.clearTimer(life[which]);
    life[which] = this.#h.clock.setTimer(ms, () => {
      life[which] = undefined;
      fn();
    });
  }

  /**
   * The data plane counted the CHILD_SA installed under spiIn past its soft packet/byte mark:
   * rekey it now (RFC 7296 §2.8), the way its soft lifetime would have. Nothing when its soft limit
   * already ran (a rekey of ours under way, or its one retry used) or it is not ours any more.
   */
  volumeSoft(spiIn: number): void {
    const life = this.#child.get(spiIn);
    if (!life || life.soft === undefined) return;
    this.#h.clock.clearTimer(life.soft);
    life.soft = undefined;
    this.#childSoft(spiIn, 'its soft packet/byte limit');
  }

  /**
   * The CHILD_SA installed under spiIn reached its hard packet/byte limit (or, without ESN, the end
   * of its sequence numbers, RFC 4303 §3.3.3): the data plane drops its packets, so it goes now as
   * at its hard lifetime.
   */
  volumeHard(spiIn: number): void {
    const life = this.#child.get(spiIn);
    if (!life) return;
    this.#h.clock.clearTimer(life.hard);
    life.hard = undefined;
    life.peerFirst = false; // no grace for the peer's DELETE: the pair carries nothing any more
    this.#childHard(spiIn, 'CHILD_SA packet/byte limit reached');
  }

  /** Soft limit of a CHILD_SA: rekey it unless the peer already did; one retry on failure. */
  #childSoft(spiIn: number, what = 'its soft lifetime'): void {
    const sa = this.#h.ownerOf(spiIn);
    const child = sa?.child(spiIn);
    const life = this.#child.get(spiIn);
    if (
      this.#h.stopped() ||
      !sa ||
      !child ||
      !life ||
      child.state !== 'installed' ||
      sa.phase !== 'established'
    )
      return;
    const retry = this.#unit(sa.conn.esp.lifetime)! * RETRY_AT;
    if (this.#ikeRekeying.has(sa)) {
      // The children are about to move to the new IKE SA: rekey there.
      this.#childTimer(spiIn, 'soft', retry, () => this.#childSoft(spiIn));
      return;
    }
    sa.debug(`CHILD_SA ${spiHex(spiIn)} reached ${what}, rekeying`);
    this.#h
      .protocol(sa)
      .rekeyChild(sa, child)
      .catch((err: Error & { reason?: string }) => {
        if (err.reason === 'sa_gone') return;
        this.#h.bus.emit('ike-failure', {
          connection: sa.name,
          reason: err.reason ?? 'error',
          detail: err.message,
        });
        if (life.retried || !this.#child.has(spiIn)) return;
        life.retried = true;
        this.#childTimer(spiIn, 'soft', retry, () => this.#childSoft(spiIn));
      });
  }

  /**
   * Hard limit of a CHILD_SA: out of the data plane and DELETE to the peer. When it was the IKE
   * SA's last CHILD_SA, the IKE SA goes too (an initiating connection starts over).
   */
  #childHard(spiIn: number, reason = 'CHILD_SA lifetime expired'): void {
    const sa = this.#h.ownerOf(spiIn);
    if (!sa) return this.forgetChild(spiIn);
    // The IKE SA's last CHILD_SA, and none replaced it: negotiate everything anew. A replaced one
    // (its successor may live on another IKE SA, an IKEv1 re-authentication) just goes.
    const replaced = sa.child(spiIn)?.state === 'rekeyed';
    const life = this.#child.get(spiIn);
    if (replaced && life?.peerFirst) {
      // Both sides' timers end at about the same moment; the peer that chose the lifetime
      // DELETEs its replaced pair itself (strongSwan does), so wait a little for that DELETE
      // rather than cross it with ours. The pair carries nothing: its successor is in use.
      life.peerFirst = false;
      const grace = Math.min(2000, this.#unit(sa.conn.esp.lifetime)! * PEER_DELETE_GRACE);
      return this.#childTimer(spiIn, 'hard', grace, () => this.#childHard(spiIn));
    }
    if (!replaced && sa.children.length === 1 && sa.phase === 'established')
      return this.#h.ikeHard(sa, reason);
    sa.debug(`CHILD_SA ${spiHex(spiIn)}: ${reason}, deleting it`);
    this.#h.removeChild(sa, spiIn, reason);
    if (sa.phase === 'established') void this.#h.protocol(sa).deleteChildren(sa, [spiIn]);
  }
}
