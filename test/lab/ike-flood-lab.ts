/**
 * The HA lab (ha-lab.ts: two gateways, two links, health checks 0.1 s x 3, LAN pings) with what
 * the IKE load tests of security issue #11 add to it:
 *
 *   - the cloud gateway also answers any peer (`any`: remote %any, remoteId %any, listen), as a
 *     gateway many branch sites dial into; its CHILD_SAs cover BRANCH_LAN. The cloud gateway runs
 *     any-peer-daemon.ts: twinsecd's Daemon that also reports its retained heap on SIGUSR2;
 *   - an attacker namespace [atk] on its own router link (198.18.200.2/24 -- ra 198.18.200.1/24);
 *     the router sends SPOOF_NET (198.18.64.0/18) there, so answers to spoofed sources cross the
 *     router (where iptables counts them) and die in [atk] (no such local address);
 *   - a namespace for a legitimate new branch peer [peer] on another router link
 *     (198.18.201.2/24 -- rp 198.18.201.1/24), BRANCH_LAN_HOST on its lo.
 *
 * Addresses beyond the HA lab's TEST-NET WANs come from 198.18.0.0/15, clear of both LANs.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ADDR,
  buildTopology,
  CLOUD,
  cloudConfig,
  type HaLab,
  haEvents,
  ID,
  type IkeVersion,
  ONPREM,
  onpremConfig,
  PSK,
  proposalsFor,
  quickStatus,
} from './ha-lab.js';
import { type Lab, waitFor } from './netns.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, type TwinsecConnYaml } from './twinsec.js';

export const FLOOD_ADDR = {
  attacker: '198.18.200.2',
  attackerRouter: '198.18.200.1',
  peerWan: '198.18.201.2',
  peerRouter: '198.18.201.1',
  /** Spoofed IKE_SA_INIT sources: 16,384 addresses routed to [atk]. */
  spoofNet: '198.18.64.0/18',
  branchLan: '198.18.202.0/24',
  branchLanHost: '198.18.202.1',
} as const;

/** twinsec.ts's YAML type has no rekeyTime; the config file takes it. */
type Lifetimes = TwinsecConnYaml['esp'];

/** The test-only entry that runs twinsecd with `any` answering every peer address. */
export const ANY_PEER_DAEMON = fileURLToPath(new URL('./any-peer-daemon.js', import.meta.url));

export const BRANCH_ID = 'branch.example.net';

export interface FloodLab extends HaLab {
  attackerNs: string;
  peerNs: string;
  cloud: Twinsec;
}

export interface FloodLabOptions {
  /**
   * Seconds after which t1 (the primary tunnel, on-prem initiates) rekeys its CHILD_SA (minus up to
   * 10 % jitter); default: the HA lab's (80-90 % of 1800 s).
   */
  t1EspRekey?: number;
  /** IKE version of the cloud's `any` connection (default 2; IKEv1: main mode). */
  anyVersion?: IkeVersion;
}

/** The cloud gateway's `any` connection: any peer address and identity with the lab's PSK. */
function anyPeer(version: IkeVersion): TwinsecConnYaml {
  const p = proposalsFor(version);
  return {
    version,
    local: ADDR.cloudWan,
    remote: '%any',
    localId: ID.cloud,
    remoteId: '%any',
    psk: PSK,
    ike: { proposals: [p.ike], lifetime: 3600 },
    esp: { proposals: [p.esp], lifetime: 1800 },
    localSubnets: [ADDR.cloudLan],
    remoteSubnets: [FLOOD_ADDR.branchLan],
    start: 'listen',
  };
}

