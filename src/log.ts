/**
 * Logging: pino to stderr, human-readable on a terminal and JSON lines otherwise (journald,
 * docker, log shippers). State changes reach the log only through the event bus (events.ts).
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config/types.js';
import type { EventBus } from './events.js';
import { spiHex } from './ike/core/view.js';

export type { Logger } from 'pino';
export type LogLevel = Config['log']['level'];

export interface LoggerOptions {
  /** Force pretty (true) or JSON (false) output; default: pretty iff stderr is a TTY. */
  pretty?: boolean;
  /** Where to write (default stderr); tests pass a capture stream. */
  destination?: DestinationStream;
}

export function createLogger(level: LogLevel, opts: LoggerOptions = {}): Logger {
  const usePretty = opts.pretty ?? process.stderr.isTTY === true;
  // Both streams are synchronous: no worker thread, and nothing is lost on process.exit().
  const stream: DestinationStream = usePretty
    ? pretty({
        sync: true,
        destination: opts.destination ?? 2,
        colorize: opts.destination === undefined && process.stderr.isTTY === true,
        translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
        // Event messages are self-contained; their fields are for JSON consumers. Errors still show.
        hideObject: true,
        ignore: 'pid,hostname',
      })
    : (opts.destination ?? pino.destination({ dest: 2, sync: true }));
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: the PSK Buffer already serialises as "[redacted]" (config/load.ts).
      redact: {
        paths: ['psk', '*.psk', 'connections.*.psk', 'config.connections.*.psk'],
        censor: '[redacted]',
      },
    },
    stream,
  );
}

/** Same SPI spelling as `twinsec status` (8 lowercase hex digits) so log lines and status correlate. */
const hex = spiHex;

export interface EventLoggingOptions {
  /**
   * Lines per second and reason for the events anyone on the network can cause (dropped
   * datagrams, failed negotiations: an unauthenticated peer can send junk at line rate). Beyond it
   * lines are counted, and one summary line per reason says how many were left out. Default 10.
   */
  perSecond?: number;
  /** ms clock (tests). */
  now?: () => number;
}

/**
 * At most `perSecond` lines per key and one-second window (security issue #11: an unauthenticated
 * peer must not be able to fill the disk or drown the log). The count of lines left out is logged
 * once the window is over: with the next line of that key, by a timer, or on detach.
 */
class LogLimiter {
  readonly #perSecond: number;
  readonly #now: () => number;
  readonly #summary: (key: string, suppressed: number) => void;
  readonly #windows = new Map<string, { start: number; count: number; suppressed: number }>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(perSecond: number, now: () => number, summary: (key: string, suppressed: number) => void) {
    this.#perSecond = perSecond;
    this.#now = now;
    this.#summary = summary;
  }

  /** Whether a line for `key` may go out now. */
  allow(key: string): boolean {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (w && now - w.start >= 1000) {
      this.#flush(key);
      w = undefined;
    }
    if (!w) {
      w = { start: now, count: 0, suppressed: 0 };
      this.#windows.set(key, w);
    }
    if (w.count < this.#perSecond) {
      w.count++;
      return true;
    }
    if (w.suppressed++ === 0) {
      // Say how many were left out even if nothing more arrives for this key.
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#windows.get(key) === w) this.#flush(key);
      }, 1000);
      timer.unref();
      this.#timers.add(timer);
    }
    return false;
  }

  #flush(key: string): void {
    const w = this.#windows.get(key);
    this.#windows.delete(key);
    if (w?.suppressed) this.#summary(key, w.suppressed);
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const key of [...this.#windows.keys()]) this.#flush(key);
  }
}

/**
 * One log line per event. Returns a function that detaches all listeners.
 * Fields repeat the event payload so JSON consumers need not parse messages.
 */
