/**
 * The BGP lab (`npm run lab -- --bgp [--hold] [--svg FILE]`, or node dist/test/lab/bgp-demo.js, as root): the
 * dual-tunnel topology with route-based twinsec connections and FRR on both gateways (bgp-lab.ts): eBGP
 * over each tunnel's inside addresses with BFD 100 ms x 3, tunnel 1 preferred both ways, zebra installing
 * the learned routes through the tunnel devices. The LAN hosts ping each other at 50/s while link 1 fails
 * silently (iptables DROP in the router), then is repaired. The demo prints carrier and route changes as
 * they happen, then a timeline (ms from the cut) and a summary measured from ping's output. --svg FILE
 * also draws the timeline (timeline-svg.ts): each ping's RTT, lost pings, the cut, the repair, the
 * devices' carrier changes and the kernels' route changes.
 * Everything is removed at the end, also on failure or Ctrl-C. About a minute.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  ASN,
  type BgpLab,
  carrierEvents,
  cutLink,
  DEV,
  INSIDE,
  PING_50_PER_S_MS,
  type PingRun,
  pingRate,
  RouteWatch,
  repairLink,
  startBgpLab,
  startPing,
  waitBgpReady,
} from './bgp-lab.js';
import { frrMissing, kernelRoutes, routeDevs } from './frr.js';
import { ADDR, longestRun, type PingResult, timelinePings } from './ha-lab.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { svgArg, timelineSvg } from './timeline-svg.js';
import { twinsecUnavailable } from './twinsec.js';

/** About 50 pings a second (bgp-lab.ts). */
const PING_MS = PING_50_PER_S_MS;
const STEADY_MS = 5000;
const CUT_MS = 10_000;
const AFTER_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmtMs = (ms: number) => `${ms >= 0 ? '+' : ''}${Math.round(ms)}`.padStart(7);

interface Row {
  at: number;
  who: string;
  what: string;
}

/** Prints new carrier events (twinsec logs) and kernel route changes (RouteWatch) as they appear. */
class LiveWatch {
  #printed = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  constructor(
    readonly h: BgpLab,
    readonly watches: RouteWatch[],
    readonly t0: () => number,
  ) {}
  rows(): Row[] {
    const rows: Row[] = [];
    for (const [who, tw] of [
      ['on-prem', this.h.onprem],
      ['cloud', this.h.cloud],
    ] as const) {
      for (const e of carrierEvents(tw)) {
        rows.push({ at: e.at, who, what: `${e.name} ${e.up ? 'carrier up' : 'no carrier'} (${e.reason})` });
      }
    }
    for (const w of this.watches) {
      for (const c of w.changes.slice(1)) {
        rows.push({ at: c.at, who: w.label, what: `kernel route ${w.prefix} via ${c.devs || 'none'}` });
      }
    }
    return rows.sort((a, b) => a.at - b.at);
  }
  start(): void {
    for (const r of this.rows()) this.#printed.add(`${r.at}${r.who}${r.what}`);
    this.#timer = setInterval(() => this.poll(), 100);
  }
  poll(): void {
    for (const r of this.rows()) {
      const k = `${r.at}${r.who}${r.what}`;
      if (this.#printed.has(k)) continue;
      this.#printed.add(k);
      console.log(`  ${fmtMs(r.at - this.t0())} ms  ${r.who.padEnd(7)}  ${r.what}`);
    }
  }
  stop(): void {
    clearInterval(this.#timer);
    this.poll();
  }
}

async function showState(h: BgpLab, title: string): Promise<void> {
  console.log(`\n  state (${title}):`);
  for (const [side, frr, ns, prefix, peers] of [
    ['on-prem', h.frrOnprem, h.ns.onGw, ADDR.cloudLan, [INSIDE.t1.cloud, INSIDE.t2.cloud]],
    ['cloud', h.frrCloud, h.ns.cloudGw, ADDR.onLan, [INSIDE.t1.onprem, INSIDE.t2.onprem]],
  ] as const) {
    const s = await frr.bgpPeers();
    const bfd = await frr.bfdPeers();
    const sessions = peers
      .map((p) => `${p} ${s[p]?.state ?? '?'}/bfd ${bfd.find((b) => b.peer === p)?.status ?? '?'}`)
      .join(', ');
    const via = routeDevs(await kernelRoutes(h.lab, ns, prefix)).join('+') || 'none';
    console.log(`    ${side.padEnd(7)}  BGP ${sessions}; kernel ${prefix} via ${via}`);
  }
}

/** Waits until on-prem routes the cloud LAN via `onDev` and the cloud the on-prem LAN via `cloudDev`. */
async function waitRoutes(h: BgpLab, onDev: string, cloudDev: string, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(
      async () =>
        routeDevs(await kernelRoutes(h.lab, h.ns.onGw, ADDR.cloudLan)).join() === onDev &&
        routeDevs(await kernelRoutes(h.lab, h.ns.cloudGw, ADDR.onLan)).join() === cloudDev,
      timeoutMs,
      { intervalMs: 50 },
    );
    return true;
  } catch {
    return false;
  }
}

