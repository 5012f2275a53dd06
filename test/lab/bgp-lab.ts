/**
 * BGP over route-based tunnels (issue #12): the seed's dual-tunnel topology (ha-lab.ts buildTopology:
 * on-prem gateway with two links, a router, a cloud gateway with one link, a LAN host behind each
 * gateway), with route-based twinsec connections and FRR (zebra, bfdd, bgpd) on both gateways. Used by
 * bgp.test.ts and bgp-demo.ts; bgp-scaleout.test.ts reuses the configuration builders.
 *
 *   [onlan] 198.18.1.10 ── [ongw] twinsec t1 tw-t1 169.254.10.2/30 ══ link 1 ══╗
 *                                  twinsec t2 tw-t2 169.254.20.2/30 ══ link 2 ══╣ [inet] ══ [cloudgw] twinsec
 *                                  FRR AS 65001                                 c1 tw-c1 169.254.10.1/30
 *                                                                                c2 tw-c2 169.254.20.1/30
 *                                                                                FRR AS 45104 ── [cloudlan]
 *
 * eBGP over each tunnel's inside addresses with BFD 100 ms x 3; each gateway announces its LAN
 * (`network`); tunnel 1 is preferred both ways by the on-prem side alone (a cloud VPN gateway's BGP is
 * not ours to configure): local-preference 200 on what it learns over t1, and its announcements over
 * t2 prepended twice. zebra installs the learned routes through the tunnel devices. Each device has
 * carrier only while twinsec's health check (0.1 s x 3, probing the peer's inside address) passes,
 * so a dead tunnel drops its connected /30, its BGP session (fast-external-failover) and the routes
 * through it at once; BFD detects the same thing independently.
 */
import { readFileSync } from 'node:fs';
import { call } from '../../src/control/client.js';
import { Frr, kernelRoutes, routeDevs, waitKernelRoute } from './frr.js';
import {
  ADDR,
  buildTopology,
  ESP_PROPOSAL,
  type HaNamespaces,
  ID,
  IKE_PROPOSAL,
  type LostRun,
  longestRun,
  type PingResult,
  PSK,
  parsePing,
} from './ha-lab.js';
import { type Lab, type LabProcess, type Teardownable, waitFor } from './netns.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, type TwinsecConnYaml } from './twinsec.js';

export const ASN = { cloud: 45104, onprem: 65001, lan: 65010 } as const;

/** Inside addresses (the seed's TunnelCidr / LocalBgpIp pairs): the on-prem end .2, the cloud end .1. */
export const INSIDE = {
  t1: { onprem: '169.254.10.2', cloud: '169.254.10.1' },
  t2: { onprem: '169.254.20.2', cloud: '169.254.20.1' },
} as const;

/** Tunnel devices: the on-prem side's t1/t2, the cloud side's c1/c2. */
export const DEV = { t1: 'tw-t1', t2: 'tw-t2', c1: 'tw-c1', c2: 'tw-c2' } as const;

/** twinsec's health check on every tunnel: every 0.1 s, 3 lost = down (and no carrier). */
export const HEALTH = { interval: 0.1, retries: 3 } as const;
/** BFD on every BGP session: 100 ms x 3. */
export const BFD = { intervalMs: 100, multiplier: 3 } as const;

/** A route-based twinsec connection: selectors 0.0.0.0/0, its own device, probes to the peer's inside. */
export function routeBasedConn(o: {
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  start: 'initiate' | 'listen';
  device: string;
  inside: string;
  peerInside: string;
}): TwinsecConnYaml {
  return {
    version: 2,
    local: o.local,
    remote: o.remote,
    localId: o.localId,
    remoteId: o.remoteId,
    psk: PSK,
    ike: { proposals: [IKE_PROPOSAL], lifetime: 3600 },
    esp: { proposals: [ESP_PROPOSAL], lifetime: 1800 },
    localSubnets: ['0.0.0.0/0'],
    remoteSubnets: ['0.0.0.0/0'],
    start: o.start,
    interface: { name: o.device, address: `${o.inside}/30` },
    healthCheck: { source: o.inside, destination: o.peerInside, ...HEALTH },
  };
}

// ---------------------------------------------------------------------------------------------------------
// FRR configuration text

export interface FrrNeighbor {
  address: string;
  remoteAs: number;
  description: string;
  /** A BFD profile defined in `bfdProfiles`. */
  bfdProfile?: string;
  routeMapIn?: string;
  routeMapOut?: string;
}

