/**
 * Time and randomness, injected: protocol code never reads Date.now, setTimeout or Math.random
 * itself, so DPD, lifetimes, backoff and retransmission run on a fake clock in the exchange tests
 * (test/exchange/fake-clock.ts) as they do on the real one.
 */
import { randomBytes, randomFillSync } from 'node:crypto';

export type TimerHandle = { readonly id: number };

export interface Clock {
  /** Milliseconds, monotonic enough for timeouts (Date.now on the real clock). */
  now(): number;
  /**
   * Runs `fn` once after `ms`. It does not keep the process alive unless `keepAlive` (a bounded
   * wait that must finish, e.g. shutdown waiting for the peers' DELETE answers).
   */
  setTimer(ms: number, fn: () => void, keepAlive?: boolean): TimerHandle;
  clearTimer(t: TimerHandle | undefined): void;
}

export interface Random {
  bytes(n: number): Buffer;
  /** Uniform in [0, 1): jitter only, never keys. */
  float(): number;
}

/** setTimeout's limit; longer delays (lifetimes up to a year) are waited for in steps. */
const MAX_TIMEOUT = 2 ** 31 - 1;

export const systemClock: Clock = (() => {
  let next = 1;
  const live = new Map<number, NodeJS.Timeout>();
  const arm = (id: number, ms: number, fn: () => void, keepAlive: boolean): void => {
    const step = Math.min(Math.max(ms, 0), MAX_TIMEOUT);
    const t = setTimeout(() => {
      if (ms > MAX_TIMEOUT) return arm(id, ms - MAX_TIMEOUT, fn, keepAlive);
      live.delete(id);
      fn();
    }, step);
    if (!keepAlive) t.unref();
    live.set(id, t);
  };
  return {
    now: () => Date.now(),
    setTimer(ms, fn, keepAlive = false) {
      const id = next++;
      arm(id, ms, fn, keepAlive);
      return { id };
    },
    clearTimer(t) {
      if (!t) return;
      clearTimeout(live.get(t.id));
      live.delete(t.id);
    },
  };
})();

/**
 * Random bytes handed out from a 4 KiB block refilled from the CSPRNG: a responder draws SPIs,
 * nonces and IVs a few bytes at a time, and each randomBytes() call costs ~5 us of fixed overhead
 * (a quarter of a setup's draws at 1,000 SAs/s). Each byte is handed out once, and wiped from the
 * block as it goes.
 */
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let poolAt = POOL_SIZE;

function pooledBytes(n: number): Buffer {
  if (n > POOL_SIZE / 4) return randomBytes(n);
  if (poolAt + n > POOL_SIZE) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  pool.fill(0, poolAt, poolAt + n);
  poolAt += n;
  return out;
}

export const systemRandom: Random = {
  bytes: pooledBytes,
  float: () => Math.random(),
};

/**
 * The timers of one owner (an IKE SA, a connection): all of them go with `stop()`, so nothing
 * fires for an SA that is gone.
 */
export class Timers {
  readonly #clock: Clock;
  readonly #live = new Set<TimerHandle>();
  constructor(clock: Clock) {
    this.#clock = clock;
  }
  set(ms: number, fn: () => void): TimerHandle {
    const h = this.#clock.setTimer(ms, () => {
      this.#live.delete(h);
      fn();
    });
    this.#live.add(h);
    return h;
  }
  clear(t: TimerHandle | undefined): void {
    if (!t) return;
    this.#clock.clearTimer(t);
    this.#live.delete(t);
  }
  stop(): void {
    for (const t of this.#live) this.#clock.clearTimer(t);
    this.#live.clear();
  }
}

/**
 * The one backoff: base * factor^attempt, capped, with `jitter` (a fraction) spread so peers that
 * lost the same packet do not retry in step. Used for IKE retransmission and re-initiation.
 */
export function backoff(
  r: Random,
  attempt: number,
  o: { base: number; factor: number; max?: number; jitter: number; centred?: boolean },
): number {
  const raw = Math.min(o.max ?? Number.POSITIVE_INFINITY, o.base * o.factor ** attempt);
  const spread = o.centred ? 1 - o.jitter / 2 + r.float() * o.jitter : 1 + r.float() * o.jitter;
  return raw * spread;
}
