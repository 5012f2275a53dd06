/**
 * Scale-out with BGP (issue #12): two on-prem twinsec gateways, each with its own link and ONE
 * route-based tunnel to the cloud twinsec (which has two connections, c1 to gw1 and c2 to gw2), FRR
 * on all of them. Losing a whole gateway (kill -9 of its twinsecd) or its link moves traffic to the
 * other gateway through BGP and BFD.
 *
 *   [lan] lo 198.18.1.10/24 (the on-prem LAN)
 *     eth1 198.18.0.2/30 ── lan0 198.18.0.1/30 [gw1] twinsec t1 tw-t1 169.254.10.2 ── wan 192.0.2.2 ──── r1 ┐
 *     eth2 198.18.0.6/30 ── lan0 198.18.0.5/30 [gw2] twinsec t2 tw-t2 169.254.20.2 ── wan 198.51.100.2 ── r2 ├ [inet]
 *   [cloudlan] 198.19.1.10 ── 198.19.1.1 [cloudgw] twinsec c1 tw-c1 169.254.10.1, c2 tw-c2 169.254.20.1 ─ r3 ┘
 *
 * The LAN side, kept simple: the LAN host is its own router with one link to each gateway (no bridge,
 * no VRRP) and runs FRR too (AS 65010, eBGP + BFD to both gateways, local-preference 200 for what gw1
 * announces). That is the part a static route cannot do: gw1 without its tunnel (its twinsecd killed,
 * its link cut) is still a live router on the LAN, so only a routing protocol tells the LAN to use gw2.
 * Both gateways (AS 65001) announce the on-prem LAN to the cloud (a static route to the LAN router plus
 * `network`), gw2 with its AS path prepended twice so the cloud prefers gw1; the cloud's FRR is the
 * plain one of the dual-tunnel lab. Neither gateway has a default route: LAN traffic without a route
 * through a tunnel is dropped, not sent in clear over the WAN. No `bgp suppress-fib-pending` on the
 * gateways: with it, gw1's withdrawal towards the LAN router after its twinsecd was killed came
 * 0.8-1.1 s late in 3 of 4 runs (the kernel flushes the routes of a vanished device itself, and the
 * withdrawal waited on zebra), against ~160 ms without it; failback lost no ping either way.
 *
 * What must hold, for gateway loss (kill -9 of gw1's twinsecd: its tunnel device vanishes, zebra sees
 * the interface go) and for a silent cut of gw1's link (iptables DROP in the router): with the LAN
 * pinging the cloud LAN at 50/s, both the LAN router and the cloud move to gw2 within 1 s (longest
 * run of lost pings, timed by ping's own send timestamps); after gw1 is restarted / its link repaired,
 * traffic returns to gw1 and no ping sent after that moment is lost.
 */
import t, { type Test } from 'tap';
import {
  ASN,
  BFD,
  carrierEvents,
  cloudFrrConfig,
  cloudTwinsecConfig,
  countForwardedIcmp,
  cutLink,
  DEV,
  forwardedIcmp,
  frrConfig,
  INSIDE,
  onpremTwinsecConfig,
  outageFigures,
  PING_50_PER_S_MS,
  RouteWatch,
  repairLink,
  startPing,
  waitCarrier,
  waitPing,
} from './bgp-lab.js';
import { Frr, frrUnavailable, waitKernelRoute } from './frr.js';
import { ADDR } from './ha-lab.js';
import { Lab, labUnavailable } from './netns.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable() ?? frrUnavailable();
/** LAN ping interval: about 50/s (bgp-lab.ts). */
const PING_MS = PING_50_PER_S_MS;
const MAX_OUTAGE_MS = 1000;
const LAN_HOST = ADDR.onLanHost;

/** LAN router <-> gateway links (/30 each). */
const LANLINK = {
  gw1: { gw: '198.18.0.1', lan: '198.18.0.2' },
  gw2: { gw: '198.18.0.5', lan: '198.18.0.6' },
} as const;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface ScaleOut {
  lab: Lab;
  ns: { lan: string; gw1: string; gw2: string; inet: string; cloudGw: string; cloudLan: string };
  gw1: Twinsec;
  gw2: Twinsec;
  cloud: Twinsec;
  gw1Config: TwinsecConfigYaml;
  frr: { lan: Frr; gw1: Frr; gw2: Frr; cloud: Frr };
}

