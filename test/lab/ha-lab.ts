/**
 * The dual-tunnel HA lab (the seed's scenario: an on-prem gateway with two internet links keeps one
 * IPsec tunnel per link to a cloud VPN gateway, health-checks both and routes by weight 100/0), built in
 * five network namespaces. Used by `npm run lab` (ha-demo.ts), the lab tests (ha.test.ts), the failover
 * bench (bench/failover.ts) and the strongSwan interop test (cloud: 'none', the test brings charon).
 *
 *   [onlan] eth0 198.18.1.10/24 ── lan0 198.18.1.1/24 [ongw]  twinsec, t1 weight 100, t2 weight 0
 *                                   wan1 192.0.2.2/24    ── r1 192.0.2.1/24     ┐
 *                                   wan2 198.51.100.2/24 ── r2 198.51.100.1/24  ├ [inet] router, ip_forward
 *   [cloudgw] twinsec, c1 100, c2 0  wan0 203.0.113.2/24 ── r3 203.0.113.1/24   ┘
 *   [cloudlan] eth0 198.19.1.10/24 ── lan0 198.19.1.1/24 [cloudgw]
 *
 * The on-prem gateway routes by source (`ip rule from 192.0.2.2 table 101`, default via 192.0.2.1 there;
 * the same for link 2 with table 102) and has no default route in its main table, so each tunnel's
 * packets leave on their own link. Link 1 fails silently (`iptables -j DROP` in the router, both ways)
 * or by carrier loss (`ip link set r1 down` in the router: the on-prem side sees NO-CARRIER); cutLinks
 * fails link 2, or both at once, the same ways (revoke.test.ts).
 *
 * Measurements come from outside the daemons: `ping -D -O` from a LAN host (timestamps, sequence
 * numbers) and the daemons' own JSON log lines (`health`, `route-switch` events with their times).
 */
import { readFileSync } from 'node:fs';
import { call } from '../../src/control/client.js';
import { type Lab, type LabProcess, waitFor } from './netns.js';
import type { TimelineEvent, TimelinePing } from './timeline-svg.js';
import { startTwinsec, type Twinsec, type TwinsecConnYaml } from './twinsec.js';

export const ADDR = {
  onLan: '198.18.1.0/24',
  onLanGw: '198.18.1.1',
  onLanHost: '198.18.1.10',
  cloudLan: '198.19.1.0/24',
  cloudLanGw: '198.19.1.1',
  cloudLanHost: '198.19.1.10',
  /** On-prem link 1 (primary) and its router. */
  onWan1: '192.0.2.2',
  router1: '192.0.2.1',
  /** On-prem link 2 (standby) and its router. */
  onWan2: '198.51.100.2',
  router2: '198.51.100.1',
  /** The cloud gateway's one WAN address and its router. */
  cloudWan: '203.0.113.2',
  router3: '203.0.113.1',
} as const;

export const ID = {
  on1: 'onprem-link1.example.net',
  on2: 'onprem-link2.example.net',
  cloud: 'vpn.cloud.example.net',
} as const;

export const PSK = 'twinsec-ha-lab-psk-0123456789';
export const IKE_PROPOSAL = 'aes256gcm16-prfsha256-x25519';
export const ESP_PROPOSAL = 'aes256gcm16';
/** IKEv1 has no AEAD ISAKMP cipher (and X25519 is not required of IKEv1 peers): CBC + HMAC, MODP-2048. */
export const IKE_PROPOSAL_V1 = 'aes128-sha256-modp2048';
export const ESP_PROPOSAL_V1 = 'aes256gcm16';

export type IkeVersion = 1 | 2;

/** The IKE and ESP proposal both gateways use for `version`. */
export function proposalsFor(version: IkeVersion): { ike: string; esp: string } {
  return version === 1
    ? { ike: IKE_PROPOSAL_V1, esp: ESP_PROPOSAL_V1 }
    : { ike: IKE_PROPOSAL, esp: ESP_PROPOSAL };
}

export type CutMode = 'silent' | 'carrier';

