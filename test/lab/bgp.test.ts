/**
 * BGP over two route-based tunnels (issue #12): the seed's dual-tunnel topology (bgp-lab.ts) with FRR
 * on both twinsec gateways: eBGP over each tunnel's inside addresses, BFD 100 ms x 3, each gateway
 * announcing its LAN, tunnel 1 preferred both ways by the on-prem side (local-preference 200 in from
 * t1, AS-path prepended twice out over t2), zebra installing the routes through the tunnel devices.
 *
 * What must hold:
 *  - both BGP sessions Established on both sides, BFD up on each at 100 ms x 3;
 *  - the cloud LAN is learned over t1 (local-preference 200) and installed in the on-prem kernel via
 *    tw-t1; the on-prem LAN is learned by the cloud over c1 with the shorter AS path and installed via
 *    tw-c1; LAN-to-LAN pings cross through tunnel 1 (its device counters);
 *  - a silent cut of link 1 (iptables DROP in the router) while the LAN pings at 50/s: both kernels
 *    move the route to tunnel 2 and traffic crosses it; the outage (longest run of lost pings, timed
 *    by ping's own send timestamps) stays within 1 s;
 *  - after the repair, BGP over tunnel 1 comes back, both routes return to tunnel 1, and no ping sent
 *    after the repair is lost (tunnel 2 carries traffic until tunnel 1's routes are installed).
 */
import t from 'tap';
import {
  BFD,
  type BgpLab,
  carrierEvents,
  countForwardedIcmp,
  cutLink,
  DEV,
  forwardedIcmp,
  INSIDE,
  outageFigures,
  PING_50_PER_S_MS,
  RouteWatch,
  repairLink,
  startBgpLab,
  startPing,
  waitBgpReady,
} from './bgp-lab.js';
import { frrUnavailable, kernelRoutes, routeDevs, waitKernelRoute } from './frr.js';
import { ADDR } from './ha-lab.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable() ?? frrUnavailable();
/** LAN ping interval: about 50/s (bgp-lab.ts). */
const PING_MS = PING_50_PER_S_MS;
/** The outage a silent cut may cause: BFD 3 x 100 ms / health checks 3 x 100 ms, plus reaction. */
const MAX_OUTAGE_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The paths of one prefix in `show bgp ipv4 unicast PREFIX json` (FRR 8). */
interface BgpPath {
  aspath?: { string?: string };
  locPrf?: number;
  bestpath?: { overall?: boolean };
  peer?: { peerId?: string };
  nexthops?: { ip?: string }[];
}

async function bgpPaths(h: BgpLab, side: 'onprem' | 'cloud', prefix: string): Promise<BgpPath[]> {
  const frr = side === 'onprem' ? h.frrOnprem : h.frrCloud;
  return (await frr.vtyshJson<{ paths?: BgpPath[] }>(`show bgp ipv4 unicast ${prefix} json`)).paths ?? [];
}

/** zebra's selected route for `prefix` (`show ip route PREFIX json`). */
interface ZebraRoute {
  protocol?: string;
  selected?: boolean;
  installed?: boolean;
  nexthops?: { ip?: string; interfaceName?: string; active?: boolean; fib?: boolean }[];
}

async function zebraSelected(h: BgpLab, side: 'onprem' | 'cloud', prefix: string) {
  const frr = side === 'onprem' ? h.frrOnprem : h.frrCloud;
  const j = await frr.vtyshJson<Record<string, ZebraRoute[]>>(`show ip route ${prefix} json`);
  return (j[prefix] ?? []).find((r) => r.selected);
}

const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);

