/**
 * One IKEv2 SA: its keys and the message layer (message IDs, retransmission with backoff, the
 * response cache for retransmitted requests, RFC 7296 §2.1-2.2). The exchanges themselves live in
 * init.ts, auth.ts and info.ts and drive this object; it has one state-transition function.
 */
import { randomBytes } from 'node:crypto';
import type { ConnectionConfig } from '../../config/types.js';
import type { Endpoint } from '../../dataplane/types.js';
import type { EventBus, IkeState } from '../../events.js';
import type { DhKeyPair } from '../crypto/dh.js';
import type { IkeKeys } from '../crypto/keys.js';
import type { PrfAlg } from '../crypto/prf.js';
import type { SkProtector } from '../crypto/sk.js';
import type { Chosen, ProposalSpec } from '../proposal.js';
import type { IkeTransport } from '../transport.js';
import { HeaderFlag } from '../wire/constants.js';
import { encodeMessage } from '../wire/message.js';
import type { IkeHeader, IkeMessage, Payload, TrafficSelector } from '../wire/types.js';
import { type OpenedMessage, sealMessage } from './protect.js';

export type SaPhase = 'init' | 'auth' | 'established' | 'deleting' | 'dead';

export interface Timing {
  /** First retransmission timeout (ms), multiplied by `retransmitFactor` per try. */
  retransmitBase: number;
  retransmitFactor: number;
  retransmitTries: number;
  /** A responder SA that has not completed IKE_AUTH within this time is dropped (ms). */
  halfOpenTimeout: number;
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
  keepalive: 20_000,
  lifetimeUnit: 1000,
};

export interface ChildSa {
  spiIn: number;
  spiOut: number;
  chosen: Chosen;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  encapsulation: 'udp' | 'esp';
  /** Set once a rekey of this CHILD_SA succeeded (either side started it): no second rekey. */
  rekeyed?: boolean;
  /** Our rekey of this CHILD_SA (§2.8.1 collisions): our Ni, and once answered Nr and our new SPI. */
  rekeyOurs?: RekeyExchange;
  /** A rekey of this CHILD_SA the peer started and we answered: their Ni, our Nr, our new SPI. */
  rekeyTheirs?: RekeyExchange;
  /** The simultaneous-rekey collision on this CHILD_SA has been settled. */
  collisionResolved?: boolean;
}

/** One CREATE_CHILD_SA that rekeyed a CHILD_SA: its nonces and our inbound SPI of the new pair. */
export interface RekeyExchange {
  ni: Buffer;
  nr?: Buffer;
  spiIn?: number;
}

/** What an SA needs from its surroundings; the SA manager provides it. */
export interface SaEnv {
  transport: IkeTransport;
  bus: EventBus;
  timing: Timing;
  ports: { ike: number; natt: number };
  /** Called for every CHILD_SA put into the data plane (IKE_AUTH or rekey, either role). */
  childInstalled?: (sa: IkeSa, child: ChildSa) => void;
}

interface Pending {
  id: number;
  exchange: number;
  bytes: Buffer;
  tries: number;
  timer: NodeJS.Timeout | undefined;
  onResponse: (msg: OpenedMessage) => void;
  onTimeout: () => void;
}

let nextSerial = 1;

const PHASE_STATE: Record<SaPhase, IkeState> = {
  init: 'connecting',
  auth: 'connecting',
  established: 'established',
  deleting: 'deleting',
  dead: 'down',
};

export class IkeSa {
  readonly serial = nextSerial++;
  readonly createdAt = Date.now();
  readonly initiator: boolean;
  readonly env: SaEnv;
  /** The connection this SA serves; a responder learns it for sure only in IKE_AUTH. */
  conn: ConnectionConfig;
  /** Responder: every connection that matched the addresses in IKE_SA_INIT. */
  candidates: ConnectionConfig[];
  spiI: Buffer;
  spiR: Buffer = Buffer.alloc(8);
  local: Endpoint;
  remote: Endpoint;
  phase: SaPhase = 'init';