export interface HaLabOptions {
  /**
   * IKE version of all four tunnels (default 2). Each on-prem tunnel has its own local ID either way
   * (ID.on1, ID.on2), so an IKEv1 INITIAL-CONTACT for one never deletes the other's SAs.
   */
  version?: IkeVersion;
  /** Health check interval, seconds (both sides). Default 0.1. */
  interval?: number;
  /** Consecutive lost probes that mark a connection down (both sides). Default 3. */
  retries?: number;
  /** Seconds a recovered primary must stay healthy before traffic moves back. Default 3. */
  holdDown?: number;
  /** 'none': no cloud twinsec; the caller runs its own gateway in `ns.cloudGw`. Default 'twinsec'. */
  cloud?: 'twinsec' | 'none';
  logLevel?: 'trace' | 'debug' | 'info';
  /** How the on-prem tunnels start (default 'initiate'; 'listen' lets the peer decide the order). */
  onpremStart?: 'initiate' | 'listen';
  /**
   * Per-tunnel health-probe sources on the on-prem gateway (each added to its connection's local
   * subnets as a /32 and to the gateway's lo), so a peer without an echo return path still answers each
   * tunnel's probes through that tunnel. Default false: both probe from the LAN gateway address.
   */
  probeSources?: { t1: string; t2: string } | false;
  /** The on-prem route's `onAllDown`; default false: not in the config (the daemon's default, reserve). */
  onpremOnAllDown?: 'reserve' | 'revoke' | false;
  /** The on-prem gateway's `metrics.listen` (inside its namespace), e.g. '127.0.0.1:9464'; default none. */
  onpremMetrics?: string | false;
}

export interface HaNamespaces {
  onLan: string;
  onGw: string;
  router: string;
  cloudGw: string;
  cloudLan: string;
}

/** The HA part of `twinsec status --json` (the README's contract). */
export interface HaConnStatus {
  state: string;
  version?: number;
  health: 'up' | 'down' | 'unknown';
  lastRttMs: number | null;
  children: { spiIn: string; spiOut: string; bytesIn: number; bytesOut: number; packetsIn?: number }[];
}
export interface HaRouteStatus {
  destination: string;
  active: string[];
  fallback: boolean;
  switches: number;
  onAllDown?: 'reserve' | 'revoke';
  /** Withdrawn (onAllDown: revoke and no next hop usable). */
  revoked?: boolean;
  /** In the OS routing table now (`publish: true` routes). */
  published?: boolean;
}
export interface HaStatus {
  connections: Record<string, HaConnStatus>;
  routes: HaRouteStatus[];
  drops?: { esp?: Record<string, number>; ike?: Record<string, number> };
}

/** `twinsec status --json` (the CLI, a node process per call: the contract, for assertions). */
export async function haStatus(tw: Twinsec): Promise<HaStatus> {
  return (await tw.status()) as unknown as HaStatus;
}

/**
 * The same report straight from the control socket, in-process: cheap enough to poll every 100 ms
 * without starting a node process per poll (which would load the 2 CPUs the daemons' timers run on).
 */
export async function quickStatus(tw: Twinsec): Promise<HaStatus> {
  return (await call(tw.socket, 'status', undefined, { timeoutMs: 5000 })) as HaStatus;
}

/** One side's connection and route names. */
export interface Side {
  name: 'on-prem' | 'cloud';
  primary: string;
  standby: string;
  /** The route this side carries to the other LAN. */
  destination: string;
}
export const ONPREM: Side = { name: 'on-prem', primary: 't1', standby: 't2', destination: ADDR.cloudLan };
export const CLOUD: Side = { name: 'cloud', primary: 'c1', standby: 'c2', destination: ADDR.onLan };

function conn(
  o: {
    local: string;
    remote: string;
    localId: string;
    remoteId: string;
    localSubnet: string;
    remoteSubnet: string;
    start: 'initiate' | 'listen';
    probeFrom: string;
    probeTo: string;
    extraLocal?: string[];
  },
  interval: number,
  retries: number,
  version: IkeVersion,
): TwinsecConnYaml {
  const p = proposalsFor(version);
  return {
    version,
    local: o.local,
    remote: o.remote,
    localId: o.localId,
    remoteId: o.remoteId,
    psk: PSK,
    ike: { proposals: [p.ike], lifetime: 3600 },
    esp: { proposals: [p.esp], lifetime: 1800 },
    localSubnets: [o.localSubnet, ...(o.extraLocal ?? [])],
    remoteSubnets: [o.remoteSubnet],
    start: o.start,
    healthCheck: { source: o.probeFrom, destination: o.probeTo, interval, retries },
  };
}