/** gw1 or gw2: AS 65001, its tunnel to the cloud and its LAN link, both with BFD 100 ms x 3. */
function gatewayFrrConfig(gw: 'gw1' | 'gw2'): string {
  const tunnel = gw === 'gw1' ? INSIDE.t1 : INSIDE.t2;
  return frrConfig({
    hostname: gw,
    asn: ASN.onprem,
    routerId: LANLINK[gw].gw,
    bfdProfiles: { fast: { intervalMs: BFD.intervalMs, multiplier: BFD.multiplier } },
    staticRoutes: [`${ADDR.onLan} ${LANLINK[gw].lan}`],
    neighbors: [
      {
        address: tunnel.cloud,
        remoteAs: ASN.cloud,
        description: 'cloud',
        bfdProfile: 'fast',
        ...(gw === 'gw2' ? { routeMapOut: 'PREPEND' } : {}),
      },
      { address: LANLINK[gw].lan, remoteAs: ASN.lan, description: 'lan', bfdProfile: 'fast' },
    ],
    networks: [ADDR.onLan],
    ...(gw === 'gw2' ? { routeMaps: { PREPEND: `as-path prepend ${ASN.onprem} ${ASN.onprem}` } } : {}),
  });
}

/** The LAN router: learns the cloud LAN from both gateways, prefers gw1. */
function lanFrrConfig(): string {
  return frrConfig({
    hostname: 'lan',
    asn: ASN.lan,
    routerId: LAN_HOST,
    bfdProfiles: { fast: { intervalMs: BFD.intervalMs, multiplier: BFD.multiplier } },
    neighbors: [
      {
        address: LANLINK.gw1.gw,
        remoteAs: ASN.onprem,
        description: 'gw1',
        bfdProfile: 'fast',
        routeMapIn: 'PREFER-GW1',
      },
      { address: LANLINK.gw2.gw, remoteAs: ASN.onprem, description: 'gw2', bfdProfile: 'fast' },
    ],
    networks: [],
    routeMaps: { 'PREFER-GW1': 'local-preference 200' },
  });
}

