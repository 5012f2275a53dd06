/**
 * One IKEv2 SA: the version-neutral SA (core/ike-sa.ts) plus its keys and the message layer
 * (message IDs, retransmission with backoff, the response cache for retransmitted requests,
 * RFC 7296 §2.1-2.2). Exchanges drive it through tasks (task.ts); it never decides protocol.
 */
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import { backoff, type TimerHandle } from '../core/clock.js';
import { BaseIkeSa, type SaContext } from '../core/ike-sa.js';
import type { CoreServices, Timing } from '../core/protocol.js';
import type { DhKeyPair } from '../crypto/dh.js';
import type { IkeKeys } from '../crypto/keys.js';
import type { PrfAlg } from '../crypto/prf.js';
import type { SkProtector } from '../crypto/sk.js';
import type { Chosen, ProposalSpec } from '../proposal.js';
import type { IkeTransport } from '../transport.js';
import { ExchangeType, HeaderFlag } from '../wire/constants.js';
import { encodeMessage } from '../wire/message.js';
import type { IkeHeader, IkeMessage, Payload, TrafficSelector } from '../wire/types.js';
import { type OpenedMessage, sealMessage } from './protect.js';

/** What IKEv2 keeps per CHILD_SA to rekey it (§2.8): the proposal chosen and the selectors. */
export interface V2Child {
  chosen: Chosen;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
}

export interface V2Context extends SaContext {
  transport: IkeTransport;
  timing: Timing;
  ports: { ike: number; natt: number };
}

/** One exchange that rekeyed this IKE SA: its nonces and the IKE SA it made. */
export interface IkeRekeyState {
  ni: Buffer;
  nr?: Buffer;
  fresh?: IkeSaV2;
}

/** The context every protocol's SAs share, taken from the core. */
export function protocolContext(core: CoreServices): V2Context {
  const { bus, clock, random, transport, timing, ports, table } = core;
  return { bus, clock, random, transport, timing, ports, table };
}

interface Pending {
  id: number;
  exchange: number;
  bytes: Buffer;
  to: Endpoint | undefined;
  tries: number;
  timer: TimerHandle | undefined;
  screen: ((msg: OpenedMessage) => string | undefined) | undefined;
  resolve: (msg: OpenedMessage) => void;
  reject: (err: IkeError) => void;
}

const EMPTY = Buffer.alloc(0);

export class IkeSaV2 extends BaseIkeSa<V2Child> {
  readonly version = 2 as const;
  declare readonly ctx: V2Context;

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
  /** Responder: a digest of the IKE_SA_INIT request, kept after the request itself goes. */
  initRequestDigest: Buffer | undefined;
  /** Raw bytes of the message being processed (set before dispatch). */
  lastInbound: Buffer = Buffer.alloc(0);
  cookie: Buffer | undefined;
  /** Our rekey of this IKE SA and one the peer started that we answered (§2.8.1 collisions). */
  ikeRekey: { ours?: IkeRekeyState; theirs?: IkeRekeyState; done?: boolean } = {};

  #nextRequestId = 0;
  #pending: Pending | undefined;
  #queue: { go: () => void; reject: (err: IkeError) => void }[] = [];
  #expectedRequestId = 0;
  #cachedResponse: { id: number; bytes: Buffer } | undefined;

  constructor(ctx: V2Context, o: ConstructorParameters<typeof BaseIkeSa>[1]) {
    super(ctx, o);
  }

  /**
   * Authenticated: what only IKE_SA_INIT and IKE_AUTH needed goes (the signed messages, the offer,
   * the last raw message). A hub holds thousands of established SAs; these were a third of each.
   */
  handshakeDone(): void {
    this.initRequest = EMPTY;
    this.initResponse = EMPTY;
    this.lastInbound = EMPTY;
    this.ikeOffer = [];
    this.candidates = [];
    // SK_pi / SK_pr only make and check the AUTH payloads (RFC 7296 §2.15): wiped and gone.
    if (this.keys) {
      this.keys.skPi.fill(0);
      this.keys.skPr.fill(0);
      this.keys = { ...this.keys, skeyseed: EMPTY, skPi: EMPTY, skPr: EMPTY };
    }
  }