/** The on-prem gateway's configuration: t1 over link 1 (weight 100), t2 over link 2 (weight 0). */
export function onpremConfig(o: {
  interval: number;
  retries: number;
  holdDown: number;
  logLevel: string;
  start?: 'initiate' | 'listen';
  probeSources?: { t1: string; t2: string } | false;
  version?: IkeVersion;
  onAllDown?: 'reserve' | 'revoke' | false;
  metrics?: string | false;
}) {
  const c = (local: string, localId: string, probeFrom: string | undefined) =>
    conn(
      {
        local,
        remote: ADDR.cloudWan,
        localId,
        remoteId: ID.cloud,
        localSubnet: ADDR.onLan,
        remoteSubnet: ADDR.cloudLan,
        start: o.start ?? 'initiate',
        probeFrom: probeFrom ?? ADDR.onLanGw,
        probeTo: ADDR.cloudLanGw,
        extraLocal: probeFrom ? [`${probeFrom}/32`] : [],
      },
      o.interval,
      o.retries,
      o.version ?? 2,
    );
  const ps = o.probeSources || undefined;
  return {
    log: { level: o.logLevel },
    ...(o.metrics ? { metrics: { listen: o.metrics } } : {}),
    connections: { t1: c(ADDR.onWan1, ID.on1, ps?.t1), t2: c(ADDR.onWan2, ID.on2, ps?.t2) },
    routes: [
      {
        destination: ADDR.cloudLan,
        via: [
          { connection: 't1', weight: 100 },
          { connection: 't2', weight: 0 },
        ],
        publish: true,
        holdDown: o.holdDown,
        ...(o.onAllDown ? { onAllDown: o.onAllDown } : {}),
      },
    ],
  };
}

/** The cloud gateway's configuration: one WAN address, c1 to link 1 (weight 100), c2 to link 2 (0). */
export function cloudConfig(o: {
  interval: number;
  retries: number;
  holdDown: number;
  logLevel: string;
  version?: IkeVersion;
}) {
  const c = (remote: string, remoteId: string) =>
    conn(
      {
        local: ADDR.cloudWan,
        remote,
        localId: ID.cloud,
        remoteId,
        localSubnet: ADDR.cloudLan,
        remoteSubnet: ADDR.onLan,
        start: 'listen',
        probeFrom: ADDR.cloudLanGw,
        probeTo: ADDR.onLanGw,
      },
      o.interval,
      o.retries,
      o.version ?? 2,
    );
  return {
    log: { level: o.logLevel },
    connections: { c1: c(ADDR.onWan1, ID.on1), c2: c(ADDR.onWan2, ID.on2) },
    routes: [
      {
        destination: ADDR.onLan,
        via: [
          { connection: 'c1', weight: 100 },
          { connection: 'c2', weight: 0 },
        ],
        publish: true,
        holdDown: o.holdDown,
      },
    ],
  };
}

