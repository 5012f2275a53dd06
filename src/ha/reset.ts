/**
 * Resetting a connection whose health check keeps failing while its SA claims to be established
 * (the seed's cloud gateway does the same): a peer that rebooted without DPD, or a NAT that lost
 * its mapping, leaves an SA that looks fine on our side and carries nothing. Deleting it (the peer
 * is told, in case it still knows it) and negotiating again recovers, where waiting never would.
 *
 * The wait is `resetAfter` seconds of continuous failure on an established SA; each further reset
 * before the check passes again waits twice as long as the one before, up to RESET_BACKOFF_CAP times
 * `resetAfter` (and at most MAX_RESET_WAIT), so a path that stays dead is not hammered. A passing
 * check starts over. While no SA is established nothing is counted: the IKE side's own
 * re-initiation backoff is at work then.
 */
import { backoff, type Clock, type Random, type TimerHandle } from '../ike/core/clock.js';

/** The longest wait between resets, as a multiple of `resetAfter`. */
export const RESET_BACKOFF_CAP = 16;
/** ... and in absolute terms (ms), unless `resetAfter` itself is longer. */
export const MAX_RESET_WAIT = 3_600_000;

export interface ResetEvent {
  connection: string;
  /** Seconds the check had failed on the established SA. */
  failedSeconds: number;
  /** Resets since the check last passed, this one included. */
  attempt: number;
  /** Seconds of failure the next reset will wait for, should the check keep failing. */
  nextAfterSeconds: number;
}

export interface ResetOptions {
  clock: Clock;
  random: Random;
  /** Deletes the connection's SAs and negotiates again (or waits for the peer). */
  reset: (connection: string) => void;
  onReset: (e: ResetEvent) => void;
}

interface State {
  /** When the check started failing on an established SA (ms), or undefined. */
  failingSince?: number;
  /** Resets since the check last passed. */
  attempt: number;
  timer?: TimerHandle;
  total: number;
}

export class Resetter {
  readonly #o: ResetOptions;
  readonly #state = new Map<string, State>();

  constructor(o: ResetOptions) {
    this.#o = o;
  }

  /** Resets of `connection` since the daemon (or the HA layer, after a reload) started. */
  resets(connection: string): number {
    return this.#state.get(connection)?.total ?? 0;
  }

  /**
   * The connection's state changed (HaController.update): `saUp` an established SA with a CHILD_SA,
   * `healthy` its check passing. `resetAfter` in seconds, 0 disables.
   */
  observe(connection: string, resetAfter: number, saUp: boolean, healthy: boolean): void {
    const s = this.#state.get(connection) ?? { attempt: 0, total: 0 };
    this.#state.set(connection, s);
    if (resetAfter <= 0 || !saUp || healthy) {
      this.#o.clock.clearTimer(s.timer);
      s.timer = undefined;
      s.failingSince = undefined;
      if (healthy && saUp) s.attempt = 0;
      return;
    }
    if (s.failingSince !== undefined) return;
    const now = this.#o.clock.now();
    s.failingSince = now;
    const wait = this.#wait(resetAfter, s.attempt);
    s.timer = this.#o.clock.setTimer(wait, () => {
      s.timer = undefined;
      const since = s.failingSince;
      if (since === undefined) return;
      s.failingSince = undefined;
      s.attempt++;
      s.total++;
      this.#o.onReset({
        connection,
        failedSeconds: Math.round((this.#o.clock.now() - since) / 100) / 10,
        attempt: s.attempt,
        nextAfterSeconds: Math.round(this.#wait(resetAfter, s.attempt, false) / 100) / 10,
      });
      this.#o.reset(connection);
    });
  }

  /**
   * The first reset waits exactly `resetAfter`; later ones double it (capped), with up to 10 %
   * added so that two gateways resetting the same dead path do not keep doing it in step.
   */
  #wait(resetAfter: number, attempt: number, jitter = true): number {
    const base = resetAfter * 1000;
    if (attempt === 0) return base;
    const max = Math.max(base, Math.min(base * RESET_BACKOFF_CAP, MAX_RESET_WAIT));
    return backoff(this.#o.random, attempt, { base, factor: 2, max, jitter: jitter ? 0.1 : 0 });
  }

  stop(): void {
    for (const s of this.#state.values()) this.#o.clock.clearTimer(s.timer);
  }
}
