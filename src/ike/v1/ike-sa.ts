/**
 * One IKEv1 (ISAKMP) SA: the version-neutral SA (core/ike-sa.ts) plus phase 1 keys, the CBC IV
 * chains (RFC 2409 Appendix B, in V1Protector) and the message layer. IKEv1 has no response flag
 * and no message-ID window: an exchange is a fixed sequence of messages, so each side keeps the
 * last message it sent per exchange (message ID), retransmits it until the next one arrives, and
 * answers a repeated message with its last one again (RFC 2408 §5 leaves retransmission to us;
 * this is strongSwan's task_manager_v1 behaviour).
 */
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import { backoff, type TimerHandle } from '../core/clock.js';
import { BaseIkeSa } from '../core/ike-sa.js';
import type { PrfAlg } from '../crypto/prf.js';
import type { V1Protector } from '../crypto/v1-cbc.js';
import type { V1Keys } from '../crypto/v1-keys.js';
import type { Chosen } from '../proposal.js';
import type { V2Context } from '../v2/ike-sa.js';
import { encodeHeader, HEADER_LENGTH } from '../wire/header.js';
import type { TrafficSelector } from '../wire/types.js';
import { HeaderFlagV1, ISAKMP_VERSION } from '../wire/v1/constants.js';
import { rawPayloadsV1 } from '../wire/v1/message.js';
import { encodePayloadsV1 } from '../wire/v1/payloads.js';
import type { PayloadV1 } from '../wire/v1/types.js';
import type { V1Transform } from './proposal.js';
import type { QmState } from './quick-mode.js';

/** What IKEv1 keeps per IPsec SA to rekey it with a new quick mode. */
export interface V1Child {
  chosen: Chosen;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  /** The first pair that replaced this one (a rekey), to spot a second one (a collision). */
  successor?: Successor;
}

/** A replacing pair as both sides know it: the lower nonce of its quick mode, and who started it. */
export interface Successor {
  spiIn: number;
  nonce: Buffer;
  ours: boolean;
}

export type V1Context = V2Context;

/** How many superseded inbound messages are remembered to recognise late copies. */
const EARLIER = 4;
/** How many exchanges' last inbound messages are remembered (the rest have none in progress). */
const LAST_IN = 64;
/** How many finished exchanges' message IDs are remembered to refuse replays of them. */
const USED_IDS = 4096;

interface Outgoing {
  bytes: Buffer;
  /** The message this one answered (a repeat of it gets this one again), if any. */
  replyTo: Buffer | undefined;
  tries: number;
  timer?: TimerHandle;
  /** Retransmit until the next message of the exchange arrives (false: only on a repeat). */
  retransmit: boolean;
  onTimeout?: () => void;
}

export class IkeSaV1 extends BaseIkeSa<V1Child> {
  readonly version = 1 as const;
  declare readonly ctx: V1Context;

  /** Phase 1 step: which message we expect next (main mode 1-6, aggressive 1-3). */
  step = 0;
  aggressive = false;
  /** The initiator's SA payload body and our/peer's ID bodies: HASH_I/HASH_R sign them (§5). */
  saiB: Buffer = Buffer.alloc(0);
  /** Aggressive mode responder: IDii_b from the first message, for HASH_I in the third. */
  peerIdB: Buffer = Buffer.alloc(0);
  gxi: Buffer = Buffer.alloc(0);
  gxr: Buffer = Buffer.alloc(0);
  niB: Buffer = Buffer.alloc(0);
  nrB: Buffer = Buffer.alloc(0);
  dhPrivate: { computeSecret(peer: Buffer): Buffer; publicKey: Buffer; group: number } | undefined;
  /** Phase 1 choice: hash (the prf), cipher and its key length, DH group, lifetime (s). */
  p1: { hash: number; encr: number; keyLen: number; group: number; life: number } | undefined;
  /** The transforms we offered as initiator (the answer must be one of them). */
  p1Offer: V1Transform[] = [];
  prf: PrfAlg | undefined;
  keys: V1Keys | undefined;
  protector: V1Protector | undefined;
  /** The peer announced RFC 3947 NAT-T / DPD (RFC 3706) in its vendor IDs. */
  peerNatT = false;
  peerDpd = false;
  /** The NAT-T version in use, an index into phase1.ts NATT_VIDS: 0 = RFC 3947, else a draft. */
  nattVersion = 0;
  /** Quick modes in progress, by message ID (each has its own IV chain and nonces). */
  readonly quickModes = new Map<number, QmState>();
  /** DPD sequence numbers (RFC 3706 §7). */
  dpdSeq = 0;