/** Builds the five namespaces, links and routing (no daemons). */
export async function buildTopology(lab: Lab): Promise<HaNamespaces> {
  const ns: HaNamespaces = {
    onLan: await lab.addNamespace('onlan'),
    onGw: await lab.addNamespace('ongw'),
    router: await lab.addNamespace('inet'),
    cloudGw: await lab.addNamespace('cloudgw'),
    cloudLan: await lab.addNamespace('cloudlan'),
  };
  await lab.link(
    { ns: ns.onLan, ifname: 'eth0', address: `${ADDR.onLanHost}/24` },
    { ns: ns.onGw, ifname: 'lan0', address: `${ADDR.onLanGw}/24` },
  );
  await lab.link(
    { ns: ns.onGw, ifname: 'wan1', address: `${ADDR.onWan1}/24` },
    { ns: ns.router, ifname: 'r1', address: `${ADDR.router1}/24` },
  );
  await lab.link(
    { ns: ns.onGw, ifname: 'wan2', address: `${ADDR.onWan2}/24` },
    { ns: ns.router, ifname: 'r2', address: `${ADDR.router2}/24` },
  );
  await lab.link(
    { ns: ns.cloudGw, ifname: 'wan0', address: `${ADDR.cloudWan}/24` },
    { ns: ns.router, ifname: 'r3', address: `${ADDR.router3}/24` },
  );
  await lab.link(
    { ns: ns.cloudLan, ifname: 'eth0', address: `${ADDR.cloudLanHost}/24` },
    { ns: ns.cloudGw, ifname: 'lan0', address: `${ADDR.cloudLanGw}/24` },
  );
  for (const n of [ns.router, ns.onGw, ns.cloudGw]) {
    await lab.sysctl(n, 'net.ipv4.ip_forward', 1);
    // Replies to the LAN come back through the TUN; no reverse-path surprises.
    await lab.sysctl(n, 'net.ipv4.conf.all.rp_filter', 0);
    await lab.sysctl(n, 'net.ipv4.conf.default.rp_filter', 0);
  }
  // LAN hosts: default via their gateway.
  await lab.exec(ns.onLan, 'ip', ['route', 'add', 'default', 'via', ADDR.onLanGw]);
  await lab.exec(ns.cloudLan, 'ip', ['route', 'add', 'default', 'via', ADDR.cloudLanGw]);
  // On-prem: source-based routing, one table per link.
  for (const [table, src, gw, dev] of [
    ['101', ADDR.onWan1, ADDR.router1, 'wan1'],
    ['102', ADDR.onWan2, ADDR.router2, 'wan2'],
  ] as const) {
    await lab.exec(ns.onGw, 'ip', ['route', 'add', 'default', 'via', gw, 'dev', dev, 'table', table]);
    await lab.exec(ns.onGw, 'ip', ['rule', 'add', 'from', src, 'table', table, 'priority', table]);
  }
  // Cloud: one link.
  await lab.exec(ns.cloudGw, 'ip', ['route', 'add', 'default', 'via', ADDR.router3]);
  return ns;
}

/** The router's port of each on-prem link. */
const ROUTER_PORT = { 1: 'r1', 2: 'r2' } as const;
export type LinkNo = keyof typeof ROUTER_PORT;

/** Both directions of the given links in the router, inserted and removed atomically (iptables-restore). */
const iptSilent = (op: '-I' | '-D', links: readonly LinkNo[]) =>
  [
    '*filter',
    ...links.flatMap((l) => [
      `${op} FORWARD -i ${ROUTER_PORT[l]} -j DROP`,
      `${op} FORWARD -o ${ROUTER_PORT[l]} -j DROP`,
    ]),
    'COMMIT',
    '',
  ].join('\n');

export interface HaLab {
  lab: Lab;
  ns: HaNamespaces;
  onprem: Twinsec;
  /** Undefined with `cloud: 'none'`. */
  cloud: Twinsec | undefined;
  opts: HaLabOpts;
}

/** The options a lab runs with: defaults filled in, except the on-prem extras (absent: not configured). */
export type HaLabOpts = Required<Omit<HaLabOptions, 'onpremOnAllDown' | 'onpremMetrics'>> &
  Pick<HaLabOptions, 'onpremOnAllDown' | 'onpremMetrics'>;

/** The topology and both twinsec gateways (started, not yet waited for). */
export async function startHaLab(lab: Lab, options: HaLabOptions = {}): Promise<HaLab> {
  const opts: HaLabOpts = {
    version: 2,
    interval: 0.1,
    retries: 3,
    holdDown: 3,
    cloud: 'twinsec',
    logLevel: 'info',
    onpremStart: 'initiate',
    probeSources: false,
    ...options,
  };
  const ns = await buildTopology(lab);
  if (opts.probeSources) {
    await lab.loopbackAddresses(ns.onGw, `${opts.probeSources.t1}/32`, `${opts.probeSources.t2}/32`);
  }
  const cfg = {
    interval: opts.interval,
    retries: opts.retries,
    holdDown: opts.holdDown,
    logLevel: opts.logLevel,
    version: opts.version,
  };
  const cloud = opts.cloud === 'twinsec' ? await startTwinsec(lab, ns.cloudGw, cloudConfig(cfg)) : undefined;
  const onprem = await startTwinsec(
    lab,
    ns.onGw,
    onpremConfig({
      ...cfg,
      start: opts.onpremStart,
      probeSources: opts.probeSources,
      onAllDown: opts.onpremOnAllDown,
      metrics: opts.onpremMetrics,
    }),
  );
  return { lab, ns, onprem, cloud, opts };
}