  // Negotiated state (RFC 7296 §2.14-2.15).
  ikeOffer: ProposalSpec[] = [];
  dhGroup = 0;
  dh: DhKeyPair | undefined;
  ni: Buffer = Buffer.alloc(0);
  nr: Buffer = Buffer.alloc(0);
  chosen: Chosen | undefined;
  prf: PrfAlg | undefined;
  keys: IkeKeys | undefined;
  skIn: SkProtector | undefined;
  skOut: SkProtector | undefined;
  /** The IKE_SA_INIT request and response exactly as sent: the AUTH payloads sign them. */
  initRequest: Buffer = Buffer.alloc(0);
  initResponse: Buffer = Buffer.alloc(0);
  /** Raw bytes of the message being processed (set by the SA manager before dispatch). */
  lastInbound: Buffer = Buffer.alloc(0);
  nat = { local: false, remote: false };
  cookie: Buffer | undefined;
  children: ChildSa[] = [];
  lastSent = 0;
  /** Our IKE_AUTH carried INITIAL_CONTACT (so sibling tunnels of the same identities need not). */
  sentInitialContact = false;
  /** When the last valid, authenticated message from the peer arrived (DPD; ESP not counted). */
  lastReceived = Date.now();
  /** Set when this SA's failure should not be retried (e.g. deleted by an operator). */
  failureReason = '';

  #nextRequestId = 0;
  #pending: Pending | undefined;
  #queue: (() => void)[] = [];
  #expectedRequestId = 0;
  #cachedResponse: { id: number; bytes: Buffer } | undefined;
  #timers = new Set<NodeJS.Timeout>();

  constructor(
    env: SaEnv,
    opts: {
      initiator: boolean;
      conn: ConnectionConfig;
      candidates?: ConnectionConfig[];
      local: Endpoint;
      remote: Endpoint;
      spiI?: Buffer;
    },
  ) {
    this.env = env;
    this.initiator = opts.initiator;
    this.conn = opts.conn;
    this.candidates = opts.candidates ?? [opts.conn];
    this.local = opts.local;
    this.remote = opts.remote;
    this.spiI = opts.spiI ?? randomBytes(8);
  }

  /** Our own SPI: the key the SA manager files this SA under. */
  get ourSpi(): Buffer {
    return this.initiator ? this.spiI : this.spiR;
  }

  get name(): string {
    return this.conn.name;
  }

  get ikeState(): IkeState {
    return PHASE_STATE[this.phase];
  }

  /**
   * RFC 3948 §2.3: behind a NAT, send a one-byte keep-alive when nothing else went out for
   * `interval` ms, so the NAT mapping for port 4500 never expires.
   */
  startKeepalives(interval: number): void {
    const tick = (): void => {
      if (this.phase !== 'established') return;
      if (Date.now() - this.lastSent >= interval) this.env.transport.sendKeepalive(this.local, this.remote);
      this.setTimer(interval, tick);
    };
    this.setTimer(interval, tick);
  }

  /** The one place the SA changes phase: every change is an event (logs, metrics and HA listen). */
  transition(to: SaPhase, reason: string): void {
    if (this.phase === to) return;
    const from = this.ikeState;
    this.phase = to;
    if (to === 'dead') this.#stopTimers();
    const now = this.ikeState;
    if (from !== now) {
      this.env.bus.emit('ike-state', {
        connection: this.name,
        from,
        to: now,
        reason,
        spiI: this.spiI.toString('hex'),
        spiR: this.spiR.toString('hex'),
      });
    }
  }

  /** Announces a new SA (down -> connecting); later changes go through transition(). */
  begin(reason: string): void {
    this.env.bus.emit('ike-state', {
      connection: this.name,
      from: 'down',
      to: 'connecting',
      reason,
      spiI: this.spiI.toString('hex'),
    });
  }

  debug(message: string): void {
    this.env.bus.emit('ike-debug', { connection: this.name, message: `[#${this.serial}] ${message}` });
  }

  setTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.#timers.add(t);
    return t;
  }

  clearTimer(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.#timers.delete(t);
  }

  #stopTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#pending = undefined;
    this.#queue = [];
  }

  #header(exchange: number, messageId: number, response: boolean): IkeMessage['header'] {
    let flags = this.initiator ? HeaderFlag.INITIATOR : 0;
    if (response) flags |= HeaderFlag.RESPONSE;
    return { spiI: this.spiI, spiR: this.spiR, version: 0x20, exchange, flags, messageId };
  }

  #encode(exchange: number, messageId: number, response: boolean, payloads: Payload[]): Buffer {
    const header = this.#header(exchange, messageId, response);
    if (!this.skOut) return encodeMessage({ header, payloads });
    return sealMessage(header, payloads, this.skOut);
  }

  #transmit(bytes: Buffer): void {
    this.lastSent = Date.now();
    this.env.transport.send(this.local, this.remote, bytes);
  }

  /** Sends IKE_SA_INIT again from message ID 0 (after INVALID_KE_PAYLOAD or COOKIE). */
  restartInit(): void {
    if (this.#pending) this.clearTimer(this.#pending.timer);
    this.#pending = undefined;
    this.#nextRequestId = 0;
  }

  /**
   * Queues a request; only one is outstanding at a time (window size 1). The callback runs once
   * with the decrypted response, or `onTimeout` after the last retransmission.
   */
  request(
    exchange: number,
    payloads: Payload[],
    onResponse: (m: OpenedMessage) => void,
    onTimeout: () => void,
  ): Buffer {
    let sent: Buffer = Buffer.alloc(0);
    const go = (): void => {
      const id = this.#nextRequestId++;
      const bytes = this.#encode(exchange, id, false, payloads);
      sent = bytes;
      this.#pending = { id, exchange, bytes, tries: 0, timer: undefined, onResponse, onTimeout };
      this.#transmit(bytes);
      this.#armRetransmit();
    };
    if (this.#pending) this.#queue.push(go);
    else go();
    return sent;
  }

  get busy(): boolean {
    return this.#pending !== undefined;
  }

  #armRetransmit(): void {
    const p = this.#pending;
    if (!p) return;
    const { retransmitBase, retransmitFactor, retransmitTries } = this.env.timing;
    // Exponential backoff with up to 10% jitter, so peers that lost the same packet do not retry in step.
    const delay = retransmitBase * retransmitFactor ** p.tries * (1 + Math.random() * 0.1);
    p.timer = this.setTimer(delay, () => {
      if (this.#pending !== p) return;
      if (p.tries >= retransmitTries) {
        this.#pending = undefined;
        p.onTimeout();
        // Requests queued behind the lost one (e.g. a DELETE) still go out while the SA lives.
        if (!this.#pending && this.phase !== 'dead') this.#queue.shift()?.();
        return;
      }
      p.tries++;
      this.debug(`retransmit ${p.exchange} request ${p.id} (try ${p.tries})`);
      this.#transmit(p.bytes);
      this.#armRetransmit();
    });
  }

  /** A response arrived: true when it answered the outstanding request. */
  takeResponse(header: IkeHeader, msg: OpenedMessage): boolean {
    const p = this.#pending;
    if (!p || header.messageId !== p.id || header.exchange !== p.exchange) return false;
    this.clearTimer(p.timer);
    this.#pending = undefined;
    p.onResponse(msg);
    // The callback may have sent a request itself: the queue waits for that one.
    if (!this.#pending && this.phase !== 'dead') this.#queue.shift()?.();
    return true;
  }

  /**
   * Classifies an incoming request by message ID: 'new' to process, 'retransmit' (answered here
   * from the cache), or 'invalid' to drop (§2.2).
   */
  admitRequest(header: IkeHeader): 'new' | 'retransmit' | 'invalid' {
    if (header.messageId === this.#expectedRequestId) return 'new';
    if (this.#cachedResponse && header.messageId === this.#cachedResponse.id) {
      this.#transmit(this.#cachedResponse.bytes);
      return 'retransmit';
    }
    return 'invalid';
  }

  /** Answers the request with message ID `messageId` and caches the answer for retransmits. */
  respond(exchange: number, messageId: number, payloads: Payload[]): Buffer {
    const bytes = this.#encode(exchange, messageId, true, payloads);
    this.#cachedResponse = { id: messageId, bytes };
    this.#expectedRequestId = messageId + 1;
    this.#transmit(bytes);
    return bytes;
  }
}
