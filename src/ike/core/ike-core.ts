/**
 * The version-neutral IKE core: one per daemon. It owns the transport's receive side and hands each
 * datagram to the protocol its header's major version names; it keeps the SA table within bounds,
 * the SAs' lifetimes, DPD and keep-alives, the data-plane hand-off, NAT mapping changes, and the
 * operator's up/down/reload. Every drop is counted and reported on the bus with its reason.
 */
import type { Config } from '../../config/types.js';
import type { DataPlane, Endpoint } from '../../dataplane/types.js';
import { CryptoError, WireError } from '../../errors.js';
import type { EventBus } from '../../events.js';
import type { Datagram, IkeTransport } from '../transport.js';
import { peekVersion } from '../wire/header.js';
import type { ChildSa } from './child-sa.js';
import { type Clock, type Random, systemClock, systemRandom } from './clock.js';
import { ConnectionSet, type ReloadResult } from './connections.js';
import { type ChildLifetime, Lifetimes } from './lifetimes.js';
import { startDpd, startKeepalives } from './liveness.js';
import { type AnySa, type CoreServices, DEFAULT_TIMING, type IkeProtocol, type Timing } from './protocol.js';
import { type SaLimits, SaTable } from './sa-table.js';
import type { IkeSaView } from './view.js';

/** SAs younger than this are never treated as stale on INITIAL_CONTACT (ms). */
const SIMULTANEOUS_WINDOW = 10_000;
/** How long shutdown and operator DELETEs wait for the peer's answer (ms). */
const DELETE_WAIT = 1500;

export interface CoreOptions {
  config: Config;
  transport: IkeTransport;
  dataplane: DataPlane;
  bus: EventBus;
  timing?: Partial<Timing>;
  /** Re-initiation backoff after a failure (ms): base * 2^attempt, capped. */
  retry?: { base: number; max: number };
  limits?: Partial<SaLimits>;
  clock?: Clock;
  random?: Random;
}

export class IkeCore implements CoreServices {
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly random: Random;
  readonly timing: Timing;
  readonly ports: { ike: number; natt: number };
  readonly transport: IkeTransport;
  readonly dataplane: DataPlane;
  readonly table: SaTable;
  readonly conns: ConnectionSet;
  readonly dropped = new Map<string, number>();
  readonly #protocols = new Map<number, IkeProtocol>();
  readonly #lifetimes: Lifetimes;
  /** IKE SAs with a liveness check to a new peer endpoint in flight (NAT mapping seen in ESP). */
  readonly #probingMove = new WeakSet<AnySa>();
  #stopped = false;

