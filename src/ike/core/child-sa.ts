/**
 * One CHILD_SA (an ESP SA pair in the data plane) with its state machine. Its state changes only
 * through transition(), which announces every change on the bus:
 *
 *   installed -> rekeying   our rekey of it is in flight
 *   rekeying  -> installed  that rekey failed; the SA stays in use
 *   installed | rekeying -> rekeyed   a new pair replaced it (either side rekeyed); it waits for its DELETE
 *   any -> deleted          it left the data plane (child-down)
 */
import type { EventBus, TwinsecEvents } from '../../events.js';
import type { ChildSaView, ChildState } from './view.js';

const ALLOWED: Record<ChildState, readonly ChildState[]> = {
  installed: ['rekeying', 'rekeyed', 'deleted'],
  rekeying: ['installed', 'rekeyed', 'deleted'],
  rekeyed: ['deleted'],
  deleted: [],
};

/** One exchange that rekeyed this CHILD_SA (§2.8.1 collisions): its nonces and our new inbound SPI. */
export interface RekeyExchange {
  ni: Buffer;
  nr?: Buffer;
  spiIn?: number;
}

/** What a new CHILD_SA is made of: exactly what `child-up` announces. */
export type ChildSaInit = TwinsecEvents['child-up'];

export class ChildSa<P = unknown> implements ChildSaView {
  readonly spiIn: number;
  readonly spiOut: number;
  readonly encr: string;
  readonly integ: string | null;
  readonly dh: string | null;
  readonly encapsulation: 'udp' | 'esp';
  readonly tsLocal: readonly string[];
  readonly tsRemote: readonly string[];
  /** What the protocol version needs to rekey it (IKEv2: the chosen proposal and selectors). */
  readonly proto: P;
  /** Our rekey of it and one the peer started (IKEv2 §2.8.1 collision resolution). */
  rekeyOurs?: RekeyExchange;
  rekeyTheirs?: RekeyExchange;
  collisionResolved = false;
  #state: ChildState = 'installed';
  readonly #bus: EventBus;
  #connection: string;

  constructor(bus: EventBus, init: ChildSaInit, proto: P) {
    this.#bus = bus;
    this.#connection = init.connection;
    this.spiIn = init.spiIn;
    this.spiOut = init.spiOut;
    this.encr = init.encr;
    this.integ = init.integ;
    this.dh = init.dh;
    this.encapsulation = init.encapsulation;
    this.tsLocal = init.tsLocal;
    this.tsRemote = init.tsRemote;
    this.proto = proto;
  }

  get state(): ChildState {
    return this.#state;
  }

  /** Still usable for traffic and for a rekey (not replaced, not gone). */
  get live(): boolean {
    return this.#state === 'installed' || this.#state === 'rekeying';
  }

  /** The one place the state changes; a move the table does not allow is ignored (and false). */
  transition(to: ChildState, reason: string): boolean {
    const from = this.#state;
    if (from === to || !ALLOWED[from].includes(to)) return false;
    this.#state = to;
    this.#bus.emit('child-state', { connection: this.#connection, spiIn: this.spiIn, from, to, reason });
    return true;
  }
}