/** Topology, both HA gateways (the cloud one with `any`), the attacker's and the branch's links. */
export async function startFloodLab(lab: Lab, o: FloodLabOptions = {}): Promise<FloodLab> {
  const ns = await buildTopology(lab);
  const attackerNs = await lab.addNamespace('atk');
  const peerNs = await lab.addNamespace('peer');
  await lab.link(
    { ns: attackerNs, ifname: 'atk0', address: `${FLOOD_ADDR.attacker}/24` },
    { ns: ns.router, ifname: 'ra', address: `${FLOOD_ADDR.attackerRouter}/24` },
  );
  await lab.link(
    { ns: peerNs, ifname: 'wan0', address: `${FLOOD_ADDR.peerWan}/24` },
    { ns: ns.router, ifname: 'rp', address: `${FLOOD_ADDR.peerRouter}/24` },
  );
  await lab.exec(attackerNs, 'ip', ['route', 'add', 'default', 'via', FLOOD_ADDR.attackerRouter]);
  await lab.exec(peerNs, 'ip', ['route', 'add', 'default', 'via', FLOOD_ADDR.peerRouter]);
  await lab.loopbackAddresses(peerNs, `${FLOOD_ADDR.branchLanHost}/32`);
  await lab.exec(ns.router, 'ip', ['route', 'add', FLOOD_ADDR.spoofNet, 'via', FLOOD_ADDR.attacker]);
  for (const n of [attackerNs, peerNs]) {
    await lab.sysctl(n, 'net.ipv4.conf.all.rp_filter', 0);
    await lab.sysctl(n, 'net.ipv4.conf.default.rp_filter', 0);
  }
  for (const ifname of ['ra', 'rp']) await lab.sysctl(ns.router, `net.ipv4.conf.${ifname}.rp_filter`, 0);

  const cfg = { interval: 0.1, retries: 3, holdDown: 3, logLevel: 'info' };
  const cloudCfg = cloudConfig(cfg) as unknown as TwinsecConfigYaml;
  cloudCfg.connections.any = anyPeer(o.anyVersion ?? 2);
  cloudCfg.routes = [
    ...(cloudCfg.routes ?? []),
    { destination: FLOOD_ADDR.branchLan, via: [{ connection: 'any', weight: 100 }], publish: true },
  ];
  const cloud = await startTwinsec(lab, ns.cloudGw, cloudCfg, {
    daemon: { script: ANY_PEER_DAEMON, args: [] },
  });
  const onCfg = onpremConfig({ ...cfg, start: 'initiate' }) as unknown as TwinsecConfigYaml;
  if (o.t1EspRekey !== undefined) {
    const t1 = onCfg.connections.t1!;
    t1.esp = { ...t1.esp, lifetime: Math.max(60, o.t1EspRekey * 3), rekeyTime: o.t1EspRekey } as Lifetimes;
  }
  const onprem = await startTwinsec(lab, ns.onGw, onCfg);
  return {
    lab,
    ns,
    onprem,
    cloud,
    attackerNs,
    peerNs,
    opts: {
      version: 2,
      interval: 0.1,
      retries: 3,
      holdDown: 3,
      cloud: 'twinsec',
      logLevel: 'info',
      onpremStart: 'initiate',
      probeSources: false,
    },
  };
}

/**
 * A branch gateway for the cloud's `any` connection, with short lifetimes to rekey soon. It waits
 * (`start: listen`) until the operator's `up b1` on its control socket makes it dial in.
 */
export function branchConfig(o: {
  version?: IkeVersion;
  espRekey: number;
  ikeRekey: number;
  logLevel?: string;
}): TwinsecConfigYaml {
  const p = proposalsFor(o.version ?? 2);
  return {
    log: { level: o.logLevel ?? 'debug' },
    connections: {
      b1: {
        version: o.version ?? 2,
        local: FLOOD_ADDR.peerWan,
        remote: ADDR.cloudWan,
        localId: BRANCH_ID,
        remoteId: ID.cloud,
        psk: PSK,
        ike: { proposals: [p.ike], lifetime: o.ikeRekey * 4, rekeyTime: o.ikeRekey } as Lifetimes,
        esp: { proposals: [p.esp], lifetime: o.espRekey * 6, rekeyTime: o.espRekey } as Lifetimes,
        localSubnets: [FLOOD_ADDR.branchLan],
        remoteSubnets: [ADDR.cloudLan],
        start: 'listen',
      },
    },
    routes: [{ destination: ADDR.cloudLan, via: [{ connection: 'b1', weight: 100 }], publish: true }],
  };
}