export function attachEventLogging(bus: EventBus, log: Logger, opts: EventLoggingOptions = {}): () => void {
  const limiter = new LogLimiter(opts.perSecond ?? 10, opts.now ?? Date.now, (key, suppressed) => {
    const [event, reason] = key.split('\u0000') as [string, string];
    log.warn(
      { event: 'log-suppressed', of: event, reason, suppressed },
      `${suppressed} more ${event} log lines (${reason}) suppressed in the last second`,
    );
  });
  const offs = [
    bus.on('ike-state', (e) => {
      // A peer that never authenticates (a wrong key, a scanner, an attacker at a real address
      // retrying as fast as it can) causes a "-> connecting" and a "connecting -> down" line per
      // attempt: limited per connection like the other peer-caused lines (security issue #11,
      // item 10). Lines of SAs that get established, and everything after, always print.
      const attempt = e.to === 'connecting' || (e.from === 'connecting' && e.to === 'down');
      if (attempt && !limiter.allow(`ike-state\u0000${e.connection} negotiations`)) return;
      log.info(
        {
          event: 'ike-state',
          connection: e.connection,
          from: e.from,
          to: e.to,
          reason: e.reason,
          spiI: e.spiI,
          spiR: e.spiR,
        },
        `${e.connection}: ${e.from} -> ${e.to} (${e.reason})`,
      );
    }),
    bus.on('child-up', (e) => {
      const algs = [e.encr, e.integ, e.dh].filter((a) => a !== null).join('/');
      log.info(
        { event: 'child-up', ...e, spiIn: hex(e.spiIn), spiOut: hex(e.spiOut) },
        `${e.connection}: CHILD_SA up, spi in ${hex(e.spiIn)} out ${hex(e.spiOut)} (${algs}, ${e.encapsulation}) ` +
          `${e.tsLocal.join(',')} <-> ${e.tsRemote.join(',')}`,
      );
    }),
    bus.on('child-down', (e) => {
      log.info(
        { event: 'child-down', ...e, spiIn: hex(e.spiIn), spiOut: hex(e.spiOut) },
        `${e.connection}: CHILD_SA down, spi in ${hex(e.spiIn)} out ${hex(e.spiOut)} (${e.reason})`,
      );
    }),
    bus.on('ike-failure', (e) => {
      if (!limiter.allow(`ike-failure\u0000${e.reason}`)) return;
      log.warn(
        { event: 'ike-failure', ...e },
        `${e.connection}: negotiation failed: ${e.reason} (${e.detail})`,
      );
    }),
    bus.on('ike-dropped', (e) => {
      // Dropped datagrams are debug lines: not counted (nor summarised) unless they would print.
      if (!log.isLevelEnabled('debug') || !limiter.allow(`ike-dropped\u0000${e.reason}`)) return;
      log.debug(
        { event: 'ike-dropped', ...e },
        `dropped IKE datagram from ${e.from}: ${e.reason} (${e.detail})`,
      );
    }),
    bus.on('health', (e) => {
      const rtt = e.rttMs === null ? '' : `, last rtt ${e.rttMs.toFixed(2)} ms`;
      (e.to === 'down' ? log.warn : log.info).call(
        log,
        { event: 'health', ...e },
        `${e.connection}: health ${e.from} -> ${e.to} (${e.reason}${rtt})`,
      );
    }),
    bus.on('interface', (e) => {
      (e.up ? log.info : log.warn).call(
        log,
        { event: 'interface', ...e },
        `${e.connection}: interface ${e.name} ${e.up ? 'up' : 'down'} (${e.reason})`,
      );
    }),
    bus.on('route-switch', (e) => {
      const names = (xs: string[]): string => (xs.length ? xs.join('+') : 'none');
      log.warn(
        { event: 'route-switch', ...e },
        `route ${e.destination}: ${names(e.from)} -> ${names(e.to)} (${e.reason})`,
      );
    }),
    bus.on('route-publish', (e) => {
      const what = `route ${e.destination} ${e.published ? 'published in' : 'withdrawn from'} the OS routing table`;
      if (e.ok) log.info({ event: 'route-publish', ...e }, what);
      else log.error({ event: 'route-publish', ...e }, `${what}: failed: ${e.detail}`);
    }),
    bus.on('connection-reset', (e) => {
      log.warn(
        { event: 'connection-reset', ...e },
        `${e.connection}: health check failing for ${e.failedSeconds} s with the SA established: ` +
          `deleting and negotiating it again (reset ${e.attempt}; the next after ${e.nextAfterSeconds} s of failure)`,
      );
    }),
    bus.on('ike-debug', (e) => {
      log.debug({ event: 'ike-debug', connection: e.connection }, `${e.connection}: ${e.message}`);
    }),
  ];
  return () => {
    for (const off of offs) off();
    limiter.close();
  };
}
