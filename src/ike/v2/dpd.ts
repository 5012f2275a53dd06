/**
 * Dead peer detection (RFC 7296 §2.4): when nothing has arrived from the peer for `delay`, an empty
 * INFORMATIONAL asks whether it still holds the IKE SA. The request is retransmitted with the SA's
 * exponential backoff; without an answer within `timeout` (or once the retransmissions are spent,
 * whichever comes first) the peer is declared dead.
 *
 * "Arrived" means a valid, authenticated IKE message (the manager stamps `lastReceived`); inbound
 * ESP does not count yet, so an idle IKE SA is probed even while its CHILD_SAs carry traffic.
 */
import type { IkeSa } from './ike-sa.js';
import { sendLiveness } from './info.js';

export interface DpdSettings {
  /** ms without anything received before a probe. */
  delay: number;
  /** ms a probe may stay unanswered before the peer is dead. */
  timeout: number;
}

export function startDpd(sa: IkeSa, s: DpdSettings, onDead: (detail: string) => void): void {
  let probing = false;
  const check = (): void => {
    if (sa.phase !== 'established' || probing) return;
    const idle = Date.now() - sa.lastReceived;
    if (idle < s.delay) {
      sa.setTimer(s.delay - idle, check);
      return;
    }
    probing = true;
    sa.debug(`DPD: nothing from the peer for ${idle} ms, checking liveness`);
    let over = false;
    const finish = (alive: boolean, detail: string): void => {
      if (over) return;
      over = true;
      sa.clearTimer(deadline);
      probing = false;
      if (alive) check();
      else if (sa.phase !== 'dead') onDead(detail);
    };
    const deadline = sa.setTimer(s.timeout, () => finish(false, `no answer to DPD within ${s.timeout} ms`));
    sendLiveness(
      sa,
      () => finish(true, ''),
      () => finish(false, 'DPD request retransmissions exhausted'),
    );
  };
  sa.setTimer(s.delay, check);
}
