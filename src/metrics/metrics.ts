/**
 * Prometheus metrics of one daemon, in a registry of their own (never prom-client's global one:
 * several daemons share a process in the tests).
 *
 * Nothing here runs per packet. Values the daemon already keeps (SA counters, drops, health,
 * routes) are read from a `StatusReport` snapshot when Prometheus scrapes, through the metrics'
 * `collect()` callbacks; one snapshot serves a whole scrape. Counters of things that happen
 * (IKE SAs established, negotiation failures, probe RTTs) come from the event bus.
 *
 * Families (labels are connection names, destinations and reason tokens, never secrets):
 *
 *   twinsec_connection_up{connection,version}           1: IKE SA established and a CHILD_SA installed
 *   twinsec_connection_healthy{connection}              1: health 'up'; 0: 'down' or 'unknown'
 *   twinsec_interface_up{connection,interface}          route-based only: 1 the device has carrier
 *   twinsec_esp_bytes_total{connection,direction}       direction "in" | "out"
 *   twinsec_esp_packets_total{connection,direction}
 *   twinsec_esp_dropped_packets_total{connection,reason}
 *   twinsec_control_packets_total{kind}                 sent ahead of bulk: probe, echo_answer, echo_reply, routing; unmarked
 *   twinsec_health_check_rtt_seconds{connection}        histogram, 0.1 ms .. 5 s
 *   twinsec_route_active{destination,connection}        1: the next hop carries the route now; 0: it does not
 *   twinsec_route_switches_total{destination}
 *   twinsec_route_withdrawn{destination}                1: no next hop usable and onAllDown revoke withdrew it
 *   twinsec_connection_resets_total{connection}         SAs renegotiated because the health check kept failing
 *   twinsec_ike_sa_established_total{connection,version}
 *   twinsec_ike_negotiation_failures_total{connection,version,reason}   at most MAX_FAILURE_REASONS reasons, then "other"
 *   twinsec_event_loop_lag_seconds{quantile}            "0.5", "0.99", "1" (the maximum) over the last window (loop-lag.ts)
 *   + prom-client's default process_* and nodejs_* metrics
 *
 * `version` is the connection's configured IKE version, "1" or "2" (the same for all its SAs, so it
 * adds no series: at most one more per connection when a reload changes the version; "" for a
 * connection no snapshot has listed yet).
 *
 * Size: no label is per SA or per peer, so the exposition grows with connections and routes, never
 * with tunnels: a hub connection (`remote: %any`) with 10,000 IKE SAs is a handful of series, its
 * byte and packet counters summed over all of them (the per-SA figures are in `twinsec status`). A
 * scrape does read every CHILD SA's counters once (the snapshot); bench/status-scale.ts measures it.
 *
 * ESP drops: the data plane counts drops by reason for the whole engine, not per connection, so
 * they are exposed with `connection=""`. Reason names are the data plane's in snake_case:
 * malformed, no_sa, replay, integrity, policy, no_route, mtu, queue.
 *
 * Monotonic counters over resetting sources: the data plane's byte/packet counters live per SA
 * and start from zero with every new SA, the router's switch count restarts when the HA layer is
 * rebuilt (config reload). Each source value is remembered per key and only its increase is added;
 * a value below the remembered one means the source restarted, and all of it is new. An SA that
 * disappears keeps what it contributed. What an SA carried between the last scrape and its removal
 * is only counted when `saRemoved()` is told its final counters (see there).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { StatusReport } from '../daemon.js';
import type { SaCounters } from '../dataplane/types.js';
import type { EventBus } from '../events.js';
import { spiHex } from '../ike/core/view.js';
import { loopLag, watchLoopLag } from './loop-lag.js';

/** The data plane's drop reasons (StatusReport.drops.esp keys), always exposed, zero or not. */
export const ESP_DROP_REASONS = [
  'malformed',
  'noSa',
  'replay',
  'integrity',
  'policy',
  'noRoute',
  'mtu',
  'queue',
  'seqExhausted',
  'expired',
];