async function buildScaleOut(lab: Lab, tt: Test): Promise<ScaleOut> {
  const ns = {
    lan: await lab.addNamespace('lan'),
    gw1: await lab.addNamespace('gw1'),
    gw2: await lab.addNamespace('gw2'),
    inet: await lab.addNamespace('inet'),
    cloudGw: await lab.addNamespace('cloudgw'),
    cloudLan: await lab.addNamespace('cloudlan'),
  };
  // The LAN's prefix on the LAN router's lo: a connected 198.18.1.0/24 there, so the LAN router never
  // installs the gateways' announcement of its own LAN.
  await lab.loopbackAddresses(ns.lan, `${LAN_HOST}/24`);
  await lab.link(
    { ns: ns.lan, ifname: 'eth1', address: `${LANLINK.gw1.lan}/30` },
    { ns: ns.gw1, ifname: 'lan0', address: `${LANLINK.gw1.gw}/30` },
  );
  await lab.link(
    { ns: ns.lan, ifname: 'eth2', address: `${LANLINK.gw2.lan}/30` },
    { ns: ns.gw2, ifname: 'lan0', address: `${LANLINK.gw2.gw}/30` },
  );
  await lab.link(
    { ns: ns.gw1, ifname: 'wan', address: `${ADDR.onWan1}/24` },
    { ns: ns.inet, ifname: 'r1', address: `${ADDR.router1}/24` },
  );
  await lab.link(
    { ns: ns.gw2, ifname: 'wan', address: `${ADDR.onWan2}/24` },
    { ns: ns.inet, ifname: 'r2', address: `${ADDR.router2}/24` },
  );
  await lab.link(
    { ns: ns.cloudGw, ifname: 'wan0', address: `${ADDR.cloudWan}/24` },
    { ns: ns.inet, ifname: 'r3', address: `${ADDR.router3}/24` },
  );
  await lab.link(
    { ns: ns.cloudLan, ifname: 'eth0', address: `${ADDR.cloudLanHost}/24` },
    { ns: ns.cloudGw, ifname: 'lan0', address: `${ADDR.cloudLanGw}/24` },
  );
  for (const n of [ns.lan, ns.gw1, ns.gw2, ns.inet, ns.cloudGw]) {
    await lab.sysctl(n, 'net.ipv4.ip_forward', 1);
    // Replies may come back through the other gateway than the requests left by (each side switches
    // on its own): no reverse-path filtering.
    await lab.sysctl(n, 'net.ipv4.conf.all.rp_filter', 0);
    await lab.sysctl(n, 'net.ipv4.conf.default.rp_filter', 0);
  }
  // WAN routes to the peer gateways' public addresses only (no default route anywhere).
  await lab.exec(ns.gw1, 'ip', ['route', 'add', '203.0.113.0/24', 'via', ADDR.router1]);
  await lab.exec(ns.gw2, 'ip', ['route', 'add', '203.0.113.0/24', 'via', ADDR.router2]);
  for (const net of ['192.0.2.0/24', '198.51.100.0/24']) {
    await lab.exec(ns.cloudGw, 'ip', ['route', 'add', net, 'via', ADDR.router3]);
  }
  await lab.exec(ns.cloudLan, 'ip', ['route', 'add', 'default', 'via', ADDR.cloudLanGw]);

  // twinsec: the dual-tunnel lab's configurations split over two gateways (same addresses and IDs).
  const onprem = onpremTwinsecConfig();
  const gw1Config: TwinsecConfigYaml = { ...onprem, connections: { t1: onprem.connections.t1! } };
  const gw2Config: TwinsecConfigYaml = { ...onprem, connections: { t2: onprem.connections.t2! } };
  const cloud = await startTwinsec(lab, ns.cloudGw, cloudTwinsecConfig());
  const gw1 = await startTwinsec(lab, ns.gw1, gw1Config);
  const gw2 = await startTwinsec(lab, ns.gw2, gw2Config);
  const gwDaemons = ['zebra', 'staticd', 'bfdd', 'bgpd'] as const;
  const frr = {
    cloud: await Frr.start(lab, ns.cloudGw, cloudFrrConfig(), { t: tt, name: 'cloud' }),
    gw1: await Frr.start(lab, ns.gw1, gatewayFrrConfig('gw1'), {
      t: tt,
      name: 'gw1',
      daemons: [...gwDaemons],
    }),
    gw2: await Frr.start(lab, ns.gw2, gatewayFrrConfig('gw2'), {
      t: tt,
      name: 'gw2',
      daemons: [...gwDaemons],
    }),
    lan: await Frr.start(lab, ns.lan, lanFrrConfig(), { t: tt, name: 'lan' }),
  };
  return { lab, ns, gw1, gw2, cloud, gw1Config, frr };
}

/** Everything up, traffic on gw1 both ways. */
async function waitReady(s: ScaleOut, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  await waitCarrier(s.gw1, ['t1'], left());
  await waitCarrier(s.gw2, ['t2'], left());
  await waitCarrier(s.cloud, ['c1', 'c2'], left());
  await s.frr.gw1.waitEstablished([INSIDE.t1.cloud, LANLINK.gw1.lan], left());
  await s.frr.gw2.waitEstablished([INSIDE.t2.cloud, LANLINK.gw2.lan], left());
  await s.frr.cloud.waitEstablished([INSIDE.t1.onprem, INSIDE.t2.onprem], left());
  await s.frr.lan.waitEstablished([LANLINK.gw1.gw, LANLINK.gw2.gw], left());
  await s.frr.cloud.waitBfdUp([INSIDE.t1.onprem, INSIDE.t2.onprem], left());
  await s.frr.lan.waitBfdUp([LANLINK.gw1.gw, LANLINK.gw2.gw], left());
  await waitKernelRoute(s.lab, s.ns.lan, ADDR.cloudLan, 'eth1', left());
  await waitKernelRoute(s.lab, s.ns.cloudGw, ADDR.onLan, DEV.c1, left());
  await waitPing(s.lab, s.ns.lan, ADDR.cloudLanHost, left(), LAN_HOST);
}