/**
 * Fails the given on-prem links (silently in the router, all in one iptables-restore, or by carrier
 * loss); returns Date.now() once done.
 */
export async function cutLinks(
  lab: Lab,
  ns: HaNamespaces,
  links: readonly LinkNo[],
  mode: CutMode,
): Promise<number> {
  if (mode === 'silent') {
    await lab.exec(ns.router, 'iptables-restore', ['--noflush'], { input: iptSilent('-I', links) });
  } else {
    for (const l of links) await lab.exec(ns.router, 'ip', ['link', 'set', ROUTER_PORT[l], 'down']);
  }
  return Date.now();
}

/** Undoes cutLinks for the given links (a subset of those cut is fine); returns Date.now() once done. */
export async function repairLinks(
  lab: Lab,
  ns: HaNamespaces,
  links: readonly LinkNo[],
  mode: CutMode,
): Promise<number> {
  if (mode === 'silent') {
    await lab.exec(ns.router, 'iptables-restore', ['--noflush'], { input: iptSilent('-D', links) });
  } else {
    for (const l of links) await lab.exec(ns.router, 'ip', ['link', 'set', ROUTER_PORT[l], 'up']);
  }
  return Date.now();
}

/** Fails link 1 (silently in the router, or by carrier loss); returns Date.now() once done. */
export function cutLink1(lab: Lab, ns: HaNamespaces, mode: CutMode): Promise<number> {
  return cutLinks(lab, ns, [1], mode);
}

/** Undoes cutLink1; returns Date.now() once done. */
export function repairLink1(lab: Lab, ns: HaNamespaces, mode: CutMode): Promise<number> {
  return repairLinks(lab, ns, [1], mode);
}

/** Both tunnels established and healthy on `side`, the route on the primary. */
export function sideReady(s: HaStatus, side: Side): boolean {
  const ok = (c: string) => s.connections[c]?.state === 'established' && s.connections[c]?.health === 'up';
  const r = s.routes.find((x) => x.destination === side.destination);
  return ok(side.primary) && ok(side.standby) && r?.active.join() === side.primary;
}

