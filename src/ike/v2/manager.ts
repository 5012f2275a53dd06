/**
 * The IKEv2 SA manager: files SAs by our SPI, dispatches datagrams to them, creates responder SAs
 * for IKE_SA_INIT, initiates and re-initiates connections with backoff, and owns the data-plane
 * hand-off. Every drop is counted and reported on the bus with its reason.
 */
import type { Config, ConnectionConfig } from '../../config/types.js';
import type { DataPlane } from '../../dataplane/types.js';
import { CryptoError, WireError } from '../../errors.js';
import type { EventBus } from '../../events.js';
import { parseProposals } from '../proposal.js';
import type { Datagram, IkeTransport } from '../transport.js';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import { decodeHeader } from '../wire/header.js';
import { decodeMessage, encodeMessage, peekVersion } from '../wire/message.js';
import { checkMessageRules } from '../wire/rules.js';
import type { IkeHeader, Payload } from '../wire/types.js';
import { type AuthHooks, processAuthRequest, sendAuthRequest } from './auth.js';
import { spiBuffer } from './child.js';
import { startDpd } from './dpd.js';
import { type ChildSa, DEFAULT_TIMING, IkeSa, type SaEnv, type Timing } from './ike-sa.js';
import { type InfoHooks, processInfoRequest, sendIkeDelete } from './info.js';
import { type InitFailure, preferredGroup, processInitRequest, sendInitRequest } from './init.js';
import { notify } from './payload-find.js';
import { type OpenedMessage, openMessage } from './protect.js';
import { processCreateChildRequest, type RekeyHooks, rekeyChild, rekeyIke } from './rekey.js';

/** SAs younger than this are never treated as stale on INITIAL_CONTACT (ms). */
const SIMULTANEOUS_WINDOW = 10_000;

/*
 * SA lifetimes (RFC 7296 §2.8): every IKE SA and CHILD_SA is rekeyed by us at a soft limit of
 * REKEY_AT + random(0..REKEY_JITTER) of its configured lifetime (80-90 %: the jitter makes it
 * unlikely that both peers rekey the same SA at once), and deleted at the hard limit, the lifetime
 * itself, if it is still there. A failed rekey is tried once more after RETRY_AT of the lifetime.
 */
const REKEY_AT = 0.8;
const REKEY_JITTER = 0.1;
const RETRY_AT = 0.03;
/** setTimeout's limit; longer lifetimes (up to a year) are waited for in steps. */
const MAX_TIMEOUT = 2 ** 31 - 1;

/** The soft limit: the configured rekeyTime minus up to 10% jitter, or 80-90% of the lifetime. */
const softDelay = (life: number, rekey?: number): number =>
  rekey !== undefined
    ? rekey * (1 - Math.random() * REKEY_JITTER)
    : life * (REKEY_AT + Math.random() * REKEY_JITTER);

/** An SA timer of any length: re-armed in MAX_TIMEOUT steps, gone with the SA. */
function saTimer(sa: IkeSa, ms: number, fn: () => void): void {
  sa.setTimer(Math.min(ms, MAX_TIMEOUT), () => (ms > MAX_TIMEOUT ? saTimer(sa, ms - MAX_TIMEOUT, fn) : fn()));
}

interface ChildLife {
  soft?: NodeJS.Timeout;
  hard?: NodeJS.Timeout;
  /** The one retry after a failed rekey has been used. */
  retried: boolean;
}

export interface ManagerOptions {
  config: Config;
  transport: IkeTransport;
  dataplane: DataPlane;
  bus: EventBus;
  timing?: Partial<Timing>;
  /** Re-initiation backoff after a failure (ms): base * 2^attempt, capped. */
  retry?: { base: number; max: number };
  limits?: Partial<SaLimits>;
}

/**
 * Bounds on the state a peer can make us hold. IKE_SA_INIT requests beyond them are dropped and
 * counted ('limit'); half-open SAs also time out (Timing.halfOpenTimeout).
 */
export interface SaLimits {
  /** Responder SAs still waiting for IKE_AUTH, per peer address. */
  halfOpenPerPeer: number;
  /** Responder SAs still waiting for IKE_AUTH, in total. */
  halfOpen: number;
  /** IKE SAs (any state) per peer address. */
  perPeer: number;
  /** IKE SAs (any state) in total. */
  total: number;
}