interface Figures {
  outageMs: number;
  outagePings: number;
  failbackMs: number;
  failbackLost: number;
}

/**
 * Pings the cloud LAN from the LAN at 50/s, runs `fail` (returns its time), waits for both sides to be
 * on gw2, runs `recover` (returns its time), waits for both sides to be back on gw1; asserts and returns
 * the figures.
 */
async function failAndRecover(
  tt: Test,
  s: ScaleOut,
  what: string,
  fail: () => Promise<number>,
  recover: () => Promise<number>,
): Promise<Figures> {
  const lanWatch = new RouteWatch(s.lab, s.ns.lan, ADDR.cloudLan, 'lan');
  const clWatch = new RouteWatch(s.lab, s.ns.cloudGw, ADDR.onLan, 'cloud');
  await lanWatch.start();
  await clWatch.start();
  const ping = startPing(s.lab, s.ns.lan, ADDR.cloudLanHost, PING_MS, LAN_HOST);
  await sleep(3000);
  const before = await forwardedIcmp(s.lab, s.ns.gw2);
  const failAt = await fail();
  await waitKernelRoute(s.lab, s.ns.lan, ADDR.cloudLan, 'eth2', 5000);
  await waitKernelRoute(s.lab, s.ns.cloudGw, ADDR.onLan, DEV.c2, 5000);
  await sleep(3000);
  const during = await forwardedIcmp(s.lab, s.ns.gw2);
  const viaGw2 = (during[DEV.t2] ?? 0) - (before[DEV.t2] ?? 0);
  tt.ok(viaGw2 >= 100, `${what}: LAN traffic crossed gw2's tunnel (${viaGw2} pings out of its tw-t2)`);

  const recoverAt = await recover();
  await waitKernelRoute(s.lab, s.ns.lan, ADDR.cloudLan, 'eth1', 40_000);
  await waitKernelRoute(s.lab, s.ns.cloudGw, ADDR.onLan, DEV.c1, 40_000);
  await sleep(3000);
  const p = await ping.stop();
  await lanWatch.stop();
  await clWatch.stop();

  const f = outageFigures(p, failAt, recoverAt);
  const rel = (x: number | undefined) => (x === undefined ? 'n/a' : `${Math.round(x - failAt)} ms`);
  const lanGw2 = lanWatch.firstTo('eth2', failAt);
  const clC2 = clWatch.firstTo(DEV.c2, failAt);
  const lanGw1 = lanWatch.firstTo('eth1', recoverAt);
  const clC1 = clWatch.firstTo(DEV.c1, recoverAt);
  const carrier = carrierEvents(s.cloud).filter((e) => e.at >= failAt - 100);
  const recovery = what === 'gateway loss' ? "gw1's twinsecd restarted" : "gw1's link repaired";
  tt.comment(
    `${what}: ping ${LAN_HOST} -> ${ADDR.cloudLanHost} ${f.rate.toFixed(0)}/s, ${p.transmitted} sent, ${p.lost.length} lost`,
  );
  tt.comment(`timeline (ms from the ${what}):`);
  const rows = [
    ...carrier.map((e) => ({
      at: e.at,
      what: `cloud ${e.name} ${e.up ? 'carrier up' : 'no carrier'} (${e.reason})`,
    })),
    { at: lanGw2?.at, what: `LAN router: ${ADDR.cloudLan} via gw2` },
    { at: clC2?.at, what: `cloud: ${ADDR.onLan} via ${DEV.c2} (gw2)` },
    { at: recoverAt, what: recovery },
    { at: lanGw1?.at, what: 'LAN router: via gw1 again' },
    { at: clC1?.at, what: `cloud: via ${DEV.c1} (gw1) again` },
    ...p.runs.map((r) => ({
      at: r.startMs,
      what: `pings lost for ${Math.round(r.durationMs)} ms: ${r.count} (icmp_seq ${r.firstSeq}-${r.lastSeq})`,
    })),
  ];
  for (const r of rows.sort((x, y) => (x.at ?? Infinity) - (y.at ?? Infinity)))
    tt.comment(`  ${rel(r.at)}  ${r.what}`);
  const figures: Figures = {
    outageMs: Math.round(f.worst?.durationMs ?? 0),
    outagePings: f.worst?.count ?? 0,
    failbackMs: lanGw1 && clC1 ? Math.round(Math.max(lanGw1.at, clC1.at) - recoverAt) : Number.NaN,
    failbackLost: f.lostAfter.length,
  };
  tt.comment(
    `${what}: outage ${figures.outageMs} ms (${figures.outagePings} pings lost x ${(1000 / f.rate).toFixed(1)} ms = ${f.countedMs} ms); ` +
      `failback: both sides on gw1 ${figures.failbackMs} ms after ${recovery}, ${figures.failbackLost} pings lost`,
  );

  tt.same(f.lostBefore, [], `${what}: no ping lost before`);
  tt.ok(figures.outagePings > 0, `${what}: the failure interrupted the pings (the measurement saw it)`);
  tt.ok(
    f.worst && f.worst.durationMs <= MAX_OUTAGE_MS,
    `${what}: outage ${figures.outageMs} ms <= ${MAX_OUTAGE_MS} ms`,
  );
  tt.equal(f.runs.length, 1, `${what}: one interruption, then gw2 carried the traffic`, { runs: f.runs });
  tt.same(f.lostAfter, [], `${what}: failback to gw1 lost no ping`);
  tt.ok(lanGw2 && clC2 && lanGw1 && clC1, `${what}: both sides moved to gw2 and back to gw1`, {
    lan: lanWatch.changes,
    cloud: clWatch.changes,
  });
  return figures;
}

