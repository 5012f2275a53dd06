/**
 * IKEv1 as the core drives it: takes the datagrams of major version 1, finds or creates the
 * ISAKMP SA by its cookies, drops repeats (answering with our last message), decrypts, and hands
 * the message to main mode, quick mode or the informational handler.
 */
import type { ConnectionConfig } from '../../config/types.js';
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError, TwinsecError } from '../../errors.js';
import type { ChildSa } from '../core/child-sa.js';
import { newIkeSpi } from '../core/ike-sa.js';
import type { AnySa, CoreServices, IkeProtocol } from '../core/protocol.js';
import type { Datagram } from '../transport.js';
import { protocolContext } from '../v2/ike-sa.js';
import { ExchangeTypeV1, NotifyTypeV1, PayloadTypeV1 } from '../wire/v1/constants.js';
import { decodeMessageV1, decodePayloadsV1, isEncryptedV1, rawPayloadsV1 } from '../wire/v1/message.js';
import type { HeaderV1, PayloadV1, RawPayloadV1 } from '../wire/v1/types.js';
import { aggressiveModeInitiator, aggressiveModeResponder, aggressiveModeStart } from './aggressive-mode.js';
import { IkeSaV1, type V1Child, type V1Context } from './ike-sa.js';
import {
  deleteEsp,
  deleteIsakmp,
  dpdNotify,
  informationalInput,
  sendInformational,
} from './informational.js';
import { mainModeInitiator, mainModeResponder, mainModeStart } from './main-mode.js';
import { quickModeInitiate, quickModeInput } from './quick-mode.js';

/** A message as the exchanges see it: payloads decoded and as on the wire (for the hashes). */
export interface InV1 {
  header: HeaderV1;
  payloads: PayloadV1[];
  raw: RawPayloadV1[];
  d: Datagram;
  /**
   * The message's HASH verified: a sign of life from the peer, and where it now sends from
   * (core.peerSeen). Never earlier: IKEv1 encryption has no integrity of its own, so anyone who
   * saw the cookies can send something that decrypts (to garbage) from anywhere.
   */
  authentic: () => void;
}

const ZERO = Buffer.alloc(8);
const MM = ExchangeTypeV1.IDENTITY_PROTECTION;
const AM = ExchangeTypeV1.AGGRESSIVE;
const halfOpenKey = (h: HeaderV1, d: Datagram): string => `${h.spiI.toString('hex')}|${d.remote.address}|v1`;
const modeName = (exchange: number): string => (exchange === AM ? 'aggressive mode' : 'main mode');
/** ms a replaced IPsec SA stays after its successor is installed. */
const REPLACED_LINGER = 1000;
/**
 * Aggressive mode message 1 costs the responder a Diffie-Hellman before anything is proven (RFC
 * 2409 §5.4: KE goes out in its answer) and spoofed sources cost nothing to send: at most this many
 * are answered per second, in bursts of as many. Real initiators retransmit.
 */
const AM_DH_PER_SECOND = 50;

export class IkeV1 implements IkeProtocol {
  readonly version = 1 as const;
  readonly #core: CoreServices;
  readonly #ctx: V1Context;
  readonly #dpd = new WeakMap<IkeSaV1, Map<number, (alive: boolean) => void>>();
  /** Re-authentications in flight: the new SA and who waits for its first quick mode. */
  /** Token bucket of aggressive mode answers (AM_DH_PER_SECOND): tokens and when last filled. */
  #amTokens = AM_DH_PER_SECOND;
  #amFilled = 0;
  readonly #reauth = new WeakMap<IkeSaV1, { resolve: () => void; reject: (e: IkeError) => void }>();

  constructor(core: CoreServices) {
    this.#core = core;
    this.#ctx = protocolContext(core);
  }

  initiate(conn: ConnectionConfig): void {
    this.#phase1(conn, `initiating ${conn.mode ?? 'main'} mode to ${conn.remote}`);
  }