export interface FrrSide {
  hostname: string;
  asn: number;
  routerId: string;
  neighbors: FrrNeighbor[];
  /** Prefixes this router announces (`network`; BGP's import check wants them in the RIB). */
  networks: string[];
  bfdProfiles?: Record<string, { intervalMs: number; multiplier: number }>;
  /** One-entry route-maps: name -> `set ...` clause. */
  routeMaps?: Record<string, string>;
  /** Static routes for staticd, e.g. '198.18.1.0/24 198.18.0.2'. */
  staticRoutes?: string[];
}

/**
 * frr.conf for one router. `!` separates blocks: an `exit` at the top level would end the file there.
 * `frr defaults datacenter` gives fast BGP timers (keepalive 3 s, hold 9 s, no MRAI); BFD does the
 * fast failure detection, `timers connect 2` brings a session back 2 s after its tunnel does, and
 * `no bgp ebgp-requires-policy` lets neighbours without a route-map exchange routes (RFC 8212's
 * default in FRR's traditional profile).
 */
export function frrConfig(s: FrrSide): string {
  const l: string[] = ['frr defaults datacenter', `hostname ${s.hostname}`, 'log timestamp precision 3', '!'];
  for (const r of s.staticRoutes ?? []) l.push(`ip route ${r}`);
  if (s.staticRoutes?.length) l.push('!');
  if (s.bfdProfiles) {
    l.push('bfd');
    for (const [name, p] of Object.entries(s.bfdProfiles)) {
      l.push(
        ` profile ${name}`,
        `  transmit-interval ${p.intervalMs}`,
        `  receive-interval ${p.intervalMs}`,
        `  detect-multiplier ${p.multiplier}`,
      );
    }
    l.push('!');
  }
  l.push(`router bgp ${s.asn}`, ` bgp router-id ${s.routerId}`, ' no bgp ebgp-requires-policy');
  for (const n of s.neighbors) {
    l.push(
      ` neighbor ${n.address} remote-as ${n.remoteAs}`,
      ` neighbor ${n.address} description ${n.description}`,
      ` neighbor ${n.address} timers connect 2`,
    );
    if (n.bfdProfile) l.push(` neighbor ${n.address} bfd profile ${n.bfdProfile}`);
  }
  l.push(' address-family ipv4 unicast');
  for (const p of s.networks) l.push(`  network ${p}`);
  for (const n of s.neighbors) {
    if (n.routeMapIn) l.push(`  neighbor ${n.address} route-map ${n.routeMapIn} in`);
    if (n.routeMapOut) l.push(`  neighbor ${n.address} route-map ${n.routeMapOut} out`);
  }
  l.push(' exit-address-family', '!');
  for (const [name, set] of Object.entries(s.routeMaps ?? {}))
    l.push(`route-map ${name} permit 10`, ` set ${set}`, '!');
  return `${l.join('\n')}\n`;
}

const TUNNEL_BFD = { tunnel: { intervalMs: BFD.intervalMs, multiplier: BFD.multiplier } };

/** The on-prem gateway: tunnel 1 preferred both ways (local-preference in, AS-path prepend out on t2). */
export function onpremFrrConfig(): string {
  return frrConfig({
    hostname: 'onprem',
    asn: ASN.onprem,
    routerId: ADDR.onLanGw,
    bfdProfiles: TUNNEL_BFD,
    neighbors: [
      {
        address: INSIDE.t1.cloud,
        remoteAs: ASN.cloud,
        description: 'cloud-over-t1',
        bfdProfile: 'tunnel',
        routeMapIn: 'PREFER-T1',
      },
      {
        address: INSIDE.t2.cloud,
        remoteAs: ASN.cloud,
        description: 'cloud-over-t2',
        bfdProfile: 'tunnel',
        routeMapOut: 'PREPEND-T2',
      },
    ],
    networks: [ADDR.onLan],
    routeMaps: {
      'PREFER-T1': 'local-preference 200',
      'PREPEND-T2': `as-path prepend ${ASN.onprem} ${ASN.onprem}`,
    },
  });
}

/** The cloud gateway: plain eBGP to both tunnels, no policy (as a cloud VPN gateway's BGP). */
export function cloudFrrConfig(): string {
  return frrConfig({
    hostname: 'cloud',
    asn: ASN.cloud,
    routerId: ADDR.cloudLanGw,
    bfdProfiles: TUNNEL_BFD,
    neighbors: [
      {
        address: INSIDE.t1.onprem,
        remoteAs: ASN.onprem,
        description: 'onprem-over-c1',
        bfdProfile: 'tunnel',
      },
      {
        address: INSIDE.t2.onprem,
        remoteAs: ASN.onprem,
        description: 'onprem-over-c2',
        bfdProfile: 'tunnel',
      },
    ],
    networks: [ADDR.cloudLan],
  });
}