  override get negotiatedLifetime(): number | undefined {
    return this.p1?.life;
  }

  readonly #out = new Map<number, Outgoing>();
  readonly #lastIn = new Map<number, Buffer>();
  /** Messages processed before the last one of their exchange (main mode's 1st and 2nd). */
  readonly #earlier: Buffer[] = [];
  /** Message IDs of finished exchanges, oldest first (bounded: USED_IDS). */
  readonly #used = new Set<number>();

  constructor(ctx: V1Context, o: ConstructorParameters<typeof BaseIkeSa>[1]) {
    super(ctx, o);
  }

  protected onDead(): void {
    for (const o of this.#out.values()) this.timers.clear(o.timer);
    this.#out.clear();
    // Pairs a responder put in before HASH(3) that never came (quick-mode.ts).
    // Our quick modes in flight end with the SA (their callers see sa_gone, as IKEv2's do).
    for (const q of this.quickModes.values()) {
      q.undo?.();
      q.done?.(new IkeError('sa_gone', 'the ISAKMP SA went away'));
    }
    this.quickModes.clear();
  }

  /** Encodes a message of exchange `mid` (encrypted once phase 1 keys exist, RFC 2409 §5). */
  encode(exchange: number, mid: number, payloads: PayloadV1[], encrypt: boolean, flags = 0): Buffer {
    const { first, bytes } = encodePayloadsV1(payloads);
    const body = encrypt ? this.protector!.encrypt(mid, bytes) : bytes;
    const header = encodeHeader({
      spiI: this.spiI,
      spiR: this.spiR,
      nextPayload: first,
      version: ISAKMP_VERSION,
      exchange,
      flags: flags | (encrypt ? HeaderFlagV1.ENCRYPTION : 0),
      messageId: mid,
      length: HEADER_LENGTH + body.length,
    });
    return Buffer.concat([header, body]);
  }

  /**
   * Sends a message of exchange `mid`. With `retransmit` it goes out again with backoff until
   * `settle(mid)` (the next message arrived); `onTimeout` runs after the last try.
   */
  send(mid: number, bytes: Buffer, o: { retransmit: boolean; onTimeout?: () => void; to?: Endpoint }): void {
    const prev = this.#out.get(mid);
    this.timers.clear(prev?.timer);
    const out: Outgoing = {
      bytes,
      replyTo: this.#lastIn.get(mid),
      tries: 0,
      retransmit: o.retransmit,
      onTimeout: o.onTimeout,
    };
    this.#out.set(mid, out);
    this.#transmit(bytes, o.to);
    if (o.retransmit) this.#arm(mid, out, o.to);
  }

  #transmit(bytes: Buffer, to: Endpoint = this.remote): void {
    this.lastSent = this.ctx.clock.now();
    this.ctx.transport.send(this.local, to, bytes);
  }

  #arm(mid: number, out: Outgoing, to?: Endpoint): void {
    const t = this.ctx.timing;
    const delay = backoff(this.ctx.random, out.tries, {
      base: t.retransmitBase,
      factor: t.retransmitFactor,
      jitter: 0.1,
    });
    out.timer = this.timers.set(delay, () => {
      if (this.#out.get(mid) !== out) return;
      if (out.tries >= t.retransmitTries) {
        out.retransmit = false;
        out.onTimeout?.();
        return;
      }
      out.tries++;
      this.debug(`retransmit message ${mid} (try ${out.tries})`);
      this.#transmit(out.bytes, to);
      this.#arm(mid, out, to);
    });
  }