  /** A new ISAKMP SA as initiator, in the connection's mode (main unless `mode: aggressive`). */
  #phase1(conn: ConnectionConfig, why: string, onTimeout?: () => void): IkeSaV1 {
    const core = this.#core;
    const sa = new IkeSaV1(this.#ctx, {
      initiator: true,
      conn,
      local: { address: conn.local, port: core.ports.ike },
      remote: { address: conn.remote, port: core.ports.ike },
    });
    core.table.add(sa);
    sa.begin(why);
    const start = conn.mode === 'aggressive' ? aggressiveModeStart : mainModeStart;
    start(sa, () => {
      this.#failed(sa, new IkeError('timeout', `no answer in ${conn.mode ?? 'main'} mode`));
      onTimeout?.();
    });
    return sa;
  }

  #failed(sa: IkeSaV1, e: IkeError): void {
    if (sa.phase !== 'dead') this.#core.failed(sa, e.reason, e.message);
  }

  /**
   * IKEv1 has no phase 1 rekey (RFC 2409): like strongSwan, twinsec re-authenticates. A new main
   * (or aggressive) mode and its quick mode come up beside the old SAs (make-before-break); then
   * the old IPsec SAs and the old ISAKMP SA are deleted, on both sides by our DELETEs.
   */
  async rekeyIke(sa: AnySa): Promise<AnySa> {
    const old = sa as IkeSaV1;
    const fresh = await new Promise<IkeSaV1>((resolve, reject) => {
      const n = this.#phase1(old.conn, `re-authenticating ISAKMP SA #${old.serial}`, () =>
        reject(new IkeError('timeout', 'no answer to the re-authentication')),
      );
      this.#reauth.set(n, { resolve: () => resolve(n), reject });
    });
    await this.#linger(old, old.conn.ike.lifetime);
    if (old.phase === 'dead') return fresh;
    const spis = old.children.map((c) => c.spiIn);
    if (spis.length) sendInformational(old, [deleteEsp(spis)]);
    for (const spi of spis) this.#core.removeChild(old, spi, 'replaced by re-authentication');
    sendInformational(old, [deleteIsakmp(old)]);
    this.#core.destroy(old, `re-authenticated as ISAKMP SA #${fresh.serial}`);
    return fresh;
  }

  async rekeyChild(sa: AnySa, child: ChildSa<unknown>): Promise<void> {
    const v1 = sa as IkeSaV1;
    child.transition('rekeying', 'soft lifetime');
    try {
      await quickModeInitiate(this.#core, v1, child as ChildSa<V1Child>);
    } catch (err) {
      child.transition('installed', 'rekey failed');
      throw err;
    }
    // The peer installs the new pair when HASH(3) reaches it; the old one goes a moment later.
    await this.#linger(v1, v1.conn.esp.lifetime);
    if (v1.phase === 'dead') return;
    sendInformational(v1, [deleteEsp([child.spiIn])]);
    this.#core.removeChild(sa, child.spiIn, 'rekeyed');
  }

  /** How long a replaced pair stays after its successor is up (the peer may still be installing it). */
  #linger(sa: IkeSaV1, lifetime: number): Promise<void> {
    // A bounded wait that must end (the caller checks the SA is still there afterwards); well
    // inside the soft-to-hard margin (10 % of the lifetime) however short the lifetime is.
    const ms = Math.min(REPLACED_LINGER, lifetime * this.#core.timing.lifetimeUnit * 0.05);
    return new Promise((r) => sa.ctx.clock.setTimer(ms, r, true));
  }

  async deleteIke(sa: AnySa): Promise<void> {
    const v1 = sa as IkeSaV1;
    if (v1.keys) sendInformational(v1, [deleteIsakmp(v1)]);
  }

  async deleteChildren(sa: AnySa, spisIn: number[]): Promise<void> {
    const v1 = sa as IkeSaV1;
    if (v1.keys) sendInformational(v1, [deleteEsp(spisIn)]);
  }

  /** RFC 3706: R-U-THERE with the next sequence number; alive when its ACK arrives in time. */
  liveness(sa: AnySa, to?: Endpoint): Promise<boolean> {
    const v1 = sa as IkeSaV1;
    if (!v1.keys) return Promise.resolve(false);
    const seq = ++v1.dpdSeq;
    return new Promise((resolve) => {
      const waits = this.#dpd.get(v1) ?? new Map<number, (alive: boolean) => void>();
      this.#dpd.set(v1, waits);
      waits.set(seq, resolve);
      const t = this.#core.timing;
      const limit = t.retransmitBase * (t.retransmitTries + 1);
      v1.timers.set(limit, () => {
        if (waits.delete(seq)) resolve(false);
      });
      sendInformational(v1, [dpdNotify(v1, NotifyTypeV1.R_U_THERE, seq)], to);
    });
  }

  busy(sa: AnySa): boolean {
    return (sa as IkeSaV1).busy;
  }

  /* ------------------------------------------------------------ dispatch */

  handle(d: Datagram): void {
    const core = this.#core;
    const m = decodeMessageV1(d.data);
    const h = m.header;
    let sa = this.#lookup(h);
    if (!sa) {
      if ((h.exchange !== MM && h.exchange !== AM) || !h.spiR.equals(ZERO) || h.messageId !== 0)
        return core.drop('unknown_spi', `no ISAKMP SA ${h.spiI.toString('hex')}`, d);
      // A repeated first message (the initiator's retransmission before our answer reached it)
      // belongs to the SA it created: answered again from there, never a second SA.
      const known = core.table.halfOpen(halfOpenKey(h, d));
      sa = known instanceof IkeSaV1 ? known : this.#responder(d, h);
      if (!sa) return;
    }
    // A message carrying the responder cookie we sent (RFC 2408 §2.5.3) comes from a peer that
    // receives at its address: its SA is no longer one a spoofed flood could have made.
    if (!sa.initiator && h.spiR.equals(sa.spiR)) {
      core.table.proven(sa);
      sa.announce();
    }
    const mid = h.messageId;
    if (sa.isRepeat(mid, d.data)) return;
    if (mid !== 0 && sa.spent(mid))
      return core.drop('unexpected', `message ID ${mid} already used (a replay)`, d);
    let payloads: PayloadV1[];
    let raw: RawPayloadV1[];
    if (isEncryptedV1(m)) {
      if (!sa.protector) return core.drop('unexpected', 'encrypted message before keys exist', d);
      // The phase-1 IV chain ends with phase 1 (its last block seeds every later exchange's IV,
      // RFC 2409 App. B); repeats were answered above, anything else under ID 0 is not ours.
      if (mid === 0 && sa.phase === 'established')
        return core.drop('unexpected', 'phase 1 message after phase 1', d);
      try {
        // Later exchanges adopt the next IV only once their HASH verified (quick-mode.ts,
        // informational.ts): a forged or garbled message cannot desynchronise the chain.
        const plain = sa.protector.decrypt(mid, m.ciphertext, { defer: mid !== 0 });
        payloads = decodePayloadsV1(m.firstPayload, plain);
        raw = rawPayloadsV1(m.firstPayload, plain, true);
      } catch (err) {
        // The first encrypted phase 1 message that does not decrypt to payloads means the two
        // sides derived different keys: almost always a PSK mismatch (RFC 2409 §5).
        if (mid === 0 && sa.phase !== 'established') {
          const what = `${modeName(h.exchange)} message does not decrypt: PSK mismatch?`;
          this.#failed(sa, new IkeError('auth_failed', what));
        }
        throw err;
      }
    } else {
      // Aggressive mode's last message may come in the clear (RFC 2409 marks no payload of it
      // encrypted; strongSwan accepts both): HASH_I still authenticates it. A clear message with
      // an SA payload is a changed first message, not the third: dropped, the SA kept.
      const lastAm =
        h.exchange === AM &&
        !sa.initiator &&
        sa.phase !== 'established' &&
        !m.payloads.some((p) => p.type === PayloadTypeV1.SA);
      if (sa.protector && !lastAm) return core.drop('unexpected', 'clear message after phase 1 keys', d);
      payloads = m.payloads;
      raw = rawPayloadsV1(d.data[16]!, d.data.subarray(28));
    }
    sa.took(mid, d.data);
    const authentic = () => core.peerSeen(sa, d);
    this.#dispatch(sa, { header: h, payloads, raw, d, authentic });
  }

  #lookup(h: HeaderV1): IkeSaV1 | undefined {
    const t = this.#core.table;
    const asResponder = h.spiR.equals(ZERO) ? undefined : t.get(h.spiR);
    if (asResponder instanceof IkeSaV1 && !asResponder.initiator && asResponder.spiI.equals(h.spiI))
      return asResponder;
    const asInitiator = t.get(h.spiI);
    if (asInitiator instanceof IkeSaV1 && asInitiator.initiator) return asInitiator;
    return undefined;
  }

  #responder(d: Datagram, h: HeaderV1): IkeSaV1 | undefined {
    const core = this.#core;
    const limit = core.table.overLimit(d.remote.address);
    if (limit) {
      core.drop('limit', limit, d);
      return undefined;
    }
    // As strongSwan: a connection answers only the mode it is configured for, so aggressive
    // mode (whose PSK hash an eavesdropper can attack offline) is never accepted unasked.
    const aggressive = h.exchange === AM;
    const candidates = core.conns
      .candidates(1, d.local.address, d.remote.address)
      .filter((c) => (c.mode === 'aggressive') === aggressive);
    if (!candidates.length) {
      const what = `no IKEv1 ${modeName(h.exchange)} connection`;
      core.drop('no_connection', `${what} for ${d.remote.address} -> ${d.local.address}`, d);
      return undefined;
    }
    if (aggressive && !this.#amToken()) {
      core.drop('limit', `aggressive mode answers over ${AM_DH_PER_SECOND}/s`, d);
      return undefined;
    }
    // IKEv1 has no stateless challenge (RFC 7296 §2.6's COOKIE is IKEv2's): a first message from
    // a spoofed source costs an SA until the peer echoes our responder cookie. Those unproven SAs
    // are capped per source and in total, and at a cap the oldest one makes room (SaLimits.unproven).
    for (const old of core.table.unprovenVictims(d.remote.address)) {
      core.drop('displaced', `unproven ISAKMP SA from ${old.remote.address} made room`, d);
      core.destroy(old, 'displaced by a newer unproven SA');
    }
    const sa = new IkeSaV1(this.#ctx, {
      initiator: false,
      conn: candidates[0]!,
      candidates,
      local: d.local,
      remote: d.remote,
      spiI: Buffer.from(h.spiI),
    });
    sa.spiR = newIkeSpi(sa.ctx);
    sa.aggressive = aggressive;
    sa.step = 1;
    core.table.add(sa);
    core.table.addHalfOpen(halfOpenKey(h, d), sa, true);
    // Announced (an event, a log line) once the peer echoes our cookie: a spoofed flood's are not.
    sa.beginUnproven(`${modeName(h.exchange)} from ${d.remote.address}`);
    sa.timers.set(core.timing.halfOpenTimeout, () => {
      if (sa.phase !== 'established') core.destroy(sa, 'half-open timeout');
    });
    sa.timers.set(core.timing.halfOpenUnprovenTimeout, () => {
      if (core.table.isUnproven(sa)) core.destroy(sa, 'peer never echoed our cookie');
    });
    return sa;
  }

  #amToken(): boolean {
    const now = this.#core.clock.now();
    const refill = ((now - this.#amFilled) / 1000) * AM_DH_PER_SECOND;
    this.#amTokens = Math.min(AM_DH_PER_SECOND, this.#amTokens + refill);
    this.#amFilled = now;
    if (this.#amTokens < 1) return false;
    this.#amTokens -= 1;
    return true;
  }

  /** One phase 1 message to its mode and role; true once the ISAKMP SA is authenticated. */
  #phase1Input(sa: IkeSaV1, m: InV1): boolean {
    const core = this.#core;
    const mode = modeName(m.header.exchange);
    const timeout = () => this.#failed(sa, new IkeError('timeout', `no answer in ${mode}`));
    if (m.header.exchange === AM)
      return sa.initiator
        ? aggressiveModeInitiator(core, sa, m)
        : aggressiveModeResponder(core, sa, m, timeout);
    return sa.initiator ? mainModeInitiator(core, sa, m, timeout) : mainModeResponder(core, sa, m);
  }

  /** Phase 1 is done: the initiator goes on with its first quick mode (the same in both modes). */
  #phase1Done(sa: IkeSaV1): void {
    const core = this.#core;
    core.established(sa);
    if (!sa.initiator) return;
    const waiting = this.#reauth.get(sa);
    this.#reauth.delete(sa);
    // A re-authentication's first pair replaces the old SA's: outbound once the peer uses it.
    quickModeInitiate(core, sa, undefined, waiting !== undefined).then(
      () => waiting?.resolve(),
      (err) => {
        const e = IkeError.from(err);
        core.bus.emit('ike-failure', { connection: sa.name, reason: e.reason, detail: e.message });
        waiting?.reject(e);
      },
    );
  }

  #dispatch(sa: IkeSaV1, m: InV1): void {
    const core = this.#core;
    try {
      switch (m.header.exchange) {
        case MM:
        case AM: {
          if (sa.phase === 'established' || (m.header.exchange === AM) !== sa.aggressive)
            return core.drop('unexpected', `${modeName(m.header.exchange)} message on this SA`, m.d);
          if (this.#phase1Input(sa, m)) this.#phase1Done(sa);
          return;
        }
        case ExchangeTypeV1.QUICK:
          if (sa.phase !== 'established') return core.drop('unexpected', 'quick mode before phase 1', m.d);
          quickModeInput(core, sa, m);
          return;
        case ExchangeTypeV1.INFORMATIONAL:
          if (!sa.keys) return core.drop('unexpected', 'unprotected informational', m.d);
          informationalInput(core, sa, m, (seq) => {
            const w = this.#dpd.get(sa)?.get(seq);
            this.#dpd.get(sa)?.delete(seq);
            w?.(true);
          });
          return;
        default:
          core.drop('unexpected', `ISAKMP exchange ${m.header.exchange}`, m.d);
      }
    } catch (err) {
      // Not one of ours: a bug met an input nobody foresaw. Counted apart, so fuzzing sees it.
      const e = IkeError.from(err, err instanceof TwinsecError ? 'invalid_syntax' : 'internal_error');
      core.drop(e.reason, e.message, m.d);
      // A phase 1 message that is garbled, truncated or a late copy is only dropped (the peer
      // retransmits the real one, as strongSwan expects); one that says no ends the attempt.
      const garbled = e.reason === 'invalid_syntax' || e.reason === 'unexpected';
      if (m.header.exchange === MM || m.header.exchange === AM) {
        if (!garbled) this.#failed(sa, e);
      } else core.bus.emit('ike-failure', { connection: sa.name, reason: e.reason, detail: e.message });
    }
  }
}