t.test(
  'BGP scale-out: two on-prem gateways, gateway loss and link loss',
  { skip, timeout: 300_000 },
  async (t) => {
    Lab.sweepStale();
    const lab = new Lab(t);
    const s = await buildScaleOut(lab, t);
    t.teardown(() => {
      if (t.passing()) return;
      for (const [name, tw] of [
        ['gw1', s.gw1],
        ['gw2', s.gw2],
        ['cloud', s.cloud],
      ] as const) {
        t.comment(`--- twinsecd ${name} (tail) ---\n${tw.log().split('\n').slice(-25).join('\n')}`);
      }
      for (const f of Object.values(s.frr)) {
        t.comment(`--- FRR ${f.name} (tail) ---\n${f.log().split('\n').slice(-30).join('\n')}`);
      }
    });
    const started = Date.now();
    await waitReady(s, 60_000);
    t.comment(`all tunnels up, 8 BGP sessions Established, traffic on gw1 after ${Date.now() - started} ms`);
    await countForwardedIcmp(lab, s.ns.gw2, [DEV.t2]);

    // Preference: the LAN router picks gw1 (local-preference), the cloud picks gw1 (gw2's prepend).
    const lanPaths =
      (
        await s.frr.lan.vtyshJson<{
          paths?: { locPrf?: number; bestpath?: { overall?: boolean }; peer?: { peerId?: string } }[];
        }>(`show bgp ipv4 unicast ${ADDR.cloudLan} json`)
      ).paths ?? [];
    const lanBest = lanPaths.find((p) => p.bestpath?.overall);
    t.same(
      [lanBest?.peer?.peerId, lanBest?.locPrf, lanPaths.length],
      [LANLINK.gw1.gw, 200, 2],
      'LAN router: cloud LAN from both gateways, best from gw1',
    );

    const loss = await failAndRecover(
      t,
      s,
      'gateway loss',
      async () => {
        // kill -9: no DELETE to the cloud, the TUN device vanishes with the process.
        const at = Date.now();
        s.gw1.proc.child.kill('SIGKILL');
        await s.gw1.proc.exited;
        return at;
      },
      async () => {
        const at = Date.now();
        s.gw1 = await startTwinsec(lab, s.ns.gw1, s.gw1Config);
        return at;
      },
    );
    await waitReady(s, 60_000);
    const cut = await failAndRecover(
      t,
      s,
      'link cut',
      () => cutLink(lab, s.ns.inet, 'r1'),
      () => repairLink(lab, s.ns.inet, 'r1'),
    );
    t.comment(
      `figures: gateway loss ${loss.outageMs} ms outage, failback ${loss.failbackLost} lost; ` +
        `link cut ${cut.outageMs} ms outage, failback ${cut.failbackLost} lost`,
    );
  },
);
