/**
 * The one event seam: protocol code emits here; logging, metrics, HA and status listen.
 * Protocol code never calls a logger or metric directly for state changes.
 */
import { EventEmitter } from 'node:events';

export type IkeState = 'down' | 'connecting' | 'established' | 'deleting';

export interface TwinsecEvents {
  /** An IKE SA of a connection changed state. */
  'ike-state': {
    connection: string;
    from: IkeState;
    to: IkeState;
    reason: string;
    spiI?: string;
    spiR?: string;
  };
  /** A CHILD_SA was installed in the data plane. */
  'child-up': {
    connection: string;
    spiIn: number;
    spiOut: number;
    encr: string;
    integ: string | null;
    dh: string | null;
    encapsulation: 'udp' | 'esp';
    tsLocal: string[];
    tsRemote: string[];
  };
  /** A CHILD_SA was removed from the data plane. */
  /** `counters`: what the SA carried, read just before it left the data plane. */
  'child-down': {
    connection: string;
    spiIn: number;
    spiOut: number;
    reason: string;
    counters?: { bytesIn: number; bytesOut: number; packetsIn: number; packetsOut: number };
  };
  /** A CHILD_SA changed state (installed, rekeying, rekeyed, deleted); see src/ike/core/child-sa.ts. */
  'child-state': { connection: string; spiIn: number; from: string; to: string; reason: string };
  /** The peer of an IKE SA moved to a new address or port (a NAT mapping changed, RFC 7296 §2.23). */
  'peer-moved': { connection: string; from: string; to: string; children: number };
  /** A negotiation failed; `reason` is a short stable token (auth_failed, no_proposal_chosen, timeout, ...). */
  'ike-failure': { connection: string; reason: string; detail: string };
  /** An incoming IKE datagram was dropped (malformed, unexpected, unknown SA). */
  'ike-dropped': { reason: string; detail: string; from: string };
  /** A connection's health changed (health check result, or SA state without one). */
  health: { connection: string; from: string; to: string; reason: string; rttMs: number | null };
  /** A health probe was answered after `seconds` (metrics' RTT histogram). */
  'health-rtt': { connection: string; seconds: number };
  /**
   * A route-based connection's interface gained or lost carrier (it follows the connection's
   * usability: CHILD_SA installed and health check passing), so routing daemons use or withdraw it.
   */
  interface: { connection: string; name: string; up: boolean; reason: string };
  /**
   * A destination route moved to other next hops; `to` empty: withdrawn (onAllDown: revoke).
   * `revoked` is set when the switch withdrew the route (true) or brought it back (false).
   */
  'route-switch': { destination: string; from: string[]; to: string[]; reason: string; revoked?: boolean };
  /**
   * A published route was added to or removed from the OS routing table (`ok`), or the `ip` command
   * failed (`ok: false`, `detail` says why).
   */
  'route-publish': { destination: string; published: boolean; ok: boolean; detail?: string };
  /**
   * A connection's health check failed for `failedSeconds` while its SA was established: its SAs
   * are deleted (the peer told) and negotiated again. `attempt` counts resets since the check last
   * passed; the next one waits `nextAfterSeconds` of failure.
   */
  'connection-reset': {
    connection: string;
    failedSeconds: number;
    attempt: number;
    nextAfterSeconds: number;
  };
  /** Free-form protocol progress worth a debug log line. */
  'ike-debug': { connection: string; message: string };
}

export type EventName = keyof TwinsecEvents;

export class EventBus {
  readonly #ee = new EventEmitter();
  constructor() {
    this.#ee.setMaxListeners(100);
  }
  emit<K extends EventName>(name: K, ev: TwinsecEvents[K]): void {
    this.#ee.emit(name, ev);
  }
  on<K extends EventName>(name: K, fn: (ev: TwinsecEvents[K]) => void): () => void {
    this.#ee.on(name, fn);
    return () => this.#ee.off(name, fn);
  }
}
