/**
 * Event loop lag of the process (perf_hooks.monitorEventLoopDelay): how late timers and I/O
 * callbacks run. Everything twinsecd does (IKE, DPD, lifetimes, control and metrics requests) is on
 * the one loop, so with many tunnels this is the number that says whether the daemon keeps up: a
 * status or scrape that takes 200 ms, or a burst of rekeys, shows here as lag for everything else.
 *
 * The histogram covers a window of WINDOW_MS and is then reset; `read()` gives the last complete
 * window (the current one before the first completes), so the figures are recent, not averaged over
 * the process's life. One monitor serves every daemon of the process (the tests run several): the
 * loop is the process's, and each monitor costs a timer of its own.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Length of one measuring window. */
export const WINDOW_MS = 10_000;
/** Sampling resolution of the monitor (ms): lag below it does not register. */
const RESOLUTION_MS = 10;

export interface LoopLag {
  /** Seconds, over the window: median, 99th percentile, maximum. */
  p50: number;
  p99: number;
  max: number;
  /** Length of the window the figures cover (s). */
  window: number;
}

let histogram: IntervalHistogram | undefined;
let timer: NodeJS.Timeout | undefined;
let users = 0;
let last: LoopLag | undefined;
let windowStart = 0;

const ns = (v: number): number => (Number.isFinite(v) ? v / 1e9 : 0);

function snapshot(h: IntervalHistogram, seconds: number): LoopLag {
  // The monitor's samples include its own resolution (a timer due every RESOLUTION_MS that ran on
  // time reads as RESOLUTION_MS): subtract it, so an idle loop reads about 0.
  const lag = (v: number): number => Math.max(0, ns(v) - RESOLUTION_MS / 1000);
  if (h.count === 0) return { p50: 0, p99: 0, max: 0, window: seconds };
  return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max), window: seconds };
}

/** Starts measuring (once per process); returns the stop function of this user. */
export function watchLoopLag(): () => void {
  users++;
  if (!histogram) {
    histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    histogram.enable();
    windowStart = Date.now();
    timer = setInterval(() => {
      const h = histogram!;
      last = snapshot(h, (Date.now() - windowStart) / 1000);
      h.reset();
      windowStart = Date.now();
    }, WINDOW_MS);
    timer.unref();
  }
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--users > 0) return;
    clearInterval(timer);
    histogram?.disable();
    histogram = undefined;
    timer = undefined;
    last = undefined;
  };
}

/** The last complete window, or the current one before any completed; undefined when not watching. */
export function loopLag(): LoopLag | undefined {
  if (!histogram) return undefined;
  return last ?? snapshot(histogram, (Date.now() - windowStart) / 1000);
}