export const DEFAULT_LIMITS: SaLimits = { halfOpenPerPeer: 16, halfOpen: 1024, perPeer: 64, total: 8192 };

export class IkeManager {
  readonly #env: SaEnv;
  readonly #dp: DataPlane;
  readonly #bus: EventBus;
  readonly #retryCfg: { base: number; max: number };
  readonly #limits: SaLimits;
  #conns: Map<string, ConnectionConfig>;
  readonly #sas = new Map<string, IkeSa>();
  /** Responder SAs by initiator SPI and address, to recognise a retransmitted IKE_SA_INIT. */
  readonly #halfOpen = new Map<string, IkeSa>();
  readonly #retries = new Map<string, { timer?: NodeJS.Timeout; attempt: number }>();
  readonly dropped = new Map<string, number>();
  /** Connections an operator took down: no initiation, no retries, peers' attempts refused. */
  readonly #adminDown = new Set<string>();
  /**
   * Soft/hard lifetime timers per CHILD_SA (our inbound SPI). Kept here, not on the IKE SA, since
   * an IKE SA rekey hands the children over to the new IKE SA.
   */
  readonly #childLife = new Map<number, ChildLife>();
  /** IKE SAs with an IKE SA rekey of ours in flight: CHILD_SA rekeys wait for it. */
  readonly #ikeRekeying = new WeakSet<IkeSa>();
  #stopped = false;

