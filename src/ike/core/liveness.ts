/**
 * Keeping an IKE SA's path alive and knowing the peer is there, for both protocol versions:
 *
 * - Dead peer detection (RFC 7296 §2.4, RFC 3706): when nothing authenticated has arrived from the
 *   peer for `delay`, the protocol's liveness check asks whether it still holds the IKE SA. Without
 *   an answer within `timeout` (or once the retransmissions are spent) the peer is dead. Inbound ESP
 *   does not count, so an idle IKE SA is probed even while its CHILD_SAs carry traffic.
 * - NAT keep-alives (RFC 3948 §2.3): behind a NAT, a one-byte keep-alive when nothing else went out
 *   for `interval`, so the NAT mapping for port 4500 never expires.
 */
import type { IkeTransport } from '../transport.js';
import type { Clock } from './clock.js';
import type { AnySa, IkeProtocol } from './protocol.js';

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
): void {
  let probing = false;
  const check = (): void => {
    if (sa.phase !== 'established' || probing) return;
    const idle = clock.now() - sa.lastReceived;
    if (idle < s.delay) {
      sa.timers.set(s.delay - idle, check);
      return;
    }
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
  sa.timers.set(s.delay, check);
}

export function startKeepalives(sa: AnySa, transport: IkeTransport, clock: Clock, interval: number): void {
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
  sa.timers.set(interval, tick);
}