/** VmRSS of a process in bytes (root can read any /proc/PID/status, whatever its namespace). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * The heap the cloud gateway retains after a full GC (any-peer-daemon.ts answers SIGUSR2 with a
 * `memory` log line), in bytes.
 */
export async function retainedHeap(tw: Twinsec): Promise<number> {
  const seen = tw.logEvents().filter((e) => e.event === 'memory').length;
  process.kill(tw.proc.pid!, 'SIGUSR2');
  const e = await waitFor(() => tw.logEvents().filter((x) => x.event === 'memory')[seen], 10_000, {
    what: 'memory log line',
    intervalMs: 50,
  });
  return Number(e.heapUsed);
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** The 1-minute load average (other work on the machine shows here). */
export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** p50/p95/max of a list of milliseconds. */
export function percentiles(xs: number[]): { n: number; p50: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))] ?? Number.NaN;
  return { n: s.length, p50: at(0.5), p95: at(0.95), max: s.at(-1) ?? Number.NaN };
}

export const fmtMs = (p: { n: number; p50: number; p95: number; max: number }): string =>
  `p50 ${p.p50.toFixed(1)} ms, p95 ${p.p95.toFixed(1)} ms, max ${p.max.toFixed(1)} ms (${p.n} requests)`;

/**
 * Polls `status` on the control socket back to back (a pause of `gapMs` between answers) until
 * `stop()`; returns each request's latency in ms. A request that fails counts as Infinity.
 */
export function pollStatus(
  tw: Twinsec,
  gapMs: number,
): { stop: () => Promise<number[]>; slow: (overMs: number) => { at: number; ms: number }[] } {
  const lat: number[] = [];
  const when: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const t0 = performance.now();
      try {
        await quickStatus(tw);
        lat.push(performance.now() - t0);
      } catch {
        lat.push(Number.POSITIVE_INFINITY);
      }
      when.push(at);
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return lat;
    },
    slow: (overMs) => lat.flatMap((ms, i) => (ms > overMs ? [{ at: when[i]!, ms }] : [])),
  };
}

/**
 * Health changes to down and route switches of the HA tunnels (t1, t2, c1, c2 and the two LAN
 * routes) at or after `since`, both gateways, as readable strings with their time after `since`.
 */
export function haFlaps(h: FloodLab, since: number): string[] {
  const ha = new Set([ONPREM.primary, ONPREM.standby, CLOUD.primary, CLOUD.standby]);
  const dests = new Set([ONPREM.destination, CLOUD.destination]);
  return [...haEvents(h.onprem, 'on-prem'), ...haEvents(h.cloud, 'cloud')]
    .filter((e) => e.at >= since)
    .filter((e) =>
      e.event === 'route-switch'
        ? dests.has(e.msg.split(' ')[1]?.replace(/:$/, '') ?? '')
        : ha.has(e.connection ?? '') && e.to !== 'up',
    )
    .map((e) => `${e.side} +${((e.at - since) / 1000).toFixed(1)} s: ${e.msg}`);
}

/** The HA IKE SAs alive on both gateways (spiI_spiR per connection), to compare before and after. */
export function haIkeSas(h: FloodLab): Record<string, string[]> {
  return {
    t1: h.onprem.liveIkeSas('t1'),
    t2: h.onprem.liveIkeSas('t2'),
    c1: h.cloud.liveIkeSas('c1'),
    c2: h.cloud.liveIkeSas('c2'),
  };
}

/** iptables rule counters (packets) of the FORWARD chain in `ns`, in rule order. */
export async function forwardCounters(lab: Lab, ns: string): Promise<number[]> {
  const r = await lab.exec(ns, 'iptables', ['-L', 'FORWARD', '-v', '-x', '-n']);
  return r.stdout
    .split('\n')
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}
