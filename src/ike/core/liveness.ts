/**
 * Keeping an IKE SA's path alive and knowing the peer is there, for both protocol versions:
 *
 * - Dead peer detection (RFC 7296 §2.4, RFC 3706): when nothing authenticated has arrived from the
 *   peer for `delay`, the protocol's liveness check asks whether it still holds the IKE SA. Without
 *   an answer within `timeout` (or once the retransmissions are spent) the peer is dead. Inbound ESP
 *   does not count, so an idle IKE SA is probed even while its CHILD_SAs carry traffic.
 * - NAT keep-alives (RFC 3948 §2.3): behind a NAT, a one-byte keep-alive when nothing else went out
 *   for `interval`, so the NAT mapping for port 4500 never expires.
 *
 * Both are jittered. A hub whose thousands of peers came up within seconds (a restart, a network
 * coming back) would otherwise probe all of them in the same few event-loop ticks, once per `delay`,
 * for as long as they live: a burst of INFORMATIONAL exchanges (and of answers to wait for) instead
 * of a steady trickle. Each DPD check waits for up to DPD_JITTER less than `delay` (never more: the
 * configured delay stays the longest a dead peer goes unnoticed before its probe), drawn anew each
 * time, so the probes spread at once and keep drifting apart; the first keep-alive is likewise
 * drawn within its interval, and later ones keep that phase.
 */
import type { IkeTransport } from '../transport.js';
import type { Clock, Random } from './clock.js';
import type { AnySa, IkeProtocol } from './protocol.js';

/** A DPD check probes after `delay` minus up to this fraction of it without anything received. */
export const DPD_JITTER = 0.2;
/** The first NAT keep-alive check: `interval` minus up to this fraction of it. */
export const KEEPALIVE_JITTER = 0.5;

export interface DpdSettings {
  /** ms without anything received before a probe. */
  delay: number;
  /** ms a probe may stay unanswered before the peer is dead. */
  timeout: number;
}

export function startDpd(
  sa: AnySa,
  proto: IkeProtocol,
  clock: Clock,
  s: DpdSettings,
  onDead: (detail: string) => void,
  random?: Random,
): void {
  let probing = false;
  // Idle time that makes the next probe: drawn once per probe, so rescheduling while traffic
  // arrives keeps aiming at the same instant (relative to the last message received).
  const draw = (): number => s.delay * (1 - (random?.float() ?? 0) * DPD_JITTER);
  let threshold = draw();
  const check = (): void => {
    if (sa.phase !== 'established' || probing) return;
    const idle = clock.now() - sa.lastReceived;
    if (idle < threshold) {
      sa.timers.set(threshold - idle, check);
      return;
    }
    threshold = draw();
    probing = true;
    sa.debug(`DPD: nothing from the peer for ${idle} ms, checking liveness`);
    let over = false;
    const finish = (alive: boolean, detail: string): void => {
      if (over) return;
      over = true;
      sa.timers.clear(deadline);
      probing = false;
      if (alive) check();
      else if (sa.phase !== 'dead') onDead(detail);
    };
    const deadline = sa.timers.set(s.timeout, () => finish(false, `no answer to DPD within ${s.timeout} ms`));
    proto.liveness(sa).then(
      (alive) => finish(alive, 'DPD request retransmissions exhausted'),
      () => finish(false, 'DPD request failed'),
    );
  };
  sa.timers.set(threshold, check);
}

export function startKeepalives(
  sa: AnySa,
  transport: IkeTransport,
  clock: Clock,
  interval: number,
  random?: Random,
): void {
  const tick = (): void => {
    if (sa.phase !== 'established') return;
    const idle = clock.now() - sa.lastSent;
    if (idle >= interval) {
      transport.sendKeepalive(sa.local, sa.remote);
      sa.timers.set(interval, tick);
      // Something went out meanwhile: the next check is `interval` after it, not a whole interval
      // from now, so the path is never silent for up to twice the interval (RFC 3948 §4).
    } else sa.timers.set(interval - idle, tick);
  };
  sa.timers.set(interval * (1 - (random?.float() ?? 0) * KEEPALIVE_JITTER), tick);
}