t.test(
  'BGP with BFD over two route-based tunnels: preference, failover, failback',
  {
    skip,
    timeout: 240_000,
  },
  async (t) => {
    Lab.sweepStale();
    const lab = new Lab(t);
    const h = await startBgpLab(lab, t);
    t.teardown(() => {
      if (t.passing()) return;
      for (const [name, tw] of [
        ['on-prem', h.onprem],
        ['cloud', h.cloud],
      ] as const) {
        t.comment(`--- twinsecd ${name} (tail) ---\n${tw.log().split('\n').slice(-30).join('\n')}`);
      }
      for (const f of [h.frrOnprem, h.frrCloud]) {
        t.comment(`--- FRR ${f.name} (tail) ---\n${f.log().split('\n').slice(-40).join('\n')}`);
      }
    });
    const readyStart = Date.now();
    await waitBgpReady(h, 60_000);
    t.comment(`tunnels up, BGP Established, routes installed after ${Date.now() - readyStart} ms`);

    // --- steady state -------------------------------------------------------------------------------------
    const onPeers = await h.frrOnprem.bgpPeers();
    const clPeers = await h.frrCloud.bgpPeers();
    for (const n of [INSIDE.t1.cloud, INSIDE.t2.cloud])
      t.equal(onPeers[n]?.state, 'Established', `on-prem: ${n}`);
    for (const n of [INSIDE.t1.onprem, INSIDE.t2.onprem])
      t.equal(clPeers[n]?.state, 'Established', `cloud: ${n}`);

    for (const [frr, peers] of [
      [h.frrOnprem, [INSIDE.t1.cloud, INSIDE.t2.cloud]],
      [h.frrCloud, [INSIDE.t1.onprem, INSIDE.t2.onprem]],
    ] as const) {
      const bfd = await frr.bfdPeers();
      for (const p of peers) {
        const b = bfd.find((x) => x.peer === p);
        t.same(
          [b?.status, b?.['transmit-interval'], b?.['receive-interval'], b?.['detect-multiplier']],
          ['up', BFD.intervalMs, BFD.intervalMs, BFD.multiplier],
          `${frr.name}: BFD with ${p} up at ${BFD.intervalMs} ms x ${BFD.multiplier}`,
          { bfd },
        );
      }
    }

    // Preference: local-preference on the on-prem side, AS-path length on the cloud side.
    const onPaths = await bgpPaths(h, 'onprem', ADDR.cloudLan);
    const onBest = onPaths.find((p) => p.bestpath?.overall);
    t.same(
      [onBest?.peer?.peerId, onBest?.locPrf, onPaths.length],
      [INSIDE.t1.cloud, 200, 2],
      'on-prem: cloud LAN learned over both tunnels, best over t1 with local-preference 200',
      { onPaths },
    );
    const clPaths = await bgpPaths(h, 'cloud', ADDR.onLan);
    const clBest = clPaths.find((p) => p.bestpath?.overall);
    const pathC2 = clPaths.find((p) => p.peer?.peerId === INSIDE.t2.onprem);
    t.same(
      [clBest?.peer?.peerId, clBest?.aspath?.string, pathC2?.aspath?.string],
      [INSIDE.t1.onprem, '65001', '65001 65001 65001'],
      'cloud: on-prem LAN best over c1; the path over c2 carries the prepend',
      { clPaths },
    );

    // zebra installed them through the tunnel devices, and the kernel has them.
    const zOn = await zebraSelected(h, 'onprem', ADDR.cloudLan);
    t.same(
      [zOn?.protocol, zOn?.installed, zOn?.nexthops?.map((n) => `${n.ip}@${n.interfaceName}`)],
      ['bgp', true, [`${INSIDE.t1.cloud}@${DEV.t1}`]],
      'on-prem zebra: cloud LAN installed via tw-t1',
    );
    const zCl = await zebraSelected(h, 'cloud', ADDR.onLan);
    t.same(
      [zCl?.protocol, zCl?.installed, zCl?.nexthops?.map((n) => `${n.ip}@${n.interfaceName}`)],
      ['bgp', true, [`${INSIDE.t1.onprem}@${DEV.c1}`]],
      'cloud zebra: on-prem LAN installed via tw-c1',
    );
    t.same(
      routeDevs(await kernelRoutes(lab, h.ns.onGw, ADDR.cloudLan)),
      [DEV.t1],
      'on-prem kernel: via tw-t1',
    );
    t.same(routeDevs(await kernelRoutes(lab, h.ns.cloudGw, ADDR.onLan)), [DEV.c1], 'cloud kernel: via tw-c1');

    // LAN to LAN, both ways, through tunnel 1: the on-prem gateway forwards the pings (requests one way,
    // replies the other) out of tw-t1 and none out of tw-t2.
    await countForwardedIcmp(lab, h.ns.onGw, [DEV.t1, DEV.t2]);
    const ping5 = (ns: string, dst: string) =>
      lab.exec(ns, 'ping', ['-n', '-c', '5', '-i', '0.1', '-W', '1', dst], { check: false });
    t.equal(received((await ping5(h.ns.onLan, ADDR.cloudLanHost)).stdout), 5, 'on-prem LAN -> cloud LAN');
    t.equal(received((await ping5(h.ns.cloudLan, ADDR.onLanHost)).stdout), 5, 'cloud LAN -> on-prem LAN');
    const steady = await forwardedIcmp(lab, h.ns.onGw);
    t.same(
      [steady[DEV.t1], steady[DEV.t2]],
      [10, 0],
      'on-prem forwarded the 5 requests and 5 replies out of tw-t1, nothing out of tw-t2',
    );

    // --- silent cut of link 1 under a 50/s LAN ping ---------------------------------------------------------
    const onWatch = new RouteWatch(lab, h.ns.onGw, ADDR.cloudLan, 'on-prem');
    const clWatch = new RouteWatch(lab, h.ns.cloudGw, ADDR.onLan, 'cloud');
    await onWatch.start();
    await clWatch.start();
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, PING_MS);
    await sleep(3000);
    const beforeCut = await forwardedIcmp(lab, h.ns.onGw);
    const cutAt = await cutLink(lab, h.ns.router, 'r1');
    await waitKernelRoute(lab, h.ns.onGw, ADDR.cloudLan, DEV.t2, 5000);
    await waitKernelRoute(lab, h.ns.cloudGw, ADDR.onLan, DEV.c2, 5000);
    await sleep(3000);
    const duringCut = await forwardedIcmp(lab, h.ns.onGw);
    const viaT2 = (duringCut[DEV.t2] ?? 0) - (beforeCut[DEV.t2] ?? 0);
    // 3 s at 50/s after the switch: about 150 requests out of tw-t2 (at least 100 even at a slower rate).
    t.ok(viaT2 >= 100, `LAN traffic crossed tunnel 2 during the cut (${viaT2} pings out of tw-t2)`);
    const peersCut = await h.frrOnprem.bgpPeers();
    t.same(
      [peersCut[INSIDE.t1.cloud]?.state === 'Established', peersCut[INSIDE.t2.cloud]?.state],
      [false, 'Established'],
      'during the cut: the session over t1 is down, the one over t2 stays',
    );

    const repairAt = await repairLink(lab, h.ns.router, 'r1');
    await waitKernelRoute(lab, h.ns.onGw, ADDR.cloudLan, DEV.t1, 30_000);
    await waitKernelRoute(lab, h.ns.cloudGw, ADDR.onLan, DEV.c1, 30_000);
    // Failback is over once both kernels route through tunnel 1 again; 3 s more of traffic there.
    await sleep(3000);
    const p = await ping.stop();
    await onWatch.stop();
    await clWatch.stop();
    await h.frrOnprem.waitEstablished([INSIDE.t1.cloud, INSIDE.t2.cloud], 5000);

    // --- figures ---------------------------------------------------------------------------------------------
    const f = outageFigures(p, cutAt, repairAt);
    const rel = (x: number | undefined) => (x === undefined ? 'n/a' : `${Math.round(x - cutAt)} ms`);
    const carrier = [...carrierEvents(h.onprem), ...carrierEvents(h.cloud)].filter(
      (e) => e.at >= cutAt - 100,
    );
    const onT2 = onWatch.firstTo(DEV.t2, cutAt);
    const clC2 = clWatch.firstTo(DEV.c2, cutAt);
    const onT1 = onWatch.firstTo(DEV.t1, repairAt);
    const clC1 = clWatch.firstTo(DEV.c1, repairAt);
    t.comment(
      `ping ${ADDR.onLanHost} -> ${ADDR.cloudLanHost}: ${f.rate.toFixed(0)}/s, ${p.transmitted} sent, ${p.lost.length} lost`,
    );
    t.comment('timeline (ms from the cut of link 1):');
    const rows = [
      ...carrier.map((e) => ({
        at: e.at,
        what: `${e.name} ${e.up ? 'carrier up' : 'no carrier'} (${e.reason})`,
      })),
      { at: onT2?.at, what: `on-prem kernel: ${ADDR.cloudLan} via ${DEV.t2}` },
      { at: clC2?.at, what: `cloud kernel: ${ADDR.onLan} via ${DEV.c2}` },
      { at: repairAt, what: 'link 1 repaired' },
      { at: onT1?.at, what: `on-prem kernel: ${ADDR.cloudLan} via ${DEV.t1} again` },
      { at: clC1?.at, what: `cloud kernel: ${ADDR.onLan} via ${DEV.c1} again` },
      ...p.runs.map((r) => ({
        at: r.startMs,
        what: `pings lost for ${Math.round(r.durationMs)} ms: ${r.count} (icmp_seq ${r.firstSeq}-${r.lastSeq})`,
      })),
    ];
    for (const r of rows.sort((x, y) => (x.at ?? Infinity) - (y.at ?? Infinity)))
      t.comment(`  ${rel(r.at)}  ${r.what}`);
    t.comment(
      `outage on the cut: ${f.worst ? `${Math.round(f.worst.durationMs)} ms (${f.worst.count} pings lost x ${(1000 / f.rate).toFixed(1)} ms = ${f.countedMs} ms)` : 'none'}; ` +
        `failback: both kernels on tunnel 1 ${onT1 && clC1 ? Math.round(Math.max(onT1.at, clC1.at) - repairAt) : 'n/a'} ms after the repair, ${f.lostAfter.length} pings lost`,
    );

    t.same(f.lostBefore, [], 'no ping lost before the cut');
    t.ok(f.worst && f.worst.count > 0, 'the cut interrupted the pings (the measurement saw it)');
    t.ok(
      f.worst && f.worst.durationMs <= MAX_OUTAGE_MS,
      `outage ${Math.round(f.worst?.durationMs ?? Number.NaN)} ms <= ${MAX_OUTAGE_MS} ms`,
    );
    t.equal(f.runs.length, 1, 'one interruption: traffic stayed on tunnel 2 until the repair', {
      runs: f.runs,
    });
    t.same(f.lostAfter, [], 'failback to tunnel 1 lost no ping');
    t.ok(onT2 && clC2 && onT1 && clC1, 'both kernels moved to tunnel 2 and back to tunnel 1', {
      on: onWatch.changes,
      cloud: clWatch.changes,
    });
  },
);
