/**
 * The daemon: owns the event bus, the data plane, the IKE transport and the IKE core for one
 * configuration, and answers status queries from them.
 */
import { BlockList, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from './config/types.js';
import type { StatusOptions } from './control/protocol.js';
import { NativeDataPlane } from './dataplane/native.js';
import { addInterfaceAddress, PublishedRoutes, publishRoute } from './dataplane/os-routes.js';
import type { DataPlane } from './dataplane/types.js';
import { TwinsecError } from './errors.js';
import { EventBus } from './events.js';
import { HaController } from './ha/controller.js';
import type { Clock, Random } from './ike/core/clock.js';
import type { Timing } from './ike/core/protocol.js';
import type { SaLimits } from './ike/core/sa-table.js';
import { spiHex } from './ike/core/view.js';
import { createIke, type IkeCore } from './ike/index.js';
import { type IkeTransport, UdpTransport } from './ike/transport.js';
import { loopLag, watchLoopLag } from './metrics/loop-lag.js';

export { type StatusOptions, statusOptions } from './control/protocol.js';

export interface ChildStatus {
  spiIn: string;
  spiOut: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  encr: string;
  integ: string | null;
  encapsulation: 'udp' | 'esp';
  tsLocal: string[];
  tsRemote: string[];
  /** The peer's IKE endpoint (address:port) of the IKE SA holding it: a hub's sites tell apart. */
  peer?: string;
}

/** IKE SAs of a connection by state (a hub connection with `remote: %any` has one per site). */
export interface IkeSaCounts {
  established: number;
  connecting: number;
  deleting: number;
}

export interface ConnectionStatus {
  state: 'established' | 'connecting' | 'down';
  version: 1 | 2;
  local: string;
  remote: string;
  /** Taken down by `twinsec down` (stays down until `twinsec up`). */
  adminDown: boolean;
  /** Health check result; without a health check it follows the SA state. */
  health: 'up' | 'down' | 'unknown';
  /** Round-trip time of the last answered health probe (ms). */
  lastRttMs: number | null;
  /** With a health check: SAs renegotiated because the check kept failing (healthCheck.resetAfter). */
  resets?: number;
  /** Route-based: the connection's interface and whether it has carrier (the connection is usable). */
  interface?: { name: string; address: string; up: boolean };
  /** IKE SAs by state. */
  ikeSas?: IkeSaCounts;
  /** All the connection's CHILD SAs; `children` holds them all unless a page was asked for. */
  childrenTotal?: number;
  /** Newest IKE SA first; a page of them (StatusOptions) when `childrenTotal` says there are more. */
  children: ChildStatus[];
}

/** Event loop lag of the daemon's process over the last window (metrics/loop-lag.ts). */
export interface EventLoopStatus {
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Seconds the figures cover. */
  windowSeconds: number;
}

export interface StatusReport {
  connections: Record<string, ConnectionStatus>;
  /**
   * `active`: the connections carrying the route now. `fallback`: none is usable; the route is then
   * kept on its highest weight (`onAllDown: reserve`) or withdrawn (`revoked`, `active` empty).
   * `published`: in the OS routing table now (routes with `publish: true`, native data plane).
   */
  routes: {
    destination: string;
    active: string[];
    fallback: boolean;
    onAllDown: 'reserve' | 'revoke';
    revoked: boolean;
    published?: boolean;
    switches: number;
  }[];
  /** Packets and datagrams dropped since start, by reason: ESP in the data plane, IKE in the manager. */
  drops: { esp: Record<string, number>; ike: Record<string, number> };
  /** Control packets the data plane sent ahead of bulk, by kind (DataPlane.controlCounters). */
  control?: Record<string, number>;
  eventLoop?: EventLoopStatus;
}

export interface DaemonOptions {
  /**
   * Injected in tests. Without a data plane the daemon runs the native ESP engine (TUN device,
   * ESP sockets) and opens its IKE sockets on the configured addresses.
   */
  transport?: IkeTransport;
  dataplane?: DataPlane;
  timing?: Partial<Timing>;
  /** Bounds on responder state (defaults: sa-table.ts DEFAULT_LIMITS). */
  limits?: Partial<SaLimits>;
  retry?: { base: number; max: number };
  /** Injected in tests (a fake clock runs DPD, lifetimes and retransmissions fast and exactly). */
  clock?: Clock;
  random?: Random;
  /**
   * Test-only seam: wraps the data plane the daemon built (the wire-check tests record SA keys
   * here to decrypt captures with tshark). twinsecd never sets it.
   */
  wrapDataPlane?: (dp: DataPlane) => DataPlane;
}

export class Daemon {
  readonly bus = new EventBus();
  #config: Config;
  readonly #opts: DaemonOptions;
  #transport: IkeTransport | undefined;
  #dp: DataPlane | undefined;
  #ike: IkeCore | undefined;
  #ha: HaController | undefined;
  /** Published routes in the OS table (the native data plane only). */
  #published: PublishedRoutes | undefined;
  /** Carrier last set on each route-based connection's interface. */
  readonly #carrierUp = new Map<string, boolean>();
  #unwatchLoop: (() => void) | undefined;

  constructor(config: Config, opts: DaemonOptions = {}) {
    this.#config = config;
    this.#opts = opts;
  }

  get config(): Config {
    return this.#config;
  }

  async start(): Promise<void> {
    this.#unwatchLoop = watchLoopLag();
    const locals = [...new Set(Object.values(this.config.connections).map((c) => c.local))];
    if (this.#opts.dataplane) {
      this.#dp = this.#opts.dataplane;
      this.#transport = this.#opts.transport ?? (await UdpTransport.open(locals, this.config.ports));
    } else {
      await this.#startNative(locals);
    }
    if (this.#opts.wrapDataPlane) this.#dp = this.#opts.wrapDataPlane(this.#dp!);
    this.#startHa();
    this.#reconcilePublished();
    this.bus.on('child-up', () => this.#ha?.update());
    this.bus.on('child-down', () => this.#ha?.update());
    this.#ike = createIke({
      config: this.config,
      transport: this.#transport!,
      dataplane: this.#dp!,
      bus: this.bus,
      timing: { ...timingOf(this.config), ...this.#opts.timing },
      limits: { ...limitsOf(this.config), ...this.#opts.limits },
      retry: this.#opts.retry,
      clock: this.#opts.clock,
      random: this.#opts.random,
    });
    this.#ike.start();
  }

  async #startNative(locals: string[]): Promise<void> {
    let transport: UdpTransport | undefined;
    const dp = new NativeDataPlane({
      tunName: this.config.tun.name,
      mtu: this.config.tun.mtu,
      nattPort: this.config.ports.natt,
      localAddresses: locals,
      qos: { priority: this.config.qos.priority, dscp: this.config.qos.dscp },
      onIke: (data, local, localPort, remote, remotePort) =>
        transport?.deliver(data, { address: local, port: localPort }, { address: remote, port: remotePort }),
      onProbe: (_connection, packet, at) => this.#ha?.onProbe(packet, at),
    });
    this.#dp = dp;
    try {
      transport = await UdpTransport.open(locals, this.config.ports, dp.engine);
      this.#transport = transport;
      // IKE on port 500 leaves from Node's own sockets, which carry nothing else: marked whole.
      dp.engine.markIkeSockets(this.config.ports.ike);
      // Route-based connections' own devices, without carrier until the connection is usable.
      for (const c of Object.values(this.config.connections)) {
        if (!c.interface) continue;
        dp.engine.addInterface(c.name, c.interface.name, c.interface.mtu);
        await addInterfaceAddress(c.interface.address, c.interface.name);
      }
      dp.engine.answerEcho(echoAnswered(this.config));
      this.#published = new PublishedRoutes(this.config.tun.name, (e) => this.bus.emit('route-publish', e));
      // Routes that stay whatever happens are published now, and a failure stops the start. Those
      // with `onAllDown: revoke` go in once a next hop is usable (#reconcilePublished, onRevoked).
      for (const r of this.config.routes) {
        if (!r.publish || r.onAllDown === 'revoke') continue;
        await publishRoute(r.destination, this.config.tun.name);
        this.#published.known(r.destination, true);
      }
    } catch (err) {
      await this.#transport?.close();
      await dp.close();
      throw err;
    }
  }

  #startHa(): void {
    const prev = this.#ha;
    prev?.stop();
    this.#ha = new HaController({
      config: this.#config,
      bus: this.bus,
      dataplane: this.#dp!,
      saUp: (c) => this.#saUp(c),
      onUsable: (c, usable, reason) => this.#carrier(c, usable, reason),
      onRevoked: () => this.#reconcilePublished(),
      reset: (c) => {
        void this.#ike?.reset(c, 'health check failing (resetAfter)');
      },
      clock: this.#opts.clock,
      random: this.#opts.random,
      // A reload keeps what the checks know: no route moves or is withdrawn while probes restart.
      previous: prev,
    });
    this.#ha.start();
  }

  /**
   * Brings the OS table in line with the published routes: every `publish: true` route is in it
   * unless withdrawn by `onAllDown: revoke`; routes no longer published (reload) leave it.
   */
  #reconcilePublished(): void {
    const pub = this.#published;
    if (!pub) return;
    const want = new Map<string, boolean>();
    for (const r of this.#config.routes) {
      if (r.publish) want.set(r.destination, !(this.#ha?.router.isRevoked(r.destination) ?? false));
    }
    for (const d of new Set([...want.keys(), ...pub.destinations()])) void pub.set(d, want.get(d) ?? false);
  }

  /**
   * A route-based connection's interface has carrier exactly while the connection is usable, so a
   * routing daemon (zebra) withdraws routes through a dead tunnel at once and BGP/BFD need not wait
   * for their own timers to notice.
   */
  #carrier(connection: string, up: boolean, reason: string): void {
    const iface = this.#config.connections[connection]?.interface;
    if (!iface || !(this.#dp instanceof NativeDataPlane)) return;
    if (this.#carrierUp.get(connection) === up) return;
    this.#carrierUp.set(connection, up);
    this.#dp.engine.setCarrier(connection, up);
    this.bus.emit('interface', { connection, name: iface.name, up, reason });
  }

  /** `twinsec up NAME`: initiate now (and after an operator's `down`). */
  up(name: string): void {
    if (!this.#ike?.up(name)) throw new TwinsecError('ERR_UNKNOWN_CONNECTION', `no connection '${name}'`);
  }

  /** `twinsec down NAME`: DELETE to the peer, then stay down until `up`. */
  async down(name: string): Promise<void> {
    if (!(await this.#ike?.down(name)))
      throw new TwinsecError('ERR_UNKNOWN_CONNECTION', `no connection '${name}'`);
  }

  /**
   * Applies a re-read configuration: unchanged connections stay up untouched, changed ones
   * renegotiate, removed ones are deleted; routes and health checks follow the new file.
   * Changes that need new sockets or a new TUN are refused (restart instead).
   */
  async reload(
    next: Config,
  ): Promise<{ added: string[]; changed: string[]; removed: string[]; unchanged: string[] }> {
    const cur = this.#config;
    const problems: string[] = [];
    if (JSON.stringify(next.tun) !== JSON.stringify(cur.tun)) problems.push('tun');
    if (JSON.stringify(next.ports) !== JSON.stringify(cur.ports)) problems.push('ports');
    if (next.qos.priority !== cur.qos.priority || next.qos.dscp !== cur.qos.dscp) problems.push('qos');
    if (JSON.stringify(next.limits) !== JSON.stringify(cur.limits)) problems.push('limits');
    for (const c of Object.values(next.connections)) {
      const was = cur.connections[c.name];
      if (JSON.stringify(was?.interface) !== JSON.stringify(c.interface) && (was?.interface || c.interface))
        problems.push(`connections.${c.name}.interface`);
    }
    for (const c of Object.values(cur.connections)) {
      if (c.interface && !next.connections[c.name]) problems.push(`connections.${c.name}.interface`);
    }
    const locals = new Set(Object.values(cur.connections).map((c) => c.local));
    for (const c of Object.values(next.connections)) {
      if (!locals.has(c.local)) problems.push(`connections.${c.name}.local (new address ${c.local})`);
    }
    if (problems.length) {
      throw new TwinsecError('ERR_RELOAD', `reload refused: changing ${problems.join(', ')} needs a restart`);
    }
    const res = await this.#ike!.reload(next);
    this.#config = next;
    if (this.#dp instanceof NativeDataPlane) this.#dp.engine.answerEcho(echoAnswered(next));
    this.#startHa();
    this.#reconcilePublished();
    await this.#published?.settled();
    return res;
  }

  /** An established IKE SA with an installed CHILD_SA (health checks refine this in the HA layer). */
  #saUp(name: string): boolean {
    return this.#ike?.hasUsableSa(name) ?? false;
  }

  /** Tells every peer (DELETE), then releases sockets and the data plane (which removes the TUN). */
  async stop(): Promise<void> {
    this.#unwatchLoop?.();
    this.#ha?.stop();
    // Route changes still running finish before the TUN (and its routes) go; none start after.
    await this.#published?.close();
    await this.#ike?.stop();
    await this.#transport?.close();
    await this.#dp?.close();
  }

  get ike(): IkeCore | undefined {
    return this.#ike;
  }

  status(opts: StatusOptions = {}): StatusReport {
    const connections: Record<string, ConnectionStatus> = {};
    const conns = Object.values(this.config.connections).filter(
      (c) => opts.connection === undefined || c.name === opts.connection,
    );
    if (opts.connection !== undefined && conns.length === 0)
      throw new TwinsecError('ERR_UNKNOWN_CONNECTION', `no connection '${opts.connection}'`);
    const first = opts.offset ?? 0;
    const end = opts.limit === undefined ? Number.POSITIVE_INFINITY : first + opts.limit;
    for (const c of conns) {
      const sas = this.#ike?.sasOf(c.name) ?? [];
      const ikeSas: IkeSaCounts = { established: 0, connecting: 0, deleting: 0 };
      for (const s of sas) {
        if (s.phase === 'established') ikeSas.established++;
        else if (s.phase === 'init' || s.phase === 'auth') ikeSas.connecting++;
        else if (s.phase === 'deleting') ikeSas.deleting++;
      }
      const state = ikeSas.established > 0 ? 'established' : ikeSas.connecting > 0 ? 'connecting' : 'down';
      const children: ChildStatus[] = [];
      // Only the page's entries are built (counters read, SPIs formatted); the rest are counted.
      let n = 0;
      for (const sa of sas) {
        const peer = `${sa.remote.address}:${sa.remote.port}`;
        for (const ch of sa.children) {
          if (n++ < first || n > end) continue;
          const k = this.#dp?.counters(ch.spiIn) ?? { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 };
          children.push({
            spiIn: spiHex(ch.spiIn),
            spiOut: spiHex(ch.spiOut),
            ...k,
            encr: ch.encr,
            integ: ch.integ,
            encapsulation: ch.encapsulation,
            tsLocal: [...ch.tsLocal],
            tsRemote: [...ch.tsRemote],
            peer,
          });
        }
      }
      const h = this.#ha?.health(c.name) ?? { health: 'unknown' as const, lastRttMs: null };
      connections[c.name] = {
        state,
        version: c.version,
        local: c.local,
        remote: c.remote,
        adminDown: this.#ike?.isAdminDown(c.name) ?? false,
        health: h.health,
        lastRttMs: h.lastRttMs,
        ...(h.resets !== undefined ? { resets: h.resets } : {}),
        ...(c.interface
          ? {
              interface: {
                name: c.interface.name,
                address: c.interface.address,
                up: this.#carrierUp.get(c.name) ?? false,
              },
            }
          : {}),
        ikeSas,
        childrenTotal: n,
        children,
      };
    }
    const routes = this.config.routes.map((r) => ({
      destination: r.destination,
      active: this.#ha?.router.active(r.destination) ?? [],
      fallback: this.#ha?.router.isFallback(r.destination) ?? false,
      onAllDown: r.onAllDown,
      revoked: this.#ha?.router.isRevoked(r.destination) ?? false,
      ...(r.publish && this.#published ? { published: this.#published.isPublished(r.destination) } : {}),
      switches: this.#ha?.router.switches.get(r.destination) ?? 0,
    }));
    const drops = {
      esp: this.#dp?.drops() ?? {},
      ike: Object.fromEntries(this.#ike?.dropped ?? []),
    };
    const control = this.#dp?.controlCounters?.();
    const lag = loopLag();
    const ms = (v: number): number => Math.round(v * 1e6) / 1e3;
    const eventLoop: EventLoopStatus | undefined = lag && {
      lagP50Ms: ms(lag.p50),
      lagP99Ms: ms(lag.p99),
      lagMaxMs: ms(lag.max),
      windowSeconds: Math.round(lag.window * 10) / 10,
    };
    return {
      connections,
      routes,
      drops,
      ...(control ? { control } : {}),
      ...(eventLoop ? { eventLoop } : {}),
    };
  }
}

/** The configured `limits` as the SA table's bounds (absent: the table's defaults). */
function limitsOf(config: Config): Partial<SaLimits> {
  const l = config.limits;
  if (!l) return {};
  return {
    halfOpen: l.halfOpen,
    halfOpenPerPeer: l.halfOpenPerPeer,
    total: l.ikeSas,
    perPeer: l.ikeSasPerPeer,
    childrenPerIke: l.childrenPerIke,
    unproven: l.v1Unproven,
    unprovenPerPeer: l.v1UnprovenPerPeer,
  };
}

/** The configured `limits` that are timings of the IKE core (absent: its defaults). */
function timingOf(config: Config): Partial<Timing> {
  const l = config.limits;
  if (!l) return {};
  return {
    cookieThreshold: l.cookieThreshold,
    cookieThresholdPerPeer: l.cookieThresholdPerPeer,
    halfOpenTimeout: l.halfOpenTimeout * 1000,
  };
}

/**
 * The addresses whose echo requests through a tunnel the engine answers itself: this host's own
 * protected addresses (unless `qos.answerEcho` is off), and always the inside addresses of
 * route-based interfaces. Those must be answered even while the interface has no carrier, when
 * the kernel cannot send through it (and the OS does not list the address as usable): the peer's
 * health check probes them, and without answers the tunnel would never become usable.
 */
function echoAnswered(config: Config): string[] {
  const inside = Object.values(config.connections).flatMap((c) =>
    c.interface ? [c.interface.address.split('/')[0]!] : [],
  );
  return [...new Set([...(config.qos.answerEcho ? ownProtectedAddresses(config) : []), ...inside])];
}

/**
 * This host's own addresses inside some connection's local subnets: the addresses a peer's health
 * check can probe through a tunnel. The engine answers echo requests to them itself, so that the
 * answers do not queue behind bulk traffic in the TUN device (security issue #11).
 */
export function ownProtectedAddresses(config: Config): string[] {
  const protectedNets = new BlockList();
  for (const c of Object.values(config.connections)) {
    for (const s of c.localSubnets) {
      const [net, len] = s.split('/') as [string, string | undefined];
      const v6 = isIPv6(net);
      protectedNets.addSubnet(net, len === undefined ? (v6 ? 128 : 32) : Number(len), v6 ? 'ipv6' : 'ipv4');
    }
  }
  const own = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const address = a.address.split('%')[0]!;
      if (a.family === 'IPv6' && address.toLowerCase().startsWith('fe80:')) continue;
      if (protectedNets.check(address, a.family === 'IPv6' ? 'ipv6' : 'ipv4')) own.add(address);
    }
  }
  return [...own];
}