function diagram(): string {
  return [
    `  ${ADDR.onLanHost} --- [on-prem gw] ${ADDR.onWan1.padEnd(12)} == link 1: t1 ${DEV.t1} ${INSIDE.t1.onprem} ==\\`,
    `  (on-prem LAN)      FRR AS ${ASN.onprem}  ${ADDR.onWan2.padEnd(12)} == link 2: t2 ${DEV.t2} ${INSIDE.t2.onprem} ==[router]== ${ADDR.cloudWan} [cloud gw] --- ${ADDR.cloudLanHost}`,
    `${''.padEnd(84)}FRR AS ${ASN.cloud}        (cloud LAN)`,
    `${''.padEnd(84)}${DEV.c1} ${INSIDE.t1.cloud}, ${DEV.c2} ${INSIDE.t2.cloud}`,
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  const hold = process.argv.includes('--hold');
  const svgFile = svgArg(process.argv.slice(2), process.env.INIT_CWD ?? process.cwd());
  if (svgFile === '') {
    console.error('BGP lab: --svg needs a file name, e.g. npm run lab -- --bgp --svg /tmp/bgp.svg');
    return 2;
  }
  // Checked now rather than after a minute of lab.
  if (svgFile !== undefined && !existsSync(dirname(svgFile))) {
    console.error(`BGP lab: --svg ${svgFile}: no directory ${dirname(svgFile)}`);
    return 2;
  }
  const why = labUnavailable();
  if (why) {
    console.error(
      why.includes('root')
        ? 'BGP lab: needs root (network namespaces, veth links, TUN devices, FRR).\n  Run it as root.'
        : `BGP lab: ${why}`,
    );
    return 2;
  }
  const notBuilt = twinsecUnavailable();
  if (notBuilt) {
    console.error(`BGP lab: ${notBuilt}; build first: npm ci (or npx node-gyp rebuild && npx tsc -p .)`);
    return 2;
  }
  const noFrr = frrMissing();
  if (noFrr) {
    console.error(
      `BGP lab: ${noFrr}\n  install it without starting its service in the root namespace, e.g.\n` +
        "  printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d\n" +
        '  apt-get update && apt-get install -y frr; rm /usr/sbin/policy-rc.d',
    );
    return 2;
  }
  Lab.sweepStale();
  const lab = new Lab();
  let h: BgpLab | undefined;
  try {
    console.log('twinsec: BGP with BFD over two route-based tunnels, silent loss on link 1\n');
    console.log(diagram());
    console.log(
      `  eBGP over the inside addresses, BFD 100 ms x 3; on-prem prefers t1: local-preference 200 in,\n` +
        `  AS path ${ASN.onprem} prepended twice out over t2; twinsec health checks 0.1 s x 3 drive each device's carrier`,
    );
    console.log(`  namespaces: ${lab.id}-{onlan,ongw,inet,cloudgw,cloudlan}`);

    const started = Date.now();
    h = await startBgpLab(lab);
    console.log('\n[1] twinsec and FRR started on both gateways; waiting for tunnels, BGP and routes...');
    await waitBgpReady(h, 60_000);
    console.log(`    ready after ${Date.now() - started} ms`);
    await showState(h, 'both tunnels up');

    const watches = [
      new RouteWatch(lab, h.ns.onGw, ADDR.cloudLan, 'on-prem'),
      new RouteWatch(lab, h.ns.cloudGw, ADDR.onLan, 'cloud'),
    ];
    for (const w of watches) await w.start();
    let t0 = Number.NaN;
    const live = new LiveWatch(h, watches, () => (Number.isNaN(t0) ? Date.now() : t0));
    const pings: { dir: string; run: PingRun }[] = [
      { dir: 'to cloud', run: startPing(lab, h.ns.onLan, ADDR.cloudLanHost, PING_MS) },
      { dir: 'to on-prem', run: startPing(lab, h.ns.cloudLan, ADDR.onLanHost, PING_MS) },
    ];
    const pingStart = Date.now();
    console.log(
      `\n[2] ping -D -O -i ${PING_MS / 1000} both ways (${ADDR.onLanHost} <-> ${ADDR.cloudLanHost}); ${STEADY_MS / 1000} s steady`,
    );
    await sleep(STEADY_MS);

    live.start();
    t0 = await cutLink(lab, h.ns.router, 'r1');
    console.log('\n[3] link 1 cut: iptables -j DROP in the router, both directions (no carrier change)');
    const failedOver = await waitRoutes(h, DEV.t2, DEV.c2, 8000);
    await sleep(500);
    await showState(h, failedOver ? 'failed over to tunnel 2' : 'NOT failed over after 8 s');
    await sleep(Math.max(0, CUT_MS - (Date.now() - t0)));

    const repairedAt = await repairLink(lab, h.ns.router, 'r1');
    console.log(
      `\n[4] link 1 repaired at ${fmtMs(repairedAt - t0).trim()} ms; BFD and BGP come back over it, routes return`,
    );
    const failedBack = await waitRoutes(h, DEV.t1, DEV.c1, 30_000);
    const backAt = Date.now();
    await showState(h, failedBack ? 'back on tunnel 1' : 'NOT back on tunnel 1 after 30 s');
    console.log(`\n[5] ${AFTER_MS / 1000} s more on tunnel 1`);
    await sleep(AFTER_MS);
    live.stop();
    for (const w of watches) await w.stop();
    const results: { dir: string; p: PingResult }[] = [];
    for (const x of pings) results.push({ dir: x.dir, p: await x.run.stop() });
    const end = Date.now();

    const rows: Row[] = [
      { at: pingStart, who: 'ping', what: 'pings started, both ways' },
      { at: t0, who: 'lab', what: 'link 1 cut (silent)' },
      { at: repairedAt, who: 'lab', what: 'link 1 repaired' },
      ...live.rows().filter((r) => r.at >= t0 - 1000),
      ...results.flatMap(({ dir, p }) =>
        p.runs.flatMap((r) => [
          { at: r.startMs, who: 'ping', what: `${dir}: first lost ping sent (icmp_seq ${r.firstSeq})` },
          {
            at: r.endMs,
            who: 'ping',
            what: `${dir}: answered again (icmp_seq ${r.lastSeq + 1}): ${r.count} lost, ${Math.round(r.durationMs)} ms`,
          },
        ]),
      ),
      { at: end, who: 'ping', what: 'pings stopped' },
    ];
    console.log('\nTimeline (ms from the cut of link 1):');
    for (const r of rows.sort((a, b) => a.at - b.at))
      console.log(`  ${fmtMs(r.at - t0)}  ${r.who.padEnd(7)}  ${r.what}`);

    console.log("\nSummary (from ping -D output, the kernels' routes and twinsec's logs):");
    let worstMs = 0;
    let lateLost = 0;
    for (const { dir, p } of results) {
      const worst = longestRun(p);
      worstMs = Math.max(worstMs, worst?.durationMs ?? 0);
      const late = p.lostSince(repairedAt).length;
      lateLost += late;
      console.log(`  ping ${dir} (${pingRate(p).toFixed(0)}/s)`);
      console.log(
        `    longest outage       ${worst ? `${Math.round(worst.durationMs)} ms (${worst.count} pings, icmp_seq ${worst.firstSeq}-${worst.lastSeq})` : 'none'}`,
      );
      console.log(
        `    pings                ${p.transmitted} sent, ${p.received} answered, ${p.lost.length} lost`,
      );
      console.log(`    lost after repair    ${late} (failback)`);
    }
    const onT1 = watches[0]!.firstTo(DEV.t1, repairedAt);
    const clC1 = watches[1]!.firstTo(DEV.c1, repairedAt);
    console.log(
      `  failback             ${onT1 && clC1 ? `${Math.round(Math.max(onT1.at, clC1.at) - repairedAt)} ms after the repair (both kernels via tunnel 1)` : `not seen (waited until ${fmtMs(backAt - t0).trim()} ms)`}`,
    );
    console.log(
      process.env.TWINSEC_LAB_KEEP === '1'
        ? `\nlogs (kept): ${h.onprem.proc.logFile} ${h.cloud.proc.logFile} ${h.frrOnprem.dir} ${h.frrCloud.dir}`
        : '\nlogs are removed at exit; TWINSEC_LAB_KEEP=1 keeps them',
    );
    let svgOk = true;
    if (svgFile !== undefined) {
      const svg = timelineSvg({
        title: 'twinsec BGP lab: BFD and BGP over two route-based tunnels, silent cut on link 1',
        subtitle: `${new Date(pingStart).toISOString().slice(0, 19).replace('T', ' ')} UTC; ping both ways at ~50/s; longest outage ${Math.round(worstMs)} ms`,
        start: pingStart,
        startLabel: 'the pings started',
        pings: results.flatMap((r) => timelinePings(r.p, r.dir)),
        events: [
          { at: t0, kind: 'cut', label: 'link 1 cut (silent)' },
          { at: repairedAt, kind: 'repair', label: 'link 1 repaired' },
          // Carrier changes are twinsec's health verdicts; kernel route changes are zebra acting on BGP.
          ...live.rows().flatMap((r) =>
            r.at < t0 - 1000
              ? []
              : [
                  {
                    at: r.at,
                    side: r.who,
                    kind: r.what.startsWith('kernel route') ? ('route-switch' as const) : ('health' as const),
                    label: r.what,
                  },
                ],
          ),
        ],
      });
      try {
        writeFileSync(svgFile, svg);
        console.log(`timeline picture written to ${svgFile}`);
      } catch (e) {
        console.error(`BGP lab: could not write ${svgFile}: ${(e as Error).message}`);
        svgOk = false;
      }
    }
    if (hold) {
      console.log(`holding; namespaces ${lab.namespaces.join(' ')}; Ctrl-C to tear down`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    return failedOver && failedBack && worstMs <= 1000 && lateLost === 0 && svgOk ? 0 : 1;
  } catch (e) {
    console.error(`BGP lab: ${(e as Error).message}`);
    if (h) {
      for (const tw of [h.onprem, h.cloud]) {
        console.error(`--- ${tw.proc.logFile} (tail) ---`);
        console.error(readFileSync(tw.proc.logFile, 'utf8').split('\n').slice(-30).join('\n'));
      }
      for (const f of [h.frrOnprem, h.frrCloud]) {
        console.error(`--- FRR ${f.name} (tail) ---\n${f.log().split('\n').slice(-30).join('\n')}`);
      }
    }
    return 1;
  } finally {
    if (h) {
      await h.frrOnprem.stop();
      await h.frrCloud.stop();
    }
    await lab.cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  },
);
