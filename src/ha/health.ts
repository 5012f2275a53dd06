/**
 * One connection's health check: an ICMP echo request from `source` to `destination` through the
 * connection's own SA every `interval`; `retries` consecutive misses mark it down, an answer marks
 * it up again. Replies are matched by identifier and sequence number, whichever tunnel they came
 * back through (the peer picks its own return path).
 */
import { buildEchoRequest } from './icmp.js';

export type Health = 'up' | 'down' | 'unknown';

export interface HealthCheckConfig {
  source: string;
  destination: string;
  /** Seconds between probes (fractions allowed); a probe unanswered by the next one is lost. */
  interval: number;
  /** Consecutive lost probes that mark the connection down. */
  retries: number;
}

export interface ProbeIo {
  /** Encrypts the packet into the connection's current outbound SA; false when it has none. */
  inject(connection: string, packet: Buffer): boolean;
}

export interface HealthChange {
  connection: string;
  from: Health;
  to: Health;
  reason: string;
}

const PAYLOAD = Buffer.from('twinsec health probe');

export class HealthCheck {
  readonly connection: string;
  readonly id: number;
  state: Health = 'unknown';
  /** Round-trip time of the last answered probe, in milliseconds. */
  lastRttMs: number | null = null;
  /** Consecutive probes lost so far. */
  lost = 0;
  readonly #cfg: HealthCheckConfig;
  readonly #io: ProbeIo;
  readonly #onChange: (c: HealthChange) => void;
  readonly #onRtt: (seconds: number) => void;
  #seq = 0;
  /** Sent probes not yet answered: sequence number -> send time (ns, monotonic). */
  readonly #outstanding = new Map<number, bigint>();
  /**
   * Probes counted lost, kept a little longer (sequence number -> send time): a reply stamped by the
   * engine within the interval may still be waiting in the event queue when a late tick counts its
   * probe lost (a busy CPU delays this thread, not the packet's arrival time). It still counts.
   */
  readonly #late = new Map<number, bigint>();
  readonly #defer: (fn: () => void) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    connection: string,
    id: number,
    cfg: HealthCheckConfig,
    io: ProbeIo,
    onChange: (c: HealthChange) => void,
    onRtt: (seconds: number) => void = () => {},
    /**
     * Runs the "down" decision after the replies already queued for this thread (setImmediate: after
     * the poll phase that delivers them), so a probe answered in time is never judged by a late tick.
     */
    defer: (fn: () => void) => void = (fn) => {
      setImmediate(fn);
    },
  ) {
    this.connection = connection;
    this.id = id;
    this.#cfg = cfg;
    this.#io = io;
    this.#onChange = onChange;
    this.#onRtt = onRtt;
    this.#defer = defer;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.tick(), this.#cfg.interval * 1000);
    this.#timer.unref();
    this.tick();
  }

  /**
   * Takes over what the check this one replaces (a reload with the same probe settings) knew, so
   * the connection's health does not fall back to 'unknown' while the first new probe is out.
   */
  inherit(prev: HealthCheck): void {
    this.state = prev.state;
    this.lost = prev.lost;
    this.lastRttMs = prev.lastRttMs;
  }

  /** Whether `other` probes the same way (source, destination, interval, retries). */
  sameProbes(other: HealthCheck): boolean {
    const a = this.#cfg;
    const b = other.#cfg;
    return (
      a.source === b.source &&
      a.destination === b.destination &&
      a.interval === b.interval &&
      a.retries === b.retries
    );
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#outstanding.clear();
    this.#late.clear();
  }

  #set(to: Health, reason: string): void {
    if (to === this.state) return;
    const from = this.state;
    this.state = to;
    this.#onChange({ connection: this.connection, from, to, reason });
  }

  /** Accounts for the previous probe and sends the next one. */
  tick(now = process.hrtime.bigint()): void {
    const window = BigInt(Math.round(this.#cfg.interval * 1e9));
    for (const [seq, sent] of this.#outstanding) {
      // A probe unanswered for a whole interval is lost; a late answer no longer counts.
      if (now - sent >= window - window / 10n) {
        this.#outstanding.delete(seq);
        this.#late.set(seq, sent);
        this.lost++;
      }
    }
    for (const [seq, sent] of this.#late) if (now - sent > 4n * window) this.#late.delete(seq);
    if (this.lost >= this.#cfg.retries) {
      this.#defer(() => {
        if (this.lost >= this.#cfg.retries) this.#set('down', `${this.lost} probes lost`);
      });
    }
    this.#seq = (this.#seq + 1) & 0xffff;
    const pkt = buildEchoRequest({
      source: this.#cfg.source,
      destination: this.#cfg.destination,
      id: this.id,
      seq: this.#seq,
      payload: PAYLOAD,
    });
    if (this.#io.inject(this.connection, pkt)) {
      this.#outstanding.set(this.#seq, now);
    } else {
      // No CHILD_SA to probe through: the connection is down whatever its history.
      this.lost = Math.max(this.lost, this.#cfg.retries);
      this.#set('down', 'no CHILD_SA installed');
    }
  }

  /** An echo reply with our identifier arrived (from any tunnel) at monotonic time `at`. */
  reply(seq: number, at: bigint): void {
    let sent = this.#outstanding.get(seq);
    if (sent === undefined) {
      // Counted lost by a tick that ran late: it counts if the engine saw it arrive in time.
      sent = this.#late.get(seq);
      const window = BigInt(Math.round(this.#cfg.interval * 1e9));
      if (sent === undefined || at - sent >= window - window / 10n) return;
      this.#late.delete(seq);
    }
    this.#outstanding.delete(seq);
    const rtt = Number(at - sent) / 1e6;
    this.lastRttMs = rtt;
    this.#onRtt(rtt / 1000);
    const lostBefore = this.lost;
    this.lost = 0;
    this.#set('up', lostBefore ? `probe answered after ${lostBefore} lost` : 'probe answered');
  }
}
