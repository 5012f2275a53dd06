/**
 * A fake clock and a fixed-jitter randomness for exchange tests: timers fire when the test
 * advances time, so DPD, lifetimes, backoff and retransmission run in exact, production-sized
 * steps in a few milliseconds of real time. The network (FakeNetwork) still delivers on the real
 * event loop, so `advance` lets it run between timers.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, Random, TimerHandle } from '../../src/ike/core/clock.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  #now = 1_000_000;
  #next = 1;
  readonly #timers = new Map<number, Timer>();

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.#next++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return { id };
  }

  clearTimer(t: TimerHandle | undefined): void {
    if (t) this.#timers.delete(t.id);
  }

  /** Lets datagrams in flight and the promise chains they start run to quiet. */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  }

  /** Moves time forward by `ms`, firing every timer due on the way in order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await this.settle();
    for (;;) {
      let due: Timer | undefined;
      for (const t of this.#timers.values()) if (t.at <= end && (!due || t.at < due.at)) due = t;
      if (!due) break;
      this.#timers.delete(due.id);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
      await this.settle();
    }
    this.#now = end;
  }

  /** Advances in steps of `step` ms until `pred` holds; returns the time it took (fake ms). */
  async until(pred: () => boolean, limit: number, step = 10): Promise<number> {
    const start = this.#now;
    await this.settle();
    while (!pred()) {
      if (this.#now - start >= limit) throw new Error(`condition not reached within ${limit} fake ms`);
      await this.advance(step);
    }
    return this.#now - start;
  }
}

/** Real random bytes (keys, nonces, SPIs) but no jitter: float() is always `f`. */
export function fixedJitter(f = 0): Random {
  return { bytes: (n) => randomBytes(n), float: () => f };
}