  constructor(o: CoreOptions) {
    this.bus = o.bus;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? systemRandom;
    this.timing = { ...DEFAULT_TIMING, ...o.timing };
    this.ports = o.config.ports;
    this.transport = o.transport;
    this.dataplane = o.dataplane;
    this.table = new SaTable(o.limits);
    this.conns = new ConnectionSet(o.config, this.clock, this.random, o.retry ?? { base: 2000, max: 60_000 });
    this.#lifetimes = new Lifetimes({
      bus: this.bus,
      clock: this.clock,
      random: this.random,
      timing: this.timing,
      stopped: () => this.#stopped,
      protocol: (sa) => this.protocol(sa),
      ownerOf: (spiIn) => this.table.ownerOf(spiIn),
      ikeHard: (sa, reason) => this.#ikeHard(sa, reason),
      removeChild: (sa, spiIn, reason) => this.removeChild(sa, spiIn, reason),
    });
    o.transport.onReceive((d) => this.handle(d));
    o.dataplane.onPeerMoved((spiIn, from) => this.#espFromElsewhere(spiIn, from));
    // Volume limits (RFC 4303 §3.3.3, RFC 7296 §2.8): the data plane counts, the lifetimes act.
    o.dataplane.onSaLimit?.((spiIn, hard) => {
      if (this.#stopped) return;
      if (hard) this.#lifetimes.volumeHard(spiIn);
      else this.#lifetimes.volumeSoft(spiIn);
    });
  }

  /** Plugs in a protocol version; datagrams with that major version go to it. */
  register(p: IkeProtocol): void {
    this.#protocols.set(p.version, p);
  }

  protocol(sa: AnySa): IkeProtocol {
    return this.#protocols.get(sa.version)!;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    for (const c of this.conns.all()) if (c.start === 'initiate') this.initiate(c.name);
  }

  /** SAs of a connection, newest first (read-only). */
  sasOf(name: string): IkeSaView[] {
    return this.#sasOf(name);
  }

  /**
   * The other SAs of `sa`'s connection with the same peer. A connection with `remote: %any` or a
   * subnet (a hub) serves many peers, several of them possibly behind one address (one NAT):
   * there the peer is the identity it authenticated, never the address, found through the
   * table's index by identity. A connection to one address has one peer: all its SAs with that
   * address (SAs still negotiating included, which have no identity yet).
   */
  #samePeerSas(sa: AnySa): AnySa[] {
    if (sa.conn.remote === '%any' || sa.conn.remote.includes('/'))
      return this.table
        .withIdentity(sa.peerIdentity)
        .filter((o) => o !== sa && o.phase !== 'dead' && o.conn.name === sa.conn.name);
    return this.#sasOf(sa.name).filter((o) => o !== sa && o.remote.address === sa.remote.address);
  }

  #sasOf(name: string): AnySa[] {
    // From the table's index by connection: a hub's one connection holds thousands of SAs, the
    // others' are not looked at.
    return this.table.ofConn(name).filter((s) => s.phase !== 'dead');
  }

  /**
   * Whether connection `name` has an established SA with a CHILD_SA: asked on every CHILD_SA
   * change (the HA layer), so it stops at the first one instead of listing them all.
   */
  hasUsableSa(name: string): boolean {
    return this.table.someOfConn(name, (s) => s.phase === 'established' && s.children.length > 0);
  }

  /* ------------------------------------------------------------ dispatch */

  drop(reason: string, detail: string, d: Datagram): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    this.bus.emit('ike-dropped', { reason, detail, from: `${d.remote.address}:${d.remote.port}` });
  }

  handle(d: Datagram): void {
    try {
      const version = peekVersion(d.data);
      const p = this.#protocols.get(version);
      if (!p) return this.drop('unsupported_version', `IKE major version ${version}`, d);
      p.handle(d);
    } catch (err) {
      // A bug or an unforeseen input must cost one datagram, never the daemon.
      const reason =
        err instanceof CryptoError ? 'integrity' : err instanceof WireError ? 'malformed' : 'internal_error';
      this.drop(reason, (err as Error).message, d);
    }
  }

  /* ------------------------------------------------------------ initiation */

  initiate(name: string): void {
    const conn = this.conns.get(name);
    if (!conn || this.#stopped || this.conns.isDown(name)) return;
    if (this.#sasOf(name).some((s) => s.phase !== 'deleting')) return;
    const p = this.#protocols.get(conn.version);
    if (!p) return;
    p.initiate(conn);
  }

  established(sa: AnySa): void {
    this.table.settle(sa);
    this.table.markIds(sa);
    if (sa.initiator) this.conns.resetRetry(sa.name);
    this.#lifetimes.armIke(sa);
    if (sa.nat.local) startKeepalives(sa, this.transport, this.clock, this.timing.keepalive, this.random);
    const dpd = sa.conn.dpd;
    if (dpd) {
      startDpd(
        sa,
        this.protocol(sa),
        this.clock,
        { delay: dpd.delay * 1000, timeout: dpd.timeout * 1000 },
        (d) => this.#peerDead(sa, d),
        this.random,
      );
    }
  }

  failed(sa: AnySa, reason: string, detail: string): void {
    this.bus.emit('ike-failure', { connection: sa.name, reason, detail });
    // The IKE SA exists on both sides once established; tell the peer before retrying.
    this.#deleteThenDestroy(sa, reason);
    this.#scheduleRetry(sa);
  }

  #scheduleRetry(sa: AnySa): void {
    if (this.#stopped) return;
    const delay = this.conns.scheduleRetry(sa.conn, () => this.initiate(sa.conn.name));
    if (delay !== null)
      this.bus.emit('ike-debug', { connection: sa.name, message: `retrying in ${Math.round(delay)} ms` });
  }

  /**
   * DPD declared the peer dead: its SAs go locally (a DELETE would not arrive), the connection goes
   * down, and an initiating connection tries again with the usual backoff.
   */
  #peerDead(sa: AnySa, detail: string): void {
    this.bus.emit('ike-failure', { connection: sa.name, reason: 'dpd_timeout', detail });
    for (const o of this.#samePeerSas(sa)) this.destroy(o, 'peer dead (DPD)');
    if (sa.phase !== 'dead') this.destroy(sa, 'peer dead (DPD)');
    this.#scheduleRetry(sa);
  }

  /**
   * Hard limit of an IKE SA (or its last CHILD_SA expired): its CHILD_SAs leave the data plane at
   * once, DELETE goes to the peer, and an initiating connection negotiates again.
   */
  #ikeHard(sa: AnySa, reason: string): void {
    if (sa.phase === 'dead') return;
    sa.debug(`${reason}, deleting the IKE SA`);
    for (const c of sa.children) this.removeChild(sa, c.spiIn, reason);
    this.#deleteThenDestroy(sa, reason);
    const conn = this.conns.get(sa.name);
    if (conn === sa.conn && conn.start === 'initiate') this.initiate(conn.name);
  }

  /** An established SA: DELETE to the peer, then gone; any other: gone at once. */
  #deleteThenDestroy(sa: AnySa, reason: string): void {
    if (sa.phase !== 'established') return this.destroy(sa, reason);
    sa.transition('deleting', reason);
    void this.protocol(sa)
      .deleteIke(sa)
      .then(() => this.destroy(sa, reason));
  }

  /* ------------------------------------------------------------ CHILD_SAs */

  childInstalled(sa: AnySa, child: ChildSa<unknown>, lifetime?: ChildLifetime): void {
    sa.addChild(child);
    this.table.setChildOwner(child.spiIn, sa);
    this.#lifetimes.armChild(sa, child.spiIn, lifetime);
    this.bus.emit('child-up', {
      connection: sa.name,
      spiIn: child.spiIn,
      spiOut: child.spiOut,
      encr: child.encr,
      integ: child.integ,
      dh: child.dh,
      encapsulation: child.encapsulation,
      tsLocal: [...child.tsLocal],
      tsRemote: [...child.tsRemote],
    });
  }

  removeChild(given: AnySa, spiIn: number, reason: string): void {
    // A DELETE answered on an IKE SA that was rekeyed meanwhile: the child moved to the new one.
    const sa = given.child(spiIn) ? given : this.table.ownerOf(spiIn);
    const child = sa?.dropChild(spiIn);
    if (!sa || !child) return;
    this.table.dropChildOwner(spiIn);
    this.#lifetimes.forgetChild(spiIn);
    const counters = this.dataplane.counters(spiIn);
    this.dataplane.removeSa(spiIn);
    child.transition('deleted', reason);
    this.bus.emit('child-down', { connection: sa.name, spiIn, spiOut: child.spiOut, reason, counters });
  }

  /** The IKE SA rekey of `old` finished: `fresh` holds the children now. */
  adoptRekeyed(old: AnySa, fresh: AnySa): void {
    this.table.add(fresh);
    for (const c of fresh.children) this.table.setChildOwner(c.spiIn, fresh);
    this.established(fresh);
    this.bus.emit('ike-debug', {
      connection: fresh.name,
      message: `IKE SA #${old.serial} rekeyed to #${fresh.serial} (${fresh.spiI.toString('hex')}_i ${fresh.spiR.toString('hex')}_r)`,
    });
  }

  isRekeying(sa: AnySa): boolean {
    return this.#lifetimes.isRekeying(sa);
  }

  /* ------------------------------------------------------------ teardown */

  destroy(sa: AnySa, reason: string): void {
    for (const c of sa.children) this.removeChild(sa, c.spiIn, reason);
    this.table.remove(sa);
    sa.transition('dead', reason);
  }

  /** Sends DELETE for the established SAs (bounded wait) and forgets all of them. */
  async #deleteAll(sas: AnySa[], reason: string): Promise<void> {
    await Promise.all(
      sas.map(async (sa) => {
        // An initiator waiting for its IKE_AUTH answer may already be established at the peer:
        // its DELETE queues behind that request (window 1) and goes out once it is answered.
        const p = this.protocol(sa);
        const pendingAuth = sa.initiator && sa.phase === 'auth' && p.busy(sa);
        if (sa.phase !== 'established' && !pendingAuth) return;
        if (!pendingAuth) sa.transition('deleting', reason);
        let timer: ReturnType<Clock['setTimer']> | undefined;
        await Promise.race([
          p.deleteIke(sa),
          new Promise<void>((r) => {
            timer = this.clock.setTimer(DELETE_WAIT, r, true);
          }),
        ]);
        this.clock.clearTimer(timer);
      }),
    );
    for (const sa of sas) if (sa.phase !== 'dead') this.destroy(sa, reason);
  }

  /** Sends DELETE for every SA (bounded wait), then forgets them all. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.conns.clearAllRetries();
    await this.#deleteAll(this.table.all(), 'shutdown');
  }

  /* ------------------------------------------------------------ operator */

  /** `twinsec up`: clears an administrative down and initiates now (also for `start: listen`). */
  up(name: string): boolean {
    if (!this.conns.get(name)) return false;
    this.conns.setDown(name, false);
    this.initiate(name);
    return true;
  }

  /** `twinsec down`: DELETE to the peer for every SA of the connection; stays down until up(). */
  async down(name: string, reason = 'taken down by operator'): Promise<boolean> {
    if (!this.conns.get(name)) return false;
    this.conns.setDown(name, true);
    await this.#deleteAll(this.#sasOf(name), reason);
    return true;
  }

  /**
   * A health check reset (src/ha/reset.ts): DELETE to the peer for every SA of the connection
   * (bounded wait: a peer that lost its SAs does not answer), then a new negotiation at once if the
   * connection initiates; a listening one waits for its peer. An operator's `down` is left alone.
   */
  async reset(name: string, reason: string): Promise<boolean> {
    if (!this.conns.get(name) || this.#stopped || this.conns.isDown(name)) return false;
    await this.#deleteAll(this.#sasOf(name), reason);
    this.conns.clearRetry(name);
    if (this.conns.get(name)?.start === 'initiate') this.initiate(name);
    return true;
  }

  isAdminDown(name: string): boolean {
    return this.conns.isDown(name);
  }

  /**
   * Applies a new connection set (reload): unchanged connections keep their SAs untouched, changed
   * ones are deleted and negotiated again, removed ones are deleted, new ones start.
   */
  async reload(config: Config): Promise<ReloadResult> {
    const res = this.conns.reload(config);
    const gone = new Set([...res.removed, ...res.changed]);
    await this.#deleteAll(
      this.table.all().filter((sa) => gone.has(sa.conn.name)),
      'configuration changed',
    );
    for (const name of [...res.changed, ...res.added])
      if (this.conns.get(name)?.start === 'initiate') this.initiate(name);
    return res;
  }

  /** Rekeys a CHILD_SA now (operator or test); resolves when the new pair is in and the old one gone. */
  rekeyChild(view: IkeSaView, spiIn: number, done: (err?: Error) => void = () => {}): boolean {
    const sa = this.table.get(view.initiator ? view.spiI : view.spiR);
    const child = sa?.child(spiIn);
    if (!sa || !child || sa.phase !== 'established') return false;
    this.protocol(sa)
      .rekeyChild(sa, child)
      .then(
        () => done(),
        (err: Error & { reason?: string }) => {
          this.#rekeyFailed(sa, err);
          done(err);
        },
      );
    return true;
  }

  /** A rekey failed: reported, unless the SA went away under it (nothing failed then). */
  #rekeyFailed(sa: AnySa, err: Error & { reason?: string }): void {
    if (err.reason === 'sa_gone') return;
    this.bus.emit('ike-failure', { connection: sa.name, reason: err.reason ?? 'error', detail: err.message });
  }

  /** Rekeys an IKE SA now (operator or test); the children move to the new one. */
  rekeyIke(view: IkeSaView, done: (err?: Error, fresh?: IkeSaView) => void = () => {}): boolean {
    const sa = this.table.get(view.initiator ? view.spiI : view.spiR);
    if (!sa || sa.phase !== 'established') return false;
    this.protocol(sa)
      .rekeyIke(sa)
      .then(
        (fresh) => done(undefined, fresh),
        (err: Error & { reason?: string }) => {
          this.#rekeyFailed(sa, err);
          done(err);
        },
      );
    return true;
  }

  /* ------------------------------------------------------------ identities */

  wantInitialContact(sa: AnySa): boolean {
    // INITIAL_CONTACT tells the peer to drop every older SA of this identity pair. Two tunnels
    // between the same gateways may share the identities, so it goes out only when no other SA of
    // the pair is established or already carrying INITIAL_CONTACT in a negotiation: after a restart
    // the first of the tunnels to reach authentication sends it, the others do not.
    // The SAs in question are filed by their identity pair (SaTable.markIds): no scan of every SA.
    const other = this.table
      .withIds(sa)
      .some(
        (o) =>
          o !== sa &&
          o.phase !== 'dead' &&
          sameIds(o, sa) &&
          (o.phase === 'established' || o.sentInitialContact),
      );
    if (!other) {
      sa.sentInitialContact = true;
      this.table.markIds(sa);
    }
    return !other;
  }

  peerInitialContact(sa: AnySa, keepChildren = false): void {
    // RFC 7296 §2.4: INITIAL_CONTACT says the sender holds no other SA with us "for the
    // authenticated identities", so ours with that peer are stale (it restarted). Scoped to the
    // authenticated peer, never to configured ID strings: two connections may both say %any (or
    // share IDs) for different peers with different keys, and one peer must not be able to tear
    // down another's SAs (security issue #11). In scope: older SAs of the same connection (its
    // `remote` is one peer address), and of another connection only when the same identity was
    // authenticated from the same address (the twin tunnels of one gateway pair). An SA younger
    // than a few seconds is not stale but a simultaneous negotiation (e.g. the second tunnel coming
    // up right now), whose peer copy exists: deleting it would leave the two sides with different SAs
    // (see the loop for which SAs can be such a race).
    //
    // `keepChildren` (IKEv1): strongSwan also sends INITIAL-CONTACT in the main mode that
    // re-authenticates an ISAKMP SA, and keeps using the IPsec SAs of the old one (IKEv1 ties no
    // IPsec SA to its ISAKMP SA, RFC 2409) until it DELETEs them. So the older ISAKMP SAs of the
    // same connection go, but their IPsec SAs move to the new one, as on an ISAKMP DELETE; the
    // peer's quick modes replace them and its DELETEs or their lifetime end them. Another
    // connection's SAs are left alone: its own re-authentication or DPD settles them.
    //
    // Only SAs of the same authenticated identity can be in scope: they come from the table's
    // index by identity, so a hub with thousands of peers does not scan them all per new peer.
    const now = this.clock.now();
    for (const o of this.table.withIdentity(sa.peerIdentity)) {
      if (o === sa || !samePeer(o, sa)) continue;
      if (o.phase !== 'established') continue;
      // The window guards negotiations that may cross: one we started (the peer may have started its
      // own at the same moment, each side sending INITIAL_CONTACT), or another connection's (the twin
      // tunnel coming up now). An SA of this connection that the peer itself started is not such a
      // race: a new one from the peer saying it holds no other means the peer lost it (a restart),
      // however young it is.
      const mayCross = o.initiator || o.conn.name !== sa.conn.name;
      if (mayCross && now - o.createdAt < SIMULTANEOUS_WINDOW) continue;
      if (keepChildren) {
        if (o.conn.name !== sa.conn.name) continue;
        const n = o.children.length;
        o.moveChildrenTo(sa);
        for (const c of sa.children) this.table.setChildOwner(c.spiIn, sa);
        sa.debug(`INITIAL-CONTACT: ISAKMP SA #${o.serial} replaced, its ${n} IPsec SA(s) move here`);
      }
      this.destroy(o, 'peer sent INITIAL_CONTACT');
    }
  }

  /* ------------------------------------------------------------ NAT mapping changes */

  /**
   * An authenticated message from the peer (RFC 7296 §2.23): when it comes from a new address or
   * port (its NAT mapping changed), the IKE SA and every ESP SA of it follow, so traffic goes on
   * after a few seconds instead of for the rest of the SA's life.
   */
  peerSeen(sa: AnySa, d: Datagram): void {
    sa.lastReceived = this.clock.now();
    const r = sa.remote;
    if (r.address === d.remote.address && r.port === d.remote.port && sa.local.address === d.local.address) {
      sa.local = d.local;
      return;
    }
    // Only with a NAT on the path (detected, or faked to force UDP encapsulation): without one a
    // changed address is MOBIKE's business (RFC 4555), not something to follow silently.
    if (!sa.nat.local && !sa.nat.remote) {
      sa.debug(`authenticated message from ${d.remote.address}:${d.remote.port} without NAT-T; not moving`);
      return;
    }
    const was = `${r.address}:${r.port}`;
    sa.local = d.local;
    sa.remote = d.remote;
    this.table.moved(sa, r.address);
    let moved = 0;
    for (const c of sa.children) {
      const port = (p: number): number => (c.encapsulation === 'udp' ? p : 0);
      const ok = this.dataplane.updateSa(
        c.spiIn,
        { address: d.local.address, port: port(d.local.port) },
        { address: d.remote.address, port: port(d.remote.port) },
      );
      if (ok) moved++;
    }
    const to = `${d.remote.address}:${d.remote.port}`;
    // The first floats to port 4500 (NAT-T, §2.23) are expected; say so only when SAs moved.
    if (moved > 0) this.bus.emit('peer-moved', { connection: sa.name, from: was, to, children: moved });
  }

  /**
   * ESP whose ICV verified arrived from somewhere else than the SA's peer: like strongSwan on a
   * kernel mapping event, confirm with an IKE liveness check sent there; its authenticated answer
   * moves the SAs (peerSeen).
   */
  #espFromElsewhere(spiIn: number, from: Endpoint): void {
    const sa = this.table.ownerOf(spiIn);
    if (!sa || sa.phase !== 'established' || this.#probingMove.has(sa)) return;
    const child = sa.child(spiIn);
    const to: Endpoint =
      child?.encapsulation === 'udp' ? from : { address: from.address, port: sa.remote.port };
    if (to.address === sa.remote.address && to.port === sa.remote.port) return;
    sa.debug(`ESP from ${from.address}:${from.port}, checking whether the peer moved there`);
    this.#probingMove.add(sa);
    void this.protocol(sa)
      .liveness(sa, to)
      .finally(() => this.#probingMove.delete(sa));
  }
}

/** Same identity pair (as configured: a responder's SA knows its connection once authenticated). */
function sameIds(a: AnySa, b: AnySa): boolean {
  return a.conn.localId === b.conn.localId && a.conn.remoteId === b.conn.remoteId;
}

/**
 * `o` belongs to the peer that authenticated `sa`: the same authenticated identity (never a
 * configured wildcard such as %any), and either the same connection or the same key. A peer that
 * proved the same identity with the same PSK is the same peer whatever address it came from (one
 * gateway's two links; strongSwan clears by identity too); one with another connection's key is
 * not. An SA whose peer identity is unknown (never authenticated) is never in scope.
 */
function samePeer(o: AnySa, sa: AnySa): boolean {
  if (o.peerIdentity === undefined || o.peerIdentity !== sa.peerIdentity) return false;
  // The key each SA authenticated with (a connection without its own takes one per identity).
  const key = (x: AnySa) => x.psk ?? x.conn.psk;
  return o.conn.name === sa.conn.name || (key(o).length > 0 && key(o).equals(key(sa)));
}
