/**
 * What every IKE SA has, whatever its protocol version: identity in the SA table (SPIs, serial),
 * the connection it serves, endpoints, NAT state, its CHILD_SAs, its timers, and the one state
 * machine. Each version's SA (v2/ike-sa.ts) adds its keys and message layer on top.
 *
 *   init -> auth -> established -> deleting -> dead     (any state may go to dead)
 *   init -> established                                  (an SA born from an IKE SA rekey)
 *   auth -> deleting                                     (our DELETE queued behind IKE_AUTH)
 */
import type { ConnectionConfig } from '../../config/types.js';
import type { Endpoint } from '../../dataplane/types.js';
import type { EventBus, IkeState } from '../../events.js';
import type { ChildSa } from './child-sa.js';
import { type Clock, type Random, Timers } from './clock.js';
import type { SaTable } from './sa-table.js';
import type { IkeSaView, SaPhase } from './view.js';

const PHASE_STATE: Record<SaPhase, IkeState> = {
  init: 'connecting',
  auth: 'connecting',
  established: 'established',
  deleting: 'deleting',
  dead: 'down',
};

const ALLOWED: Record<SaPhase, readonly SaPhase[]> = {
  init: ['auth', 'established', 'dead'],
  auth: ['established', 'deleting', 'dead'],
  established: ['deleting', 'dead'],
  deleting: ['dead'],
  dead: [],
};

/** What an SA needs from its surroundings. */
export interface SaContext {
  bus: EventBus;
  clock: Clock;
  random: Random;
  /** The daemon's SA table: new SPIs are checked against it for collisions. */
  table?: SaTable;
}

/**
 * A new IKE SPI of ours: random, never zero (RFC 7296 §3.1: zero means "not yet known"), and not
 * one an SA of either version already files under (a collision would deliver its messages to the
 * wrong SA; unlikely with 64 bits, but a weak or injected Random must not make it happen).
 */
export function newIkeSpi(ctx: SaContext): Buffer {
  for (;;) {
    const spi = ctx.random.bytes(8);
    if (spi.some((b) => b !== 0) && !ctx.table?.get(spi)) return spi;
  }
}

let nextSerial = 1;

export abstract class BaseIkeSa<C = unknown> implements IkeSaView {
  readonly serial = nextSerial++;
  abstract readonly version: 1 | 2;
  readonly createdAt: number;
  readonly initiator: boolean;
  readonly ctx: SaContext;
  readonly timers: Timers;
  /**
   * The connection this SA serves; a responder learns it for sure only once the peer authenticated.
   * The SA table files SAs by it (SaTable.ofConn).
   */
  get conn(): ConnectionConfig {
    return this.#conn;
  }

  set conn(c: ConnectionConfig) {
    this.#conn = c;
    this.ctx.table?.connChanged(this as BaseIkeSa<unknown>);
  }

  #conn: ConnectionConfig;
  /** Responder: every connection that matched the addresses of the first message. */
  candidates: ConnectionConfig[];
  spiI: Buffer;
  spiR: Buffer = Buffer.alloc(8);
  local: Endpoint;
  remote: Endpoint;
  /** NAT on the path (RFC 7296 §2.23 / RFC 3947): behind the peer (remote) or behind us (local). */
  nat = { local: false, remote: false };
  /** When the last authenticated message from the peer arrived (DPD; ESP not counted). */
  lastReceived: number;
  /** When we last sent anything (NAT keep-alives are skipped while we talk). */
  lastSent = 0;
  /** Our authentication carried INITIAL_CONTACT (sibling tunnels of the same identities need not). */
  sentInitialContact = false;
  /**
   * The identity the peer authenticated with (peerIdentityKey), once it has: a connection's
   * remoteId may be a wildcard (%any), so the configured string does not say who the peer is.
   * INITIAL_CONTACT (RFC 7296 §2.4) is scoped by it. The SA table files SAs under it (a hub finds
   * one peer's SAs among thousands without a scan).
   */
  get peerIdentity(): string | undefined {
    return this.#peerIdentity;
  }

  set peerIdentity(key: string | undefined) {
    this.#peerIdentity = key;
    this.ctx.table?.identified(this as BaseIkeSa<unknown>);
  }

  #peerIdentity: string | undefined;
  /**
   * The pre-shared key this SA authenticated with: the connection's own, or the `secrets` entry of
   * the peer's identity (ConnectionSet.pskFor). Never log it.
   */
  psk?: Buffer;
  readonly #children = new Map<number, ChildSa<C>>();
  /** The lifetime (s) the peers agreed, when the protocol negotiates one (IKEv1, RFC 2407 §4.5). */
  get negotiatedLifetime(): number | undefined {
    return undefined;
  }
  #phase: SaPhase = 'init';