/** twinsec on the on-prem gateway: t1 over link 1, t2 over link 2, both route-based. */
export function onpremTwinsecConfig(logLevel = 'info'): TwinsecConfigYaml {
  const t = (n: 't1' | 't2', local: string, localId: string) =>
    routeBasedConn({
      local,
      remote: ADDR.cloudWan,
      localId,
      remoteId: ID.cloud,
      start: 'initiate',
      device: DEV[n],
      inside: INSIDE[n].onprem,
      peerInside: INSIDE[n].cloud,
    });
  return {
    log: { level: logLevel },
    connections: { t1: t('t1', ADDR.onWan1, ID.on1), t2: t('t2', ADDR.onWan2, ID.on2) },
    routes: [],
  };
}

/** twinsec on the cloud gateway: c1 to on-prem link 1, c2 to link 2. */
export function cloudTwinsecConfig(logLevel = 'info'): TwinsecConfigYaml {
  const c = (n: 't1' | 't2', dev: string, remote: string, remoteId: string) =>
    routeBasedConn({
      local: ADDR.cloudWan,
      remote,
      localId: ID.cloud,
      remoteId,
      start: 'listen',
      device: dev,
      inside: INSIDE[n].cloud,
      peerInside: INSIDE[n].onprem,
    });
  return {
    log: { level: logLevel },
    connections: { c1: c('t1', DEV.c1, ADDR.onWan1, ID.on1), c2: c('t2', DEV.c2, ADDR.onWan2, ID.on2) },
    routes: [],
  };
}

// ---------------------------------------------------------------------------------------------------------
// The dual-tunnel BGP lab

export interface BgpLab {
  lab: Lab;
  ns: HaNamespaces;
  onprem: Twinsec;
  cloud: Twinsec;
  frrOnprem: Frr;
  frrCloud: Frr;
}

/** The topology, both twinsec gateways and FRR on both (started, not yet waited for). */
export async function startBgpLab(lab: Lab, t?: Teardownable, logLevel = 'info'): Promise<BgpLab> {
  const ns = await buildTopology(lab);
  const cloud = await startTwinsec(lab, ns.cloudGw, cloudTwinsecConfig(logLevel));
  const onprem = await startTwinsec(lab, ns.onGw, onpremTwinsecConfig(logLevel));
  // FRR after twinsecd: the tunnel devices exist (without carrier) when zebra starts.
  const frrCloud = await Frr.start(lab, ns.cloudGw, cloudFrrConfig(), { t, name: 'cloud' });
  const frrOnprem = await Frr.start(lab, ns.onGw, onpremFrrConfig(), { t, name: 'onprem' });
  return { lab, ns, onprem, cloud, frrOnprem, frrCloud };
}

/** Route-based part of `twinsec status` (the README's contract). */
interface RbStatus {
  connections: Record<string, { state: string; health?: string; interface?: { name: string; up: boolean } }>;
}

/** The control socket's status, in-process (no node process per poll). */
export async function rbStatus(tw: Twinsec): Promise<RbStatus> {
  return (await call(tw.socket, 'status', undefined, { timeoutMs: 5000 })) as RbStatus;
}