  constructor(opts: ManagerOptions) {
    this.#env = {
      transport: opts.transport,
      bus: opts.bus,
      timing: { ...DEFAULT_TIMING, ...opts.timing },
      ports: opts.config.ports,
      childInstalled: (sa, child) => this.#childInstalled(sa, child),
    };
    this.#dp = opts.dataplane;
    this.#bus = opts.bus;
    this.#retryCfg = opts.retry ?? { base: 2000, max: 60_000 };
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.#conns = new Map(
      Object.values(opts.config.connections)
        .filter((c) => c.version === 2)
        .map((c) => [c.name, c]),
    );
    opts.transport.onReceive((d) => this.handle(d));
  }

  start(): void {
    for (const c of this.#conns.values()) if (c.start === 'initiate') this.initiate(c.name);
  }

  /** SAs of a connection, newest first. */
  sasOf(name: string): IkeSa[] {
    return [...this.#sas.values()].filter((s) => s.conn.name === name && s.phase !== 'dead').reverse();
  }

  /* ------------------------------------------------------------ initiation */

  initiate(name: string): void {
    const conn = this.#conns.get(name);
    if (!conn || this.#stopped || this.#adminDown.has(name)) return;
    if (this.sasOf(name).some((s) => s.phase !== 'deleting')) return;
    const ports = this.#env.ports;
    const sa = new IkeSa(this.#env, {
      initiator: true,
      conn,
      local: { address: conn.local, port: ports.ike },
      remote: { address: conn.remote, port: ports.ike },
    });
    sa.ikeOffer = parseProposals(conn.ike.proposals, 'ike');
    sa.dhGroup = preferredGroup(sa.ikeOffer);
    this.#sas.set(sa.ourSpi.toString('hex'), sa);
    sa.begin(`initiating to ${conn.remote}`);
    sendInitRequest(sa, (err) => {
      if (err) return this.#failed(sa, err);
      sa.phase = 'auth';
      sendAuthRequest(sa, this.#authHooks, (err2) => {
        if (err2) return this.#failed(sa, err2);
        this.#retries.delete(name);
        this.#established(sa);
      });
    });
  }

  #failed(sa: IkeSa, err: InitFailure): void {
    this.#bus.emit('ike-failure', { connection: sa.name, reason: err.reason, detail: err.message });
    if (sa.phase === 'established') {
      // The IKE SA exists on both sides; tell the peer before retrying.
      sa.transition('deleting', err.reason);
      sendIkeDelete(sa, () => this.destroy(sa, err.reason));
    } else {
      this.destroy(sa, err.reason);
    }
    this.#scheduleRetry(sa.conn);
  }

  #scheduleRetry(conn: ConnectionConfig): void {
    if (this.#stopped || conn.start !== 'initiate' || this.#conns.get(conn.name) !== conn) return;
    if (this.#adminDown.has(conn.name)) return;
    const r = this.#retries.get(conn.name) ?? { attempt: 0 };
    if (r.timer) return;
    const delay =
      Math.min(this.#retryCfg.max, this.#retryCfg.base * 2 ** r.attempt) * (0.9 + Math.random() * 0.2);
    r.attempt++;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      this.initiate(conn.name);
    }, delay);
    r.timer.unref();
    this.#retries.set(conn.name, r);
    this.#bus.emit('ike-debug', { connection: conn.name, message: `retrying in ${Math.round(delay)} ms` });
  }

  #established(sa: IkeSa): void {
    const life = sa.conn.ike.lifetime * this.#env.timing.lifetimeUnit;
    const rekey = sa.conn.ike.rekeyTime;
    saTimer(
      sa,
      softDelay(life, rekey === undefined ? undefined : rekey * this.#env.timing.lifetimeUnit),
      () => this.#ikeSoft(sa, false),
    );
    saTimer(sa, life, () => this.#ikeHard(sa, 'IKE SA lifetime expired'));
    if (sa.nat.local) sa.startKeepalives(this.#env.timing.keepalive);
    const dpd = sa.conn.dpd;
    if (dpd)
      startDpd(sa, { delay: dpd.delay * 1000, timeout: dpd.timeout * 1000 }, (d) => this.#peerDead(sa, d));
  }

  /**
   * DPD declared the peer dead: its SAs go locally (a DELETE would not arrive), the connection goes
   * down, and an initiating connection tries again with the usual backoff.
   */
  #peerDead(sa: IkeSa, detail: string): void {
    this.#bus.emit('ike-failure', { connection: sa.name, reason: 'dpd_timeout', detail });
    for (const o of this.sasOf(sa.name)) {
      if (o === sa || o.remote.address === sa.remote.address) this.destroy(o, 'peer dead (DPD)');
    }
    if (sa.phase !== 'dead') this.destroy(sa, 'peer dead (DPD)');
    this.#scheduleRetry(sa.conn);
  }

  /* ------------------------------------------------------------ lifetimes */

  /** Soft limit of an IKE SA: rekey it (after any exchange in flight), one retry on failure. */
  #ikeSoft(sa: IkeSa, retried: boolean): void {
    if (this.#stopped || sa.phase !== 'established') return;
    const retry = sa.conn.ike.lifetime * this.#env.timing.lifetimeUnit * RETRY_AT;
    if (sa.busy) {
      // Window size 1: a CHILD_SA rekey (or DPD) is in flight; do not interleave with it.
      saTimer(sa, retry, () => this.#ikeSoft(sa, retried));
      return;
    }
    sa.debug('IKE SA reached its soft lifetime, rekeying');
    this.#ikeRekeying.add(sa);
    this.rekeyIke(sa, (err) => {
      this.#ikeRekeying.delete(sa);
      if (err && !retried && sa.phase === 'established') saTimer(sa, retry, () => this.#ikeSoft(sa, true));
    });
  }

  /**
   * Hard limit of an IKE SA (or its last CHILD_SA expired): its CHILD_SAs leave the data plane at
   * once, DELETE goes to the peer, and an initiating connection negotiates again.
   */
  #ikeHard(sa: IkeSa, reason: string): void {
    if (sa.phase === 'dead') return;
    sa.debug(`${reason}, deleting the IKE SA`);
    for (const c of [...sa.children]) this.#removeChild(sa, c.spiIn, reason);
    if (sa.phase === 'established') {
      sa.transition('deleting', reason);
      sendIkeDelete(sa, () => this.destroy(sa, reason));
    } else {
      this.destroy(sa, reason);
    }
    const conn = this.#conns.get(sa.name);
    if (conn === sa.conn && conn.start === 'initiate') this.initiate(conn.name);
  }

  #childInstalled(sa: IkeSa, child: ChildSa): void {
    const life = sa.conn.esp.lifetime * this.#env.timing.lifetimeUnit;
    this.#childLife.set(child.spiIn, { retried: false });
    const rekey = sa.conn.esp.rekeyTime;
    this.#childTimer(
      child.spiIn,
      'soft',
      softDelay(life, rekey === undefined ? undefined : rekey * this.#env.timing.lifetimeUnit),
      () => this.#childSoft(child.spiIn),
    );
    this.#childTimer(child.spiIn, 'hard', life, () => this.#childHard(child.spiIn));
  }

  #childTimer(spiIn: number, which: 'soft' | 'hard', ms: number, fn: () => void): void {
    const life = this.#childLife.get(spiIn);
    if (!life) return;
    clearTimeout(life[which]);
    const t = setTimeout(
      () => {
        if (ms > MAX_TIMEOUT) return this.#childTimer(spiIn, which, ms - MAX_TIMEOUT, fn);
        life[which] = undefined;
        fn();
      },
      Math.min(ms, MAX_TIMEOUT),
    );
    t.unref();
    life[which] = t;
  }

  /** The IKE SA that holds a CHILD_SA now (IKE SA rekeys move children). */
  #ownerOf(spiIn: number): IkeSa | undefined {
    let found: IkeSa | undefined;
    for (const sa of this.#sas.values()) {
      if (sa.phase === 'dead' || !sa.children.some((c) => c.spiIn === spiIn)) continue;
      if (!found || sa.phase === 'established') found = sa;
    }
    return found;
  }

  /** Soft limit of a CHILD_SA: rekey it unless the peer already did; one retry on failure. */
  #childSoft(spiIn: number): void {
    const sa = this.#ownerOf(spiIn);
    const child = sa?.children.find((c) => c.spiIn === spiIn);
    const life = this.#childLife.get(spiIn);
    if (this.#stopped || !sa || !child || !life || child.rekeyed || sa.phase !== 'established') return;
    const retry = sa.conn.esp.lifetime * this.#env.timing.lifetimeUnit * RETRY_AT;
    if (this.#ikeRekeying.has(sa)) {
      // The children are about to move to the new IKE SA: rekey there.
      this.#childTimer(spiIn, 'soft', retry, () => this.#childSoft(spiIn));
      return;
    }
    sa.debug(`CHILD_SA ${hex(spiIn)} reached its soft lifetime, rekeying`);
    this.rekeyChild(sa, spiIn, (err) => {
      if (!err || life.retried || !this.#childLife.has(spiIn)) return;
      life.retried = true;
      this.#childTimer(spiIn, 'soft', retry, () => this.#childSoft(spiIn));
    });
  }

  /**
   * Hard limit of a CHILD_SA: out of the data plane and DELETE to the peer. When it was the IKE
   * SA's last CHILD_SA, the IKE SA goes too (an initiating connection starts over).
   */
  #childHard(spiIn: number): void {
    const sa = this.#ownerOf(spiIn);
    if (!sa) {
      this.#childLife.delete(spiIn);
      return;
    }
    const reason = 'CHILD_SA lifetime expired';
    if (sa.children.length === 1 && sa.phase === 'established') return this.#ikeHard(sa, reason);
    sa.debug(`CHILD_SA ${hex(spiIn)}: lifetime expired, deleting it`);
    this.#removeChild(sa, spiIn, reason);
    if (sa.phase !== 'established') return;
    const del = [
      { type: PayloadType.DELETE, protocolId: ProtocolId.ESP, spiSize: 4, spis: [spiBuffer(spiIn)] },
    ];
    sa.request(ExchangeType.INFORMATIONAL, del as Payload[], noop, noop);
  }

  /* ------------------------------------------------------------ operator */

  /** `twinsec up`: clears an administrative down and initiates now (also for `start: listen`). */
  up(name: string): boolean {
    if (!this.#conns.has(name)) return false;
    this.#adminDown.delete(name);
    const r = this.#retries.get(name);
    clearTimeout(r?.timer);
    this.#retries.delete(name);
    this.initiate(name);
    return true;
  }

  /** `twinsec down`: DELETE to the peer for every SA of the connection; stays down until up(). */
  async down(name: string, reason = 'taken down by operator'): Promise<boolean> {
    if (!this.#conns.has(name)) return false;
    this.#adminDown.add(name);
    const r = this.#retries.get(name);
    clearTimeout(r?.timer);
    this.#retries.delete(name);
    await this.#deleteAll(this.sasOf(name), reason);
    return true;
  }

  isAdminDown(name: string): boolean {
    return this.#adminDown.has(name);
  }

  /** Sends DELETE for the established SAs (bounded wait) and forgets all of them. */
  async #deleteAll(sas: IkeSa[], reason: string): Promise<void> {
    await Promise.all(
      sas.map(
        (sa) =>
          new Promise<void>((resolve) => {
            // An initiator waiting for its IKE_AUTH answer may already be established at the peer:
            // its DELETE queues behind that request (window 1) and goes out once it is answered.
            const pendingAuth = sa.initiator && sa.phase === 'auth' && sa.busy;
            if (sa.phase !== 'established' && !pendingAuth) return resolve();
            if (!pendingAuth) sa.transition('deleting', reason);
            const t = setTimeout(resolve, 1500);
            sendIkeDelete(sa, () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
    for (const sa of sas) if (sa.phase !== 'dead') this.destroy(sa, reason);
  }

  /**
   * Applies a new connection set (reload): unchanged connections keep their SAs untouched, changed
   * ones are deleted and negotiated again, removed ones are deleted, new ones start.
   */
  async reload(
    config: Config,
  ): Promise<{ added: string[]; changed: string[]; removed: string[]; unchanged: string[] }> {
    const next = new Map(
      Object.values(config.connections)
        .filter((c) => c.version === 2)
        .map((c) => [c.name, c]),
    );
    const res = {
      added: [] as string[],
      changed: [] as string[],
      removed: [] as string[],
      unchanged: [] as string[],
    };
    for (const [name, old] of this.#conns) {
      const c = next.get(name);
      if (!c) res.removed.push(name);
      else if (sameConnection(old, c)) {
        res.unchanged.push(name);
        next.set(name, old); // SAs keep referring to the same object
      } else res.changed.push(name);
    }
    for (const name of next.keys()) if (!this.#conns.has(name)) res.added.push(name);
    const gone = [...res.removed, ...res.changed];
    for (const name of gone) {
      clearTimeout(this.#retries.get(name)?.timer);
      this.#retries.delete(name);
    }
    await this.#deleteAll(
      [...this.#sas.values()].filter((sa) => gone.includes(sa.conn.name)),
      'configuration changed',
    );
    for (const name of res.removed) this.#adminDown.delete(name);
    this.#conns = next;
    for (const name of [...res.changed, ...res.added])
      if (next.get(name)!.start === 'initiate') this.initiate(name);
    return res;
  }

  /* ------------------------------------------------------------ teardown */

  destroy(sa: IkeSa, reason: string): void {
    for (const c of [...sa.children]) this.#removeChild(sa, c.spiIn, reason);
    this.#sas.delete(sa.ourSpi.toString('hex'));
    for (const [k, v] of this.#halfOpen) if (v === sa) this.#halfOpen.delete(k);
    sa.transition('dead', reason);
  }

  #removeChild(given: IkeSa, spiIn: number, reason: string): void {
    // A DELETE answered on an IKE SA that was rekeyed meanwhile: the child moved to the new one.
    const sa = given.children.some((c) => c.spiIn === spiIn) ? given : this.#ownerOf(spiIn);
    const child = sa?.children.find((c) => c.spiIn === spiIn);
    if (!sa || !child) return;
    sa.children = sa.children.filter((c) => c !== child);
    const life = this.#childLife.get(spiIn);
    clearTimeout(life?.soft);
    clearTimeout(life?.hard);
    this.#childLife.delete(spiIn);
    const counters = this.#dp.counters(child.spiIn);
    this.#dp.removeSa(child.spiIn);
    this.#bus.emit('child-down', {
      connection: sa.name,
      spiIn: child.spiIn,
      spiOut: child.spiOut,
      reason,
      counters,
    });
  }

  /** Sends DELETE for every SA (bounded wait), then forgets them all. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const r of this.#retries.values()) clearTimeout(r.timer);
    this.#retries.clear();
    await this.#deleteAll([...this.#sas.values()], 'shutdown');
  }

  readonly #authHooks: AuthHooks = {
    install: (spec) => this.#dp.installSa(spec),
    initialContact: (sa) => {
      // INITIAL_CONTACT tells the peer to drop every older SA of this identity pair. Two tunnels
      // between the same gateways may share the identities, so it goes out only when no other SA of
      // the pair is established or already carrying INITIAL_CONTACT in a negotiation: after a restart
      // the first of the tunnels to reach IKE_AUTH sends it, the others do not.
      const other = [...this.#sas.values()].some(
        (o) =>
          o !== sa &&
          o.phase !== 'dead' &&
          sameIds(o, sa) &&
          (o.phase === 'established' || o.sentInitialContact),
      );
      if (!other) sa.sentInitialContact = true;
      return !other;
    },
    peerInitialContact: (sa) => {
      // The peer says it holds no other SA with us under these identities, so ours are stale (it
      // restarted): all of them, over every connection with this identity pair. An SA younger than a
      // few seconds is not stale but a simultaneous negotiation (e.g. the second tunnel coming up
      // right now), whose peer copy exists: deleting it would leave the two sides with different SAs.
      const now = Date.now();
      for (const o of [...this.#sas.values()]) {
        if (o === sa || !sameIds(o, sa)) continue;
        if (o.phase !== 'established' || now - o.createdAt < SIMULTANEOUS_WINDOW) continue;
        this.destroy(o, 'peer sent INITIAL_CONTACT');
      }
    },
  };

  readonly #infoHooks: InfoHooks = {
    removeChild: (sa, spiIn, reason) => this.#removeChild(sa, spiIn, reason),
    destroy: (sa, reason) => this.destroy(sa, reason),
  };

  readonly #rekeyHooks: RekeyHooks = {
    install: (spec) => this.#dp.installSa(spec),
    removeChild: (sa, spiIn, reason) => this.#removeChild(sa, spiIn, reason),
    adoptIke: (old, fresh) => {
      this.#sas.set(fresh.ourSpi.toString('hex'), fresh);
      this.#established(fresh);
      this.#bus.emit('ike-debug', {
        connection: fresh.name,
        message: `IKE SA #${old.serial} rekeyed to #${fresh.serial} (${fresh.spiI.toString('hex')}_i ${fresh.spiR.toString('hex')}_r)`,
      });
    },
    destroy: (sa, reason) => this.destroy(sa, reason),
  };

  /**
   * Rekeys a CHILD_SA of an established IKE SA (make-before-break, then DELETE of the old pair).
   * Scheduled at the CHILD_SA's soft lifetime; callable any time.
   */
  rekeyChild(sa: IkeSa, spiIn: number, done: (err?: Error) => void = () => {}): boolean {
    const child = sa.children.find((c) => c.spiIn === spiIn);
    if (!child || sa.phase !== 'established') return false;
    rekeyChild(sa, child, this.#rekeyHooks, (err) => {
      if (err)
        this.#bus.emit('ike-failure', { connection: sa.name, reason: err.reason, detail: err.message });
      done(err);
    });
    return true;
  }

  /** Rekeys an established IKE SA; its children move to the new one. Scheduled at its soft lifetime. */
  rekeyIke(sa: IkeSa, done: (err?: Error, fresh?: IkeSa) => void = () => {}): boolean {
    if (sa.phase !== 'established') return false;
    rekeyIke(sa, this.#rekeyHooks, (err, fresh) => {
      if (err)
        this.#bus.emit('ike-failure', { connection: sa.name, reason: err.reason, detail: err.message });
      done(err, fresh);
    });
    return true;
  }

  /* ------------------------------------------------------------ dispatch */

  #drop(reason: string, detail: string, d: Datagram): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    this.#bus.emit('ike-dropped', { reason, detail, from: `${d.remote.address}:${d.remote.port}` });
  }

  handle(d: Datagram): void {
    try {
      this.#handle(d);
    } catch (err) {
      // A bug or an unforeseen input must cost one datagram, never the daemon.
      const reason =
        err instanceof CryptoError ? 'integrity' : err instanceof WireError ? 'malformed' : 'internal_error';
      this.#drop(reason, (err as Error).message, d);
    }
  }

  #handle(d: Datagram): void {
    const version = peekVersion(d.data);
    if (version !== 2) return this.#drop('unsupported_version', `IKE major version ${version}`, d);
    const header = decodeHeader(d.data);
    const isResponse = (header.flags & HeaderFlag.RESPONSE) !== 0;
    const fromInitiator = (header.flags & HeaderFlag.INITIATOR) !== 0;
    if (header.exchange === ExchangeType.IKE_SA_INIT && !isResponse) return this.#initRequest(d, header);
    const ourSpi = fromInitiator ? header.spiR : header.spiI;
    const sa = this.#sas.get(ourSpi.toString('hex'));
    if (!sa || sa.initiator === fromInitiator)
      return this.#drop('unknown_spi', `no IKE SA ${ourSpi.toString('hex')}`, d);
    if (sa.spiR.some((b) => b !== 0) && !sa.spiR.equals(header.spiR))
      return this.#drop('unknown_spi', 'responder SPI mismatch', d);
    let msg: OpenedMessage;
    if (header.exchange === ExchangeType.IKE_SA_INIT) {
      const m = decodeMessage(d.data);
      msg = { header, payloads: m.payloads };
    } else {
      if (!sa.skIn)
        return this.#drop(
          'unexpected',
          `${ExchangeType[header.exchange] ?? header.exchange} before keys exist`,
          d,
        );
      msg = openMessage(d.data, sa.skIn);
      sa.lastReceived = Date.now();
    }
    const bad = checkMessageRules(
      header.exchange,
      isResponse,
      msg.payloads,
      header.exchange !== ExchangeType.IKE_SA_INIT,
    );
    if (bad) {
      // §3.10.1: an authenticated request that breaks the message rules is answered INVALID_SYNTAX;
      // during IKE_AUTH that also ends the half-made IKE SA.
      if (!isResponse && sa.skIn && sa.admitRequest(header) === 'new') {
        sa.respond(header.exchange, header.messageId, [notify(NotifyType.INVALID_SYNTAX)]);
        if (header.exchange === ExchangeType.IKE_AUTH) this.destroy(sa, 'invalid_syntax');
      }
      return this.#drop('invalid_syntax', bad, d);
    }
    sa.lastInbound = d.data;
    if (isResponse) {
      if (!sa.takeResponse(header, msg))
        this.#drop('unexpected_response', `message ID ${header.messageId}`, d);
      return;
    }
    const admit = sa.admitRequest(header);
    if (admit === 'invalid') return this.#drop('invalid_message_id', `message ID ${header.messageId}`, d);
    if (admit === 'retransmit') return;
    // A valid, authenticated request: follow the peer's address and port (NAT-T floating, §2.23).
    sa.local = d.local;
    sa.remote = d.remote;
    this.#request(sa, header, msg.payloads, d);
  }

  #request(sa: IkeSa, header: IkeHeader, ps: Payload[], d: Datagram): void {
    switch (header.exchange) {
      case ExchangeType.IKE_AUTH: {
        if (sa.initiator || sa.phase !== 'auth')
          return this.#drop('unexpected', 'IKE_AUTH in wrong state', d);
        const ans = processAuthRequest(sa, this.#authHooks, ps);
        sa.respond(header.exchange, header.messageId, ans.payloads);
        if (ans.ok) {
          this.#halfOpen.delete(`${sa.spiI.toString('hex')}|${sa.remote.address}`);
          ans.after();
          this.#established(sa);
        } else {
          this.#bus.emit('ike-failure', { connection: sa.name, reason: ans.reason, detail: ans.detail });
          this.destroy(sa, ans.reason);
        }
        return;
      }
      case ExchangeType.INFORMATIONAL: {
        const ans = processInfoRequest(sa, this.#infoHooks, ps);
        sa.respond(header.exchange, header.messageId, ans.payloads);
        ans.after();
        return;
      }
      case ExchangeType.CREATE_CHILD_SA: {
        if (sa.phase !== 'established') {
          // §2.25: an IKE SA being deleted (or rekeyed away) takes no new work.
          sa.respond(header.exchange, header.messageId, [notify(NotifyType.TEMPORARY_FAILURE)]);
          return;
        }
        const ans = processCreateChildRequest(sa, this.#rekeyHooks, ps);
        sa.respond(header.exchange, header.messageId, ans.payloads);
        ans.after();
        return;
      }
      default:
        this.#drop('unexpected', `exchange ${header.exchange}`, d);
    }
  }

  #overLimit(peer: string): string | null {
    const l = this.#limits;
    const halfOpen = [...this.#halfOpen.values()];
    if (halfOpen.length >= l.halfOpen) return `${halfOpen.length} half-open IKE SAs in total`;
    const fromPeer = halfOpen.filter((sa) => sa.remote.address === peer).length;
    if (fromPeer >= l.halfOpenPerPeer) return `${fromPeer} half-open IKE SAs from ${peer}`;
    if (this.#sas.size >= l.total) return `${this.#sas.size} IKE SAs in total`;
    const all = [...this.#sas.values()].filter((sa) => sa.remote.address === peer).length;
    if (all >= l.perPeer) return `${all} IKE SAs with ${peer}`;
    return null;
  }

  #initRequest(d: Datagram, header: IkeHeader): void {
    const key = `${header.spiI.toString('hex')}|${d.remote.address}`;
    const known = this.#halfOpen.get(key);
    if (known) {
      if (known.admitRequest(header) !== 'retransmit')
        this.#drop('unexpected', 'IKE_SA_INIT for a known SA', d);
      return;
    }
    if (header.messageId !== 0 || header.spiR.some((b) => b !== 0))
      return this.#drop('invalid_syntax', 'bad IKE_SA_INIT header', d);
    const limit = this.#overLimit(d.remote.address);
    if (limit) return this.#drop('limit', limit, d);
    const m = decodeMessage(d.data);
    const bad = checkMessageRules(ExchangeType.IKE_SA_INIT, false, m.payloads, false);
    if (bad) return this.#drop('invalid_syntax', bad, d);
    const all = [...this.#conns.values()].filter(
      (c) => c.local === d.local.address && !this.#adminDown.has(c.name),
    );
    const exact = all.filter((c) => c.remote === d.remote.address);
    const candidates = exact.length ? exact : all;
    if (!candidates.length) {
      this.#drop('no_connection', `no connection for ${d.remote.address} -> ${d.local.address}`, d);
      return;
    }
    const sa = new IkeSa(this.#env, {
      initiator: false,
      conn: candidates[0]!,
      candidates,
      local: d.local,
      remote: d.remote,
      spiI: Buffer.from(header.spiI),
    });
    sa.ikeOffer = parseProposals(sa.conn.ike.proposals, 'ike');
    sa.initRequest = d.data;
    const ans = processInitRequest(sa, m.payloads);
    if (ans.kind === 'reject') {
      // Stateless answer (§2.6 spirit): nothing is kept for a refused IKE_SA_INIT.
      const reply = encodeMessage({
        header: {
          spiI: header.spiI,
          spiR: Buffer.alloc(8),
          version: 0x20,
          exchange: ExchangeType.IKE_SA_INIT,
          flags: HeaderFlag.RESPONSE,
          messageId: 0,
        },
        payloads: ans.payloads,
      });
      this.#env.transport.send(d.local, d.remote, reply);
      if (ans.reason !== 'invalid_ke_payload') {
        this.#bus.emit('ike-failure', {
          connection: sa.name,
          reason: ans.reason,
          detail: `refused IKE_SA_INIT from ${d.remote.address}`,
        });
      } else {
        this.#bus.emit('ike-debug', {
          connection: sa.name,
          message: `asked ${d.remote.address} for another DH group`,
        });
      }
      return;
    }
    this.#sas.set(sa.ourSpi.toString('hex'), sa);
    this.#halfOpen.set(key, sa);
    sa.begin(`IKE_SA_INIT from ${d.remote.address}`);
    sa.initResponse = sa.respond(ExchangeType.IKE_SA_INIT, 0, ans.payloads);
    ans.armKeys();
    sa.phase = 'auth';
    sa.setTimer(this.#env.timing.halfOpenTimeout, () => {
      if (sa.phase === 'auth') this.destroy(sa, 'half-open timeout');
    });
  }
}

const noop = (): void => {};
const hex = (spi: number): string => spi.toString(16).padStart(8, '0');

/** Same settings (the PSK compared by value: its JSON form is redacted). */
function sameConnection(a: ConnectionConfig, b: ConnectionConfig): boolean {
  return a.psk.equals(b.psk) && JSON.stringify({ ...a, psk: 0 }) === JSON.stringify({ ...b, psk: 0 });
}

/** Same identity pair (as configured: a responder's SA knows its connection after IKE_AUTH). */
function sameIds(a: IkeSa, b: IkeSa): boolean {
  return a.conn.localId === b.conn.localId && a.conn.remoteId === b.conn.remoteId;
}