  constructor(
    ctx: SaContext,
    o: {
      initiator: boolean;
      conn: ConnectionConfig;
      candidates?: ConnectionConfig[];
      local: Endpoint;
      remote: Endpoint;
      spiI?: Buffer;
    },
  ) {
    this.ctx = ctx;
    this.timers = new Timers(ctx.clock);
    this.createdAt = ctx.clock.now();
    this.lastReceived = this.createdAt;
    this.initiator = o.initiator;
    this.#conn = o.conn;
    this.candidates = o.candidates ?? [o.conn];
    this.local = o.local;
    this.remote = o.remote;
    this.spiI = o.spiI ?? newIkeSpi(ctx);
  }

  /** Our own SPI: the key the SA table files this SA under. */
  get ourSpi(): Buffer {
    return this.initiator ? this.spiI : this.spiR;
  }

  get name(): string {
    return this.conn.name;
  }

  get phase(): SaPhase {
    return this.#phase;
  }

  get children(): ChildSa<C>[] {
    return [...this.#children.values()];
  }

  child(spiIn: number): ChildSa<C> | undefined {
    return this.#children.get(spiIn);
  }

  /** The CHILD_SA whose outbound SPI (the peer's inbound one, as the peer names it) is `spiOut`. */
  childByOut(spiOut: number): ChildSa<C> | undefined {
    for (const c of this.#children.values()) if (c.spiOut === spiOut) return c;
    return undefined;
  }

  addChild(c: ChildSa<C>): void {
    this.#children.set(c.spiIn, c);
  }

  dropChild(spiIn: number): ChildSa<C> | undefined {
    const c = this.#children.get(spiIn);
    this.#children.delete(spiIn);
    return c;
  }

  /** Hands every CHILD_SA to another SA (an IKE SA rekey, RFC 7296 §2.18). */
  moveChildrenTo(other: BaseIkeSa<C>): void {
    for (const c of this.#children.values()) other.addChild(c);
    this.#children.clear();
  }

  debug(message: string): void {
    this.ctx.bus.emit('ike-debug', { connection: this.name, message: `[#${this.serial}] ${message}` });
  }

  /**
   * Set while a new responder SA is not announced yet (beginUnproven): its state changes make no
   * events, so no log line either, until announce().
   */
  #unannounced: string | undefined;

  /**
   * begin() for a responder SA whose peer may be a spoofed source (IKEv1 has no stateless
   * challenge, so each first message makes an SA): nothing is announced until announce(), once the
   * peer has shown it receives at its address; one that ends before that ends silently. Otherwise a
   * spoofed flood writes two log lines per datagram (security issue #11).
   */
  beginUnproven(reason: string): void {
    this.#unannounced = reason;
  }

  /** The peer of an SA begun with beginUnproven() is proven: announce it now (once). */
  announce(): void {
    const reason = this.#unannounced;
    if (reason === undefined || this.#phase === 'dead') return;
    this.#unannounced = undefined;
    this.begin(reason);
  }

  /** Announces a new SA (down -> connecting); later changes go through transition(). */
  begin(reason: string): void {
    this.ctx.bus.emit('ike-state', {
      connection: this.name,
      from: 'down',
      to: 'connecting',
      reason,
      spiI: this.spiI.toString('hex'),
    });
  }

  /**
   * The one place the SA changes phase; every change of the outward state is an event (logs,
   * metrics and HA listen). Moves the table does not allow are ignored.
   */
  transition(to: SaPhase, reason: string): boolean {
    const fromPhase = this.#phase;
    if (fromPhase === to || !ALLOWED[fromPhase].includes(to)) return false;
    const from = PHASE_STATE[fromPhase];
    this.#phase = to;
    if (to === 'dead') {
      this.timers.stop();
      this.onDead();
    }
    const now = PHASE_STATE[to];
    if (from !== now && this.#unannounced === undefined) {
      this.ctx.bus.emit('ike-state', {
        connection: this.name,
        from,
        to: now,
        reason,
        spiI: this.spiI.toString('hex'),
        spiR: this.spiR.toString('hex'),
      });
    }
    return true;
  }

  /** Releases what the version's message layer holds (pending requests, queues). */
  protected abstract onDead(): void;
}

/** An authenticated identity (ID type and data) as a key to compare peers by. */
export function peerIdentityKey(id: { type: number; data: Buffer }): string {
  return `${id.type}:${id.data.toString('hex')}`;
}
