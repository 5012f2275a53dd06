/**
 * The seam between the version-neutral IKE core and one protocol version (IKEv2 in v2/, IKEv1
 * beside it). The core owns the SA table, admission, lifetimes, DPD scheduling, NAT keep-alives,
 * operator commands and the data-plane hand-off; a protocol owns its exchanges and message layer.
 */
import type { ConnectionConfig } from '../../config/types.js';
import type { DataPlane, Endpoint } from '../../dataplane/types.js';
import type { EventBus } from '../../events.js';
import type { Datagram, IkeTransport } from '../transport.js';
import type { ChildSa } from './child-sa.js';
import type { Clock, Random } from './clock.js';
import type { ConnectionSet } from './connections.js';
import type { BaseIkeSa } from './ike-sa.js';
import type { ChildLifetime } from './lifetimes.js';
import type { SaTable } from './sa-table.js';

export interface Timing {
  /** First retransmission timeout (ms), multiplied by `retransmitFactor` per try. */
  retransmitBase: number;
  retransmitFactor: number;
  retransmitTries: number;
  /** A responder SA that has not authenticated within this time is dropped (ms). */
  halfOpenTimeout: number;
  /**
   * An IKEv1 responder SA whose peer has not yet proven it receives at its address (echoed our
   * responder cookie, i.e. sent main mode message 3 / aggressive mode message 3) is dropped after
   * this (ms). IKEv1 has no stateless cookie round trip (RFC 2408 §2.5.3 cookies are SPIs), so a
   * spoofed first message costs an SA: a short life bounds how long.
   */
  halfOpenUnprovenTimeout: number;
  /**
   * IKEv2 COOKIE challenge (RFC 7296 §2.6): from this many half-open IKE SAs in total, or from
   * `cookieThresholdPerPeer` of one source address, IKE_SA_INIT needs a valid cookie (strongSwan's
   * charon.cookie_threshold / cookie_threshold_ip: 30 and 3). 0 requires cookies always.
   */
  cookieThreshold: number;
  cookieThresholdPerPeer: number;
  /** The cookie secret changes this often (ms); the previous one is accepted `cookieSecretGrace` longer. */
  cookieSecretLifetime: number;
  cookieSecretGrace: number;
  /** Cookies stay required this long after a threshold was last reached (ms; strongSwan: 10 s). */
  cookieCalmdown: number;
  /** NAT keep-alive interval (ms); strongSwan's default is 20 s as well. */
  keepalive: number;
  /**
   * Milliseconds per configured lifetime second (`ike.lifetime`, `esp.lifetime`): 1000 in
   * production; tests shrink it to run whole SA lifetimes in a fraction of a second.
   */
  lifetimeUnit: number;
}

export const DEFAULT_TIMING: Timing = {
  retransmitBase: 2000,
  retransmitFactor: 1.8,
  retransmitTries: 5,
  halfOpenTimeout: 30_000,
  halfOpenUnprovenTimeout: 10_000,
  cookieThreshold: 30,
  cookieThresholdPerPeer: 3,
  cookieSecretLifetime: 120_000,
  cookieSecretGrace: 30_000,
  cookieCalmdown: 10_000,
  keepalive: 20_000,
  lifetimeUnit: 1000,
};

export type AnySa = BaseIkeSa<unknown>;

/** What the core offers every protocol version. */
export interface CoreServices {
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly random: Random;
  readonly timing: Timing;
  readonly ports: { ike: number; natt: number };
  readonly transport: IkeTransport;
  readonly dataplane: DataPlane;
  readonly table: SaTable;
  readonly conns: ConnectionSet;
  /** Counts and reports a dropped datagram. */
  drop(reason: string, detail: string, d: Datagram): void;
  /**
   * Puts a negotiated CHILD_SA under the SA's lifetimes (child-up). `lifetime`: the one the peers
   * agreed when shorter than configured (IKEv1 negotiates it; IKEv2 does not, §2.8).
   */
  childInstalled(sa: AnySa, child: ChildSa<unknown>, lifetime?: ChildLifetime): void;
  /** Takes a CHILD_SA out of the data plane (child-down); finds its owner if an IKE SA rekey moved it. */
  removeChild(sa: AnySa, spiIn: number, reason: string): void;
  /** The IKE SA is authenticated: lifetimes, DPD and keep-alives start. */
  established(sa: AnySa): void;
  /** A negotiation or exchange failed (reason token, detail): tell the peer if needed, retry later. */
  failed(sa: AnySa, reason: string, detail: string): void;
  /** An IKE SA rekey of `old` is done: `fresh` holds the children and is filed and timed now. */
  adoptRekeyed(old: AnySa, fresh: AnySa): void;
  /** Our IKE SA rekey of it is in flight (CHILD_SA rekeys wait for it). */
  isRekeying(sa: AnySa): boolean;
  /** Forgets the SA and its children at once. */
  destroy(sa: AnySa, reason: string): void;
  /** Whether our authentication carries INITIAL_CONTACT (no other SA of this identity pair). */
  wantInitialContact(sa: AnySa): boolean;
  /**
   * The authenticated peer sent INITIAL_CONTACT: its older SAs with us are stale. `keepChildren`
   * (IKEv1): the older ISAKMP SAs of the connection go, their IPsec SAs move to `sa`.
   */
  peerInitialContact(sa: AnySa, keepChildren?: boolean): void;
  /** An authenticated message came from `d`: follow the peer if its address or port changed. */
  peerSeen(sa: AnySa, d: Datagram): void;
}

/** One protocol version as the core drives it. */
export interface IkeProtocol {
  readonly version: 1 | 2;
  /** A datagram whose header names this major version. */
  handle(d: Datagram): void;
  /** Starts a new IKE SA for the connection (the core checked it may). */
  initiate(conn: ConnectionConfig): void;
  /** Soft limit of an IKE SA: rekey it (IKEv2) or authenticate anew (IKEv1); the children move over. */
  rekeyIke(sa: AnySa): Promise<AnySa>;
  /** Soft limit of a CHILD_SA: a new pair replaces it, make-before-break. */
  rekeyChild(sa: AnySa, child: ChildSa<unknown>): Promise<void>;
  /** Tells the peer the IKE SA is gone; resolves on the answer or once the retransmissions end. */
  deleteIke(sa: AnySa): Promise<void>;
  /** Tells the peer these CHILD_SAs (our inbound SPIs) are gone. */
  deleteChildren(sa: AnySa, spisIn: number[]): Promise<void>;
  /** Liveness check (DPD), sent to `to` when given (a NAT mapping seen in ESP); true if answered. */
  liveness(sa: AnySa, to?: Endpoint): Promise<boolean>;
  /** An exchange of ours is in flight on the SA (window size 1). */
  busy(sa: AnySa): boolean;
}