  /** The next message of exchange `mid` arrived: stop retransmitting ours. */
  settle(mid: number): void {
    const out = this.#out.get(mid);
    if (!out) return;
    this.timers.clear(out.timer);
    out.retransmit = false;
  }

  /** Exchange `mid` is ours to remember (in progress, or finished and lingering for repeats). */
  hasExchange(mid: number): boolean {
    return this.#out.has(mid);
  }

  /** Forgets a finished quick mode or informational exchange. */
  forget(mid: number): void {
    this.settle(mid);
    this.#out.delete(mid);
    this.#lastIn.delete(mid);
    this.protector?.forget(mid);
    // Its ID stays spent: IKEv1 has no replay protection of its own (RFC 2408 §3.1 wants message
    // IDs unique per SA), and a recorded quick mode or informational played back later would
    // otherwise start the exchange again (a Diffie-Hellman and a pair held until it times out).
    this.#used.delete(mid);
    this.#used.add(mid);
    if (this.#used.size > USED_IDS) this.#used.delete(this.#used.values().next().value!);
  }

  /** `mid` belonged to an exchange that finished and was forgotten: a message for it is a replay. */
  spent(mid: number): boolean {
    return this.#used.has(mid);
  }

  /**
   * A datagram for exchange `mid`: true if it repeats the last one we processed. When our last
   * message of the exchange answered it, that goes out again (the peer evidently lost it); a
   * repeat of a message we did not answer (the last of an exchange) is only dropped, or two
   * sides would bounce their last messages forever.
   */
  isRepeat(mid: number, bytes: Buffer): boolean {
    // A late copy of an earlier message (the peer retransmitted it just before our answer
    // reached it) is no new message: dropped, not answered and not taken for the next step.
    if (this.#earlier.some((e) => e.equals(bytes))) return true;
    const last = this.#lastIn.get(mid);
    if (!last || !last.equals(bytes)) return false;
    const out = this.#out.get(mid);
    if (out?.replyTo?.equals(bytes)) this.#transmit(out.bytes);
    return true;
  }

  /** Remembers the message just processed of exchange `mid` (to recognise its repeats). */
  took(mid: number, bytes: Buffer): void {
    const prev = this.#lastIn.get(mid);
    if (prev) {
      this.#earlier.push(prev);
      if (this.#earlier.length > EARLIER) this.#earlier.shift();
    }
    this.#lastIn.delete(mid);
    this.#lastIn.set(mid, bytes);
    // Bounded whatever arrives: messages under made-up IDs that fail leave no exchange behind,
    // and only the most recent ones can still be repeated by the peer.
    if (this.#lastIn.size > LAST_IN) {
      for (const k of this.#lastIn.keys()) {
        if (k !== mid && !this.#out.has(k)) {
          this.#lastIn.delete(k);
          break;
        }
      }
    }
  }

  /** The body of the first payload of `type` in a clear message we encoded (SAi_b). */
  rawOut(bytes: Buffer, type: number): Buffer {
    const raws = rawPayloadsV1(bytes[16]!, bytes.subarray(HEADER_LENGTH));
    return Buffer.from(raws.find((r) => r.type === type)!.body);
  }

  /** A payload's body as it will be on the wire (IDii_b/IDir_b for HASH_I/HASH_R). */
  bodyOf(p: PayloadV1): Buffer {
    const { bytes } = encodePayloadsV1([p]);
    return bytes.subarray(4);
  }

  /** An exchange of ours is waiting for the peer (window of one per SA for ours, as in IKEv2). */
  get busy(): boolean {
    for (const o of this.#out.values()) if (o.retransmit) return true;
    return false;
  }
}