/** Waits until each named connection's device has carrier (CHILD_SA up, health check passing). */
export async function waitCarrier(tw: Twinsec, conns: string[], timeoutMs: number): Promise<void> {
  let last = '';
  try {
    await waitFor(
      async () => {
        if (!tw.proc.running) throw new Error(`twinsecd exited:\n${tw.log()}`);
        const s = await rbStatus(tw);
        last = conns.map((c) => `${c} ${s.connections[c]?.state}/${s.connections[c]?.health}`).join(', ');
        return conns.every((c) => s.connections[c]?.interface?.up);
      },
      timeoutMs,
      { what: `carrier on ${conns.join(', ')}`, intervalMs: 100 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${last}`);
  }
}

/** One ping from `ns` (optionally from `src`) to `dst` answered, retried until `timeoutMs`. */
export async function waitPing(lab: Lab, ns: string, dst: string, timeoutMs: number, src?: string) {
  await waitFor(
    async () =>
      (
        await lab.exec(ns, 'ping', ['-n', '-c', '1', '-W', '1', ...(src ? ['-I', src] : []), dst], {
          check: false,
        })
      ).code === 0,
    timeoutMs,
    { what: `ping ${dst} from ${ns}`, intervalMs: 100 },
  );
}

/**
 * Everything up: carrier on all four tunnels, both BGP sessions Established and BFD up on both sides, the other
 * LAN installed in each kernel through tunnel 1, and one LAN-to-LAN ping answered.
 */
export async function waitBgpReady(h: BgpLab, timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  await waitCarrier(h.onprem, ['t1', 't2'], left());
  await waitCarrier(h.cloud, ['c1', 'c2'], left());
  await h.frrOnprem.waitEstablished([INSIDE.t1.cloud, INSIDE.t2.cloud], left());
  await h.frrCloud.waitEstablished([INSIDE.t1.onprem, INSIDE.t2.onprem], left());
  await h.frrOnprem.waitBfdUp([INSIDE.t1.cloud, INSIDE.t2.cloud], left());
  await h.frrCloud.waitBfdUp([INSIDE.t1.onprem, INSIDE.t2.onprem], left());
  await waitKernelRoute(h.lab, h.ns.onGw, ADDR.cloudLan, DEV.t1, left());
  await waitKernelRoute(h.lab, h.ns.cloudGw, ADDR.onLan, DEV.c1, left());
  await waitPing(h.lab, h.ns.onLan, ADDR.cloudLanHost, left());
}

/**
 * Silent cut of the link behind router port `port`: both directions dropped in the router (no carrier
 * change). Returns the time just before the change: iptables-restore takes effect somewhere within its
 * run (tens of ms), so pings sent after that time may already be dropped.
 */
export async function cutLink(lab: Lab, routerNs: string, port: string): Promise<number> {
  const at = Date.now();
  await lab.exec(routerNs, 'iptables-restore', ['--noflush'], { input: iptSilent('-I', port) });
  return at;
}

/** Undoes cutLink; returns the time just before the change (failback counts from there, the strict end). */
export async function repairLink(lab: Lab, routerNs: string, port: string): Promise<number> {
  const at = Date.now();
  await lab.exec(routerNs, 'iptables-restore', ['--noflush'], { input: iptSilent('-D', port) });
  return at;
}

/** Both directions through router port `port`, inserted or removed atomically (iptables-restore). */
const iptSilent = (op: '-I' | '-D', port: string) =>
  ['*filter', `${op} FORWARD -i ${port} -j DROP`, `${op} FORWARD -o ${port} -j DROP`, 'COMMIT', ''].join(
    '\n',
  );

// ---------------------------------------------------------------------------------------------------------
// Measurements: kernel route changes, device counters, twinsec's interface events, ping

export interface RouteChange {
  at: number;
  /** Devices the route goes through ('' = no route). */
  devs: string;
}

/**
 * Records when the kernel's route for `prefix` in a namespace changes device, as the kernel saw it:
 * `ip -ts monitor route` timestamps each change zebra makes (a route replaced from one tunnel device
 * to the other, or deleted), to the microsecond, without polling. Routes the kernel flushes itself
 * when a device vanishes are not announced; zebra's replacement that follows is.
 */
export class RouteWatch {
  #initial: RouteChange | undefined;
  #proc: LabProcess | undefined;
  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly prefix: string,
    readonly label: string,
  ) {}

  async start(): Promise<void> {
    this.#proc = this.lab.spawn(this.ns, 'ip', ['-ts', 'monitor', 'route']);
    // No "listening" line: give it time to subscribe, then read the state it starts from.
    await new Promise((r) => setTimeout(r, 200));
    this.#initial = {
      at: Date.now(),
      devs: routeDevs(await kernelRoutes(this.lab, this.ns, this.prefix)).join('+'),
    };
  }

  /** The state at start, then each change of device (consecutive duplicates dropped). */
  get changes(): RouteChange[] {
    const out: RouteChange[] = this.#initial ? [this.#initial] : [];
    for (const line of (this.#proc?.log() ?? '').split('\n')) {
      const m = /^\[(\S+)\] (Deleted )?(\S+) (.*)$/.exec(line);
      if (!m || m[3] !== this.prefix) continue;
      // ip prints the local time without a zone; Date parses such an ISO string as local time too.
      const at = new Date(m[1]!).getTime();
      const devs = m[2] ? '' : [...m[4]!.matchAll(/\bdev (\S+)/g)].map((d) => d[1]).join('+');
      if (out.at(-1)?.devs !== devs) out.push({ at, devs });
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.#proc?.stop('SIGTERM', 1000);
  }

  /** The first change to `devs` at or after `since`. */
  firstTo(devs: string, since: number): RouteChange | undefined {
    return this.changes.find((c) => c.at >= since && c.devs === devs);
  }
}

/**
 * Counting rules (no target) in a gateway's FORWARD chain for ICMP routed out of each of `devs`: they
 * count the LAN's pings and replies per tunnel, and nothing of the gateway's own traffic (BGP, BFD and
 * twinsec's probes are not forwarded).
 */
export async function countForwardedIcmp(lab: Lab, ns: string, devs: string[]): Promise<void> {
  for (const d of devs) await lab.exec(ns, 'iptables', ['-A', 'FORWARD', '-o', d, '-p', 'icmp']);
}

/** The counts of countForwardedIcmp's rules: forwarded ICMP packets per outgoing device. */
export async function forwardedIcmp(lab: Lab, ns: string): Promise<Record<string, number>> {
  const out = (await lab.exec(ns, 'iptables', ['-S', 'FORWARD', '-v'])).stdout;
  const counts: Record<string, number> = {};
  for (const m of out.matchAll(/^-A FORWARD -o (\S+) -p icmp -c (\d+) \d+$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

/** twinsec's `interface` log events (carrier changes), with their times. */
export function carrierEvents(tw: Twinsec): { at: number; name: string; up: boolean; reason: string }[] {
  return tw
    .logEvents()
    .filter((e) => e.event === 'interface')
    .map((e) => ({ at: e.at, name: String(e.name), up: e.up === true, reason: String(e.reason ?? '') }));
}

export interface PingRun {
  proc: LabProcess;
  intervalMs: number;
  stop(): Promise<PingResult>;
}

/** `ping -n -D -O -i INTERVAL [-I SRC] DEST` in `ns`, parsed by ha-lab's parsePing when stopped. */
export function startPing(lab: Lab, ns: string, dest: string, intervalMs: number, src?: string): PingRun {
  const proc = lab.spawn(ns, 'ping', [
    '-n',
    '-D',
    '-O',
    '-i',
    String(intervalMs / 1000),
    '-W',
    '2',
    ...(src ? ['-I', src] : []),
    dest,
  ]);
  return {
    proc,
    intervalMs,
    async stop() {
      await proc.stop('SIGINT', 3000);
      return parsePing(readFileSync(proc.logFile, 'utf8'), intervalMs);
    },
  };
}

/**
 * ping's `-i` for about 50 pings a second: the kernel's timer granularity stretches the interval, so
 * `-i 0.02` gives ~38/s on this 250 Hz kernel and 0.015 gives ~47/s. Figures use the rate measured.
 */
export const PING_50_PER_S_MS = 15;

/** Pings per second actually sent (the kernel's timer granularity rounds ping's interval up). */
export function pingRate(p: PingResult): number {
  const first = p.sendMs(1);
  const last = p.sendMs(p.transmitted);
  return p.transmitted > 1 ? ((p.transmitted - 1) * 1000) / (last - first) : 0;
}

export interface OutageFigures {
  /** Pings per second actually sent. */
  rate: number;
  /** Runs of lost pings that end after the failure and start before the recovery. */
  runs: LostRun[];
  /** The longest of them: the outage (its durationMs: from ping's own send timestamps). */
  worst: LostRun | undefined;
  /** worst.count x the measured interval between pings (the same figure, counted). */
  countedMs: number;
  /** Pings lost that were sent well before the failure (should be none). */
  lostBefore: number[];
  /** Pings lost that were sent after the recovery began (failback loss). */
  lostAfter: number[];
}

/**
 * The figures of one failure and recovery from a ping run: `failAt` and `recoverAt` are the times just
 * before each change was made. A ping sent 50 ms or more before the failure was answered within a
 * millisecond or two here, so it cannot have been lost to it (the margin covers the interpolated send
 * times of lost pings).
 */
export function outageFigures(p: PingResult, failAt: number, recoverAt: number): OutageFigures {
  const runs = p.runs.filter((r) => r.endMs > failAt && r.startMs < recoverAt);
  const worst = longestRun({ ...p, runs });
  const rate = pingRate(p);
  return {
    rate,
    runs,
    worst,
    countedMs: worst && rate > 0 ? Math.round((worst.count * 1000) / rate) : 0,
    lostBefore: p.lost.filter((s) => p.sendMs(s) < failAt - 50),
    lostAfter: p.lostSince(recoverAt),
  };
}