/** Waits until every twinsec gateway of the lab is ready (sideReady) and a LAN ping gets through. */
export async function waitHaReady(h: HaLab, timeoutMs = 20_000): Promise<void> {
  let last = '';
  try {
    await waitFor(
      async () => {
        for (const [tw, side] of [
          [h.onprem, ONPREM],
          [h.cloud, CLOUD],
        ] as const) {
          if (!tw) continue;
          if (!tw.proc.running) throw new Error(`twinsecd (${side.name}) exited:\n${tw.log()}`);
          const s = await quickStatus(tw);
          last = `${side.name}: ${JSON.stringify(summary(s))}`;
          if (!sideReady(s, side)) return false;
        }
        return true;
      },
      timeoutMs,
      { what: 'both tunnels established and healthy', intervalMs: 200 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last ${last}`);
  }
  if (h.cloud) await waitLanPing(h);
}

/** One LAN-to-LAN ping answered (the first packets may race the route setup). */
export async function waitLanPing(h: HaLab, timeoutMs = 8000): Promise<void> {
  await waitFor(
    async () =>
      (
        await h.lab.exec(h.ns.onLan, 'ping', ['-n', '-c', '1', '-W', '1', ADDR.cloudLanHost], {
          check: false,
        })
      ).code === 0,
    timeoutMs,
    { what: `ping ${ADDR.onLanHost} -> ${ADDR.cloudLanHost}`, intervalMs: 100 },
  );
}

/** A compact view of the HA status for messages. */
export function summary(s: HaStatus): Record<string, unknown> {
  return {
    conns: Object.fromEntries(
      Object.entries(s.connections).map(([k, c]) => [k, `${c.state}/${c.health}/${c.lastRttMs?.toFixed(2)}`]),
    ),
    routes: s.routes.map(
      (r) => `${r.destination} ${r.active.join('+')}${r.fallback ? ' (fallback)' : ''} sw=${r.switches}`,
    ),
  };
}

// ---------------------------------------------------------------------------------------------------------
// ping: a background `ping -D -O` and its analysis

export interface PingRun {
  proc: LabProcess;
  intervalMs: number;
  /** Stops ping (SIGINT, so it prints its summary) and parses what it printed. */
  stop(): Promise<PingResult>;
}

/** Starts `ping -n -D -O -i INTERVAL DEST` in `ns` (100/s by default). */
export function startPing(lab: Lab, ns: string, dest: string, intervalMs = 10): PingRun {
  const proc = lab.spawn(ns, 'ping', ['-n', '-D', '-O', '-i', String(intervalMs / 1000), '-W', '2', dest]);
  return {
    proc,
    intervalMs,
    async stop() {
      await proc.stop('SIGINT', 3000);
      return parsePing(readFileSync(proc.logFile, 'utf8'), intervalMs);
    },
  };
}

export interface LostRun {
  firstSeq: number;
  lastSeq: number;
  count: number;
  /** Estimated send time (unix ms) of the first lost ping. */
  startMs: number;
  /** Send time (unix ms) of the first answered ping after the run. */
  endMs: number;
  /** endMs - startMs: how long pings went unanswered. */
  durationMs: number;
}

export interface PingResult {
  /** Highest sequence number sent (ping's own summary, else the highest seen). */
  transmitted: number;
  received: number;
  /** Sequence numbers never answered, except the trailing ones still in flight when ping stopped. */
  lost: number[];
  runs: LostRun[];
  /** Send time (unix ms) of each sequence number: recv - rtt for answered ones, interpolated otherwise. */
  sendMs: (seq: number) => number;
  /** Lost pings sent at or after `fromMs` (unix ms). */
  lostSince: (fromMs: number) => number[];
  /** RTT (ms) of each answered sequence number. */
  rtts: ReadonlyMap<number, number>;
  raw: string;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms(.*)$/;

export function parsePing(text: string, intervalMs: number): PingResult {
  const replies = new Map<number, { recvMs: number; rttMs: number }>();
  let maxSeen = 0;
  for (const line of text.split('\n')) {
    const m = REPLY.exec(line.trim());
    if (m) {
      const seq = Number(m[2]);
      if (m[4]?.includes('DUP')) continue;
      replies.set(seq, { recvMs: Number(m[1]) * 1000, rttMs: Number(m[3]) });
      maxSeen = Math.max(maxSeen, seq);
      continue;
    }
    const na = /no answer yet for icmp_seq=(\d+)/.exec(line);
    if (na) maxSeen = Math.max(maxSeen, Number(na[1]));
  }
  const tx = /(\d+) packets transmitted, (\d+) received/.exec(text);
  const transmitted = tx ? Number(tx[1]) : maxSeen;
  const answered = [...replies.keys()].sort((a, b) => a - b);
  const lastAnswered = answered.at(-1) ?? 0;
  const known = answered.map((s) => [s, replies.get(s)!.recvMs - replies.get(s)!.rttMs] as const);
  const sendMs = (seq: number): number => {
    const r = replies.get(seq);
    if (r) return r.recvMs - r.rttMs;
    if (!known.length) return Number.NaN;
    // Interpolate between the nearest answered neighbours (ping sends at a steady rate).
    let lo: readonly [number, number] | undefined;
    let hi: readonly [number, number] | undefined;
    for (const k of known) {
      if (k[0] < seq) lo = k;
      else if (k[0] > seq) {
        hi = k;
        break;
      }
    }
    if (lo && hi) return lo[1] + ((hi[1] - lo[1]) * (seq - lo[0])) / (hi[0] - lo[0]);
    if (lo) return lo[1] + (seq - lo[0]) * intervalMs;
    return hi![1] - (hi![0] - seq) * intervalMs;
  };
  const lost: number[] = [];
  for (let s = 1; s <= lastAnswered; s++) if (!replies.has(s)) lost.push(s);
  const runs: LostRun[] = [];
  for (const s of lost) {
    const r = runs.at(-1);
    if (r && r.lastSeq === s - 1) {
      r.lastSeq = s;
      r.count++;
    } else {
      runs.push({ firstSeq: s, lastSeq: s, count: 1, startMs: 0, endMs: 0, durationMs: 0 });
    }
  }
  for (const r of runs) {
    r.startMs = sendMs(r.firstSeq);
    r.endMs = sendMs(r.lastSeq + 1);
    r.durationMs = r.endMs - r.startMs;
  }
  return {
    transmitted,
    received: replies.size,
    lost,
    runs,
    sendMs,
    lostSince: (fromMs) => lost.filter((s) => sendMs(s) >= fromMs),
    rtts: new Map(answered.map((s) => [s, replies.get(s)!.rttMs])),
    raw: text,
  };
}

export function longestRun(p: PingResult): LostRun | undefined {
  return p.runs.reduce<LostRun | undefined>((a, r) => (!a || r.durationMs > a.durationMs ? r : a), undefined);
}

/** One ping's results for timeline-svg.ts: every ping up to the last answered one, a lost one's RTT null. */
export function timelinePings(p: PingResult, series: string): TimelinePing[] {
  return [...p.rtts.keys(), ...p.lost]
    .sort((a, b) => a - b)
    .map((seq) => ({ at: p.sendMs(seq), rttMs: p.rtts.get(seq) ?? null, series }));
}

/**
 * Arrival times of packets at a host, from tcpdump's own timestamps (`-tt`): measures one direction on
 * its own, e.g. echo requests reaching the far LAN while their replies are still lost.
 */
export interface Arrivals {
  proc: LabProcess;
  /** Stops tcpdump and returns the arrival times (unix ms) seen so far. */
  stop(): Promise<number[]>;
}

export async function startArrivals(lab: Lab, ns: string, ifname: string, filter: string): Promise<Arrivals> {
  const proc = lab.spawn(ns, 'tcpdump', ['-i', ifname, '-n', '-tt', '-l', '--immediate-mode', filter]);
  await waitFor(() => /listening on/.test(proc.log()) || !proc.running, 5000, { what: 'tcpdump listening' });
  const times = () =>
    proc
      .log()
      .split('\n')
      .map((l) => /^(\d+\.\d+) /.exec(l))
      .filter((m) => m !== null)
      .map((m) => Number(m[1]) * 1000);
  return {
    proc,
    async stop() {
      await proc.stop('SIGINT', 3000);
      return times();
    },
  };
}

/** The longest gap between consecutive arrivals in [from, to] (unix ms), with where it starts. */
export function longestGap(times: number[], from: number, to: number): { gapMs: number; startMs: number } {
  const xs = times.filter((x) => x >= from && x <= to).sort((a, b) => a - b);
  let best = { gapMs: 0, startMs: from };
  for (let i = 1; i < xs.length; i++) {
    if (xs[i]! - xs[i - 1]! > best.gapMs) best = { gapMs: xs[i]! - xs[i - 1]!, startMs: xs[i - 1]! };
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------
// The daemons' own account: health and route-switch events from their JSON log lines

export interface HaEvent {
  /** unix ms (pino's ISO time, millisecond precision). */
  at: number;
  side: Side['name'];
  event: 'health' | 'route-switch';
  connection?: string;
  from: string;
  to: string;
  reason: string;
  msg: string;
}

export function haEvents(tw: Twinsec, side: Side['name']): HaEvent[] {
  const out: HaEvent[] = [];
  for (const line of tw.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (j.event !== 'health' && j.event !== 'route-switch') continue;
    const names = (x: unknown) => (Array.isArray(x) ? (x.length ? x.join('+') : 'none') : String(x));
    out.push({
      at: Date.parse(String(j.time)),
      side,
      event: j.event,
      connection: typeof j.connection === 'string' ? j.connection : undefined,
      from: names(j.from),
      to: names(j.to),
      reason: String(j.reason ?? ''),
      msg: String(j.msg ?? ''),
    });
  }
  return out;
}

/** The first event matching `pred` at or after `since` (unix ms). */
export function firstEvent(events: HaEvent[], since: number, pred: (e: HaEvent) => boolean) {
  return events.find((e) => e.at >= since && pred(e));
}

/** Route switches of one side after `since`: `from -> to` strings. */
export function switchesSince(events: HaEvent[], since: number): string[] {
  return events.filter((e) => e.event === 'route-switch' && e.at >= since).map((e) => `${e.from} -> ${e.to}`);
}

/** The daemons' events for timeline-svg.ts, labelled briefly (the picture has little room; no reasons). */
export function timelineEvents(events: HaEvent[]): TimelineEvent[] {
  return events.map((e) => ({
    at: e.at,
    side: e.side,
    kind: e.event,
    label: e.event === 'health' ? `${e.connection} ${e.from} -> ${e.to}` : `route ${e.from} -> ${e.to}`,
  }));
}