  /** Requests in flight or queued end with 'sa_gone' (their callers must not wait forever). */
  protected onDead(): void {
    const gone = new IkeError('sa_gone', 'the IKE SA is gone');
    const p = this.#pending;
    const q = this.#queue;
    this.#pending = undefined;
    this.#queue = [];
    p?.reject(gone);
    for (const r of q) r.reject(gone);
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

  #transmit(bytes: Buffer, to: Endpoint = this.remote): void {
    this.lastSent = this.ctx.clock.now();
    this.ctx.transport.send(this.local, to, bytes);
  }

  /** Sends IKE_SA_INIT again from message ID 0 (after INVALID_KE_PAYLOAD or COOKIE). */
  restartInit(): void {
    if (this.#pending) this.timers.clear(this.#pending.timer);
    this.#pending = undefined;
    this.#nextRequestId = 0;
  }

  /**
   * Queues a request; only one is outstanding at a time (window size 1). Resolves with the
   * decrypted response, or rejects with IkeError 'timeout' after the last retransmission.
   * `sent` sees the bytes as they first go out (IKE_SA_INIT is signed by AUTH); `to` overrides the
   * destination (a liveness check to where ESP says the peer moved).
   */
  request(
    exchange: number,
    payloads: Payload[],
    o: {
      sent?: (bytes: Buffer) => void;
      to?: Endpoint;
      screen?: (msg: OpenedMessage) => string | undefined;
    } = {},
  ): Promise<OpenedMessage> {
    return new Promise<OpenedMessage>((resolve, reject) => {
      const go = (): void => {
        const id = this.#nextRequestId++;
        const bytes = this.#encode(exchange, id, false, payloads);
        o.sent?.(bytes);
        this.#pending = {
          id,
          exchange,
          bytes,
          to: o.to,
          tries: 0,
          timer: undefined,
          screen: o.screen,
          resolve,
          reject,
        };
        this.#transmit(bytes, o.to);
        this.#armRetransmit();
      };
      if (this.phase === 'dead') reject(new IkeError('sa_gone', 'the IKE SA is gone'));
      else if (this.#pending) this.#queue.push({ go, reject });
      else go();
    });
  }

  get busy(): boolean {
    return this.#pending !== undefined;
  }

  #next(): void {
    // Requests queued behind this one (e.g. a DELETE) still go out while the SA lives.
    if (!this.#pending && this.phase !== 'dead') this.#queue.shift()?.go();
  }

  #armRetransmit(): void {
    const p = this.#pending;
    if (!p) return;
    const t = this.ctx.timing;
    // Exponential backoff with up to 10% jitter, so peers that lost the same packet do not retry in step.
    const delay = backoff(this.ctx.random, p.tries, {
      base: t.retransmitBase,
      factor: t.retransmitFactor,
      jitter: 0.1,
    });
    p.timer = this.timers.set(delay, () => {
      if (this.#pending !== p) return;
      if (p.tries >= t.retransmitTries) {
        this.#pending = undefined;
        const name = ExchangeType[p.exchange] ?? String(p.exchange);
        p.reject(new IkeError('timeout', `no response to ${name}`));
        this.#next();
        return;
      }
      p.tries++;
      this.debug(`retransmit ${p.exchange} request ${p.id} (try ${p.tries})`);
      this.#transmit(p.bytes, p.to);
      this.#armRetransmit();
    });
  }

  /**
   * A response arrived: 'taken' when it answered the outstanding request, 'unexpected' when there
   * is none it answers, or why the request's screen ignored it (the request stays outstanding and
   * its retransmission timer runs on).
   */
  takeResponse(header: IkeHeader, msg: OpenedMessage): 'taken' | 'unexpected' | { ignored: string } {
    const p = this.#pending;
    if (!p || header.messageId !== p.id || header.exchange !== p.exchange) return 'unexpected';
    const ignored = p.screen?.(msg);
    if (ignored !== undefined) return { ignored };
    this.timers.clear(p.timer);
    this.#pending = undefined;
    p.resolve(msg);
    // The task continues in microtasks and may send its next request first; the queue waits a turn for that.
    setImmediate(() => this.#next());
    return 'taken';
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