/** Histogram buckets for probe round trips: 0.1 ms (same host) to 5 s (a link about to fail). */
export const RTT_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** `noSa` -> `no_sa`, `noRoute` -> `no_route`; anything odd becomes a safe label token. */
export function snakeCase(name: string): string {
  return labelToken(name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
}

/** Reason labels are short stable tokens; a value that is not one is folded to 'other'. */
function labelToken(s: string): string {
  return /^[a-z0-9_]{1,64}$/.test(s) ? s : 'other';
}

/**
 * At most this many distinct failure reasons become labels; later new ones are counted as 'other'.
 * Reason tokens come from code (a fixed set) and from peers' error notifies (named from a fixed
 * table, v2/errors.ts notifyReason); this bound holds whatever a future reason source does.
 */
export const MAX_FAILURE_REASONS = 64;

/** The next hops a route may use (to export 0 for the standby ones); `RouteConfig` fits. */
export interface RouteNextHops {
  destination: string;
  via: readonly { connection: string }[];
}

export interface MetricsOptions {
  /** The daemon's status, read once per scrape (Daemon.status). */
  snapshot: () => StatusReport;
  /** Event-driven counters listen here; without a bus only the snapshot families move. */
  bus?: EventBus;
  /**
   * Every route's configured next hops (read per scrape, so a reload is followed). Without it,
   * `twinsec_route_active` lists the connections that carried a route at some scrape.
   */
  routes?: () => readonly RouteNextHops[];
  /**
   * A connection's configured IKE version (e.g. from `daemon.config`), for the `version` label of
   * event-driven counters; O(1) per event and current across reloads. Without it the version is taken
   * from the last scrape's snapshot (or one snapshot taken for an event before the first scrape).
   */
  version?: (connection: string) => 1 | 2 | undefined;
  /** Default process metrics (on unless false). */
  defaultMetrics?: boolean;
}

type Dir = 'in' | 'out';

export class Metrics {
  readonly registry = new Registry();
  readonly #o: MetricsOptions;
  readonly #off: (() => void)[] = [];

  readonly #up: Gauge<'connection' | 'version'>;
  readonly #healthy: Gauge<'connection'>;
  readonly #iface: Gauge<'connection' | 'interface'>;
  readonly #bytes: Counter<'connection' | 'direction'>;
  readonly #packets: Counter<'connection' | 'direction'>;
  readonly #drops: Counter<'connection' | 'reason'>;
  readonly #control: Counter<'kind'>;
  readonly #rtt: Histogram<'connection'>;
  readonly #routeActive: Gauge<'destination' | 'connection'>;
  readonly #switches: Counter<'destination'>;
  readonly #withdrawn: Gauge<'destination'>;
  readonly #resets: Counter<'connection'>;
  readonly #established: Counter<'connection' | 'version'>;
  readonly #failures: Counter<'connection' | 'version' | 'reason'>;

  /** Last seen counters per SA (`connection|spiIn|spiOut`), for deltas. */
  readonly #saSeen = new Map<string, SaCounters>();
  /** Last seen value of other resettable sources (drops by reason, switches by destination). */
  readonly #seen = new Map<string, number>();
  /** Connections ever seen carrying each route (used when no `routes` option is given). */
  readonly #everActive = new Map<string, Set<string>>();
  /** Each connection's IKE version ("1"/"2") as of the last snapshot, for the event-driven counters. */
  readonly #versions = new Map<string, string>();
  /** Failure reasons given a label of their own so far (MAX_FAILURE_REASONS). */
  readonly #reasons = new Set<string>();
  /** True while one scrape's snapshot is current (cleared after the synchronous collect pass). */
  #fresh = false;

  constructor(o: MetricsOptions) {
    this.#o = o;
    const registers = [this.registry];
    const collect = () => this.refresh();
    this.#up = new Gauge({
      name: 'twinsec_connection_up',
      help: 'Whether the connection has an established IKE SA with a CHILD_SA installed (1) or not (0).',
      labelNames: ['connection', 'version'],
      registers,
      collect,
    });
    this.#healthy = new Gauge({
      name: 'twinsec_connection_healthy',
      help: 'Health check state of the connection: 1 up, 0 down or not yet known (follows the SA state without a health check).',
      labelNames: ['connection'],
      registers,
      collect,
    });
    this.#iface = new Gauge({
      name: 'twinsec_interface_up',
      help: "Route-based connections: whether the connection's tunnel interface has carrier (1: usable) or not (0).",
      labelNames: ['connection', 'interface'],
      registers,
      collect,
    });
    this.#bytes = new Counter({
      name: 'twinsec_esp_bytes_total',
      help: "ESP payload bytes through the connection's CHILD_SAs (all SAs, past and present), by direction.",
      labelNames: ['connection', 'direction'],
      registers,
      collect,
    });
    this.#packets = new Counter({
      name: 'twinsec_esp_packets_total',
      help: "ESP packets through the connection's CHILD_SAs (all SAs, past and present), by direction.",
      labelNames: ['connection', 'direction'],
      registers,
      collect,
    });
    this.#drops = new Counter({
      name: 'twinsec_esp_dropped_packets_total',
      help: 'Packets dropped by the ESP data plane, by reason; connection="" when not attributable to a connection.',
      labelNames: ['connection', 'reason'],
      registers,
      collect,
    });
    this.#control = new Counter({
      name: 'twinsec_control_packets_total',
      help: 'Control packets the data plane sent ahead of bulk with the qos marking, by kind (probe, echo_answer, echo_reply, routing); unmarked: echo replies and routing packets sent as bulk because the marked-packet budget was spent.',
      labelNames: ['kind'],
      registers,
      collect,
    });
    this.#rtt = new Histogram({
      name: 'twinsec_health_check_rtt_seconds',
      help: 'Round-trip time of answered health check probes.',
      labelNames: ['connection'],
      buckets: RTT_BUCKETS,
      registers,
    });
    this.#routeActive = new Gauge({
      name: 'twinsec_route_active',
      help: 'Whether the connection carries traffic for the destination now (1) or is a next hop not in use (0).',
      labelNames: ['destination', 'connection'],
      registers,
      collect,
    });
    this.#switches = new Counter({
      name: 'twinsec_route_switches_total',
      help: 'Times the destination route moved to other next hops.',
      labelNames: ['destination'],
      registers,
      collect,
    });
    this.#withdrawn = new Gauge({
      name: 'twinsec_route_withdrawn',
      help: 'Whether the destination route is withdrawn now (1: no next hop usable and onAllDown revoke) or in place (0).',
      labelNames: ['destination'],
      registers,
      collect,
    });
    this.#resets = new Counter({
      name: 'twinsec_connection_resets_total',
      help: "Times the connection's SAs were deleted and negotiated again because its health check kept failing while they were established (healthCheck.resetAfter).",
      labelNames: ['connection'],
      registers,
    });
    this.#established = new Counter({
      name: 'twinsec_ike_sa_established_total',
      help: 'IKE SAs of the connection that reached the established state.',
      labelNames: ['connection', 'version'],
      registers,
      collect,
    });
    this.#failures = new Counter({
      name: 'twinsec_ike_negotiation_failures_total',
      help: 'Failed IKE negotiations of the connection, by reason (auth_failed, no_proposal_chosen, timeout, ...).',
      labelNames: ['connection', 'version', 'reason'],
      registers,
    });
    const lag: Gauge<'quantile'> = new Gauge({
      name: 'twinsec_event_loop_lag_seconds',
      help: 'Event loop lag of the daemon over the last window (about 10 s): quantile 0.5, 0.99, and 1 (the maximum).',
      labelNames: ['quantile'],
      registers,
      collect: () => {
        const l = loopLag();
        if (!l) return;
        lag.set({ quantile: '0.5' }, l.p50);
        lag.set({ quantile: '0.99' }, l.p99);
        lag.set({ quantile: '1' }, l.max);
      },
    });
    this.#off.push(watchLoopLag());
    if (o.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });

    if (o.bus) this.#listen(o.bus);
  }

  /** Counters fed from the event bus (state changes, failures, probe RTTs, SAs leaving). */
  #listen(bus: NonNullable<MetricsOptions['bus']>): void {
    this.#off.push(
      bus.on('ike-state', (e) => {
        if (e.to === 'established') {
          this.#established.inc({ connection: e.connection, version: this.#version(e.connection) });
        }
      }),
      bus.on('ike-failure', (e) => {
        this.#failures.inc({
          connection: e.connection,
          version: this.#version(e.connection),
          reason: this.#failureReason(e.reason),
        });
      }),
      bus.on('health-rtt', (e) => this.observeRtt(e.connection, e.seconds)),
      bus.on('connection-reset', (e) => this.#resets.inc({ connection: e.connection })),
      bus.on('child-down', (e) => {
        if (e.counters) this.saRemoved(e.connection, e.spiIn, e.spiOut, e.counters);
      }),
    );
  }

  /** A bounded failure reason label: a token, not a bare number, one of at most MAX_FAILURE_REASONS. */
  #failureReason(reason: string): string {
    const token = labelToken(reason);
    if (token === 'other' || /^[0-9]/.test(token)) return 'other';
    if (this.#reasons.has(token)) return token;
    if (this.#reasons.size >= MAX_FAILURE_REASONS) return 'other';
    this.#reasons.add(token);
    return token;
  }

  /**
   * A connection's IKE version label: from the `version` option, else from the last snapshot, else from a fresh one (an event before
   * the first scrape), else "" (the connection is gone).
   */
  #version(connection: string): string {
    const configured = this.#o.version?.(connection);
    if (configured !== undefined) return String(configured);
    const known = this.#versions.get(connection);
    if (known !== undefined) return known;
    try {
      this.#learnVersions(this.#o.snapshot());
    } catch {
      // daemon stopping
    }
    return this.#versions.get(connection) ?? '';
  }

  #learnVersions(s: StatusReport): void {
    this.#versions.clear();
    for (const [connection, c] of Object.entries(s.connections))
      this.#versions.set(connection, String(c.version));
  }

  /** One answered health probe's round-trip time. */
  observeRtt(connection: string, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.#rtt.observe({ connection }, seconds);
  }

  /**
   * A CHILD_SA left the data plane with these final counters (from the `child-down` event): counts
   * what it carried since the last scrape and forgets it.
   */
  saRemoved(connection: string, spiIn: number | string, spiOut: number | string, final: SaCounters): void {
    const key = saKey(connection, spiIn, spiOut);
    this.#addSa(connection, key, final);
    this.#saSeen.delete(key);
  }

  /** Text exposition, as served on /metrics. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops listening to the bus (the registry stays readable). */
  close(): void {
    for (const off of this.#off.splice(0)) off();
  }

  /**
   * Reads a snapshot into the metrics. Called by every `collect()`; only the first call of a scrape
   * does the work (prom-client calls all collects in one synchronous pass).
   */
  refresh(): void {
    if (this.#fresh) return;
    this.#fresh = true;
    queueMicrotask(() => {
      this.#fresh = false;
    });
    let s: StatusReport;
    try {
      s = this.#o.snapshot();
    } catch {
      return; // daemon stopping: keep the values of the last scrape
    }
    this.#learnVersions(s);
    this.#connections(s);
    this.#routes(s);
    this.#espDrops(s);
    for (const [name, value] of Object.entries(s.control ?? {}))
      this.#bump(this.#control, `control|${name}`, { kind: snakeCase(name) }, value);
  }

  #connections(s: StatusReport): void {
    this.#up.reset();
    this.#healthy.reset();
    this.#iface.reset();
    const present = new Set<string>();
    for (const [connection, c] of Object.entries(s.connections)) {
      const version = String(c.version);
      this.#up.set({ connection, version }, c.state === 'established' && c.children.length > 0 ? 1 : 0);
      this.#healthy.set({ connection }, c.health === 'up' ? 1 : 0);
      // Health-checked connections show their reset count from the start, zero or not.
      if (c.resets !== undefined) this.#resets.inc({ connection }, 0);
      if (c.interface) this.#iface.set({ connection, interface: c.interface.name }, c.interface.up ? 1 : 0);
      this.#established.inc({ connection, version }, 0);
      for (const d of ['in', 'out'] as const) {
        this.#bytes.inc({ connection, direction: d }, 0);
        this.#packets.inc({ connection, direction: d }, 0);
      }
      for (const ch of c.children) {
        const key = saKey(connection, ch.spiIn, ch.spiOut);
        present.add(key);
        this.#addSa(connection, key, ch);
      }
    }
    // Gone SAs keep their contribution (already in the counters); only the bookkeeping goes.
    for (const key of this.#saSeen.keys()) if (!present.has(key)) this.#saSeen.delete(key);
  }

  #addSa(connection: string, key: string, now: SaCounters): void {
    const last = this.#saSeen.get(key);
    const add = (d: Dir, field: keyof SaCounters, m: Counter<'connection' | 'direction'>) => {
      const delta = increase(last?.[field] ?? 0, now[field]);
      if (delta > 0) m.inc({ connection, direction: d }, delta);
    };
    add('in', 'bytesIn', this.#bytes);
    add('out', 'bytesOut', this.#bytes);
    add('in', 'packetsIn', this.#packets);
    add('out', 'packetsOut', this.#packets);
    this.#saSeen.set(key, {
      bytesIn: now.bytesIn,
      bytesOut: now.bytesOut,
      packetsIn: now.packetsIn,
      packetsOut: now.packetsOut,
    });
  }

  #routes(s: StatusReport): void {
    this.#routeActive.reset();
    this.#withdrawn.reset();
    const configured = new Map<string, string[]>();
    for (const r of this.#o.routes?.() ?? []) {
      configured.set(
        r.destination,
        r.via.map((v) => v.connection),
      );
    }
    for (const r of s.routes) {
      const { destination } = r;
      let hops = configured.get(destination);
      if (!hops) {
        const ever = this.#everActive.get(destination) ?? new Set<string>();
        for (const c of r.active) ever.add(c);
        this.#everActive.set(destination, ever);
        hops = [...ever];
      }
      for (const connection of new Set([...hops, ...r.active])) {
        this.#routeActive.set({ destination, connection }, r.active.includes(connection) ? 1 : 0);
      }
      this.#bump(this.#switches, `switches|${destination}`, { destination }, r.switches);
      this.#withdrawn.set({ destination }, r.revoked ? 1 : 0);
    }
  }

  #espDrops(s: StatusReport): void {
    const drops = s.drops.esp;
    const reasons = new Set([...ESP_DROP_REASONS, ...Object.keys(drops)]);
    for (const name of reasons) {
      const reason = snakeCase(name);
      this.#bump(this.#drops, `drop|${name}`, { connection: '', reason }, drops[name] ?? 0);
    }
  }

  /** Adds a resettable source's increase since the last scrape to a counter. */
  #bump<L extends string>(m: Counter<L>, key: string, labels: Record<L, string>, value: number): void {
    const delta = increase(this.#seen.get(key) ?? 0, value);
    this.#seen.set(key, value);
    m.inc(labels as Partial<Record<L, string>>, delta);
  }
}

function saKey(connection: string, spiIn: number | string, spiOut: number | string): string {
  const hex = (v: number | string) => (typeof v === 'number' ? spiHex(v) : v);
  return `${connection}|${hex(spiIn)}|${hex(spiOut)}`;
}

/** Increase of a counter source since `last`; a smaller value means it restarted from zero. */
function increase(last: number, now: number): number {
  if (!Number.isFinite(now) || now < 0) return 0;
  return now >= last ? now - last : now;
}
