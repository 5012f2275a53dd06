/**
 * `npm run lab` (node dist/test/lab/ha-demo.js [--carrier] [--hold] [--svg FILE]), as root: the dual-tunnel
 * failover lab. Five network namespaces (ha-lab.ts): an on-prem gateway (twinsec) with two internet links,
 * a router, a cloud gateway (twinsec) with one, and a LAN host behind each gateway. Both tunnels come up with
 * health checks (every 0.1 s, 3 misses = down) and a route per side with weights 100/0. The LAN hosts ping
 * each other (ping -i 0.01) while link 1 fails silently (iptables DROP in the router; --carrier: the router's
 * link-1 port goes down), is repaired, and traffic moves back after the 3 s hold-down. The demo prints what
 * the daemons log as it happens, then a timeline (ms from the cut) and a summary measured from ping's output.
 * --svg FILE also draws the timeline (timeline-svg.ts): each ping's RTT, lost pings, the cut, the repair,
 * health changes and route switches; a relative FILE is taken from where npm was run (INIT_CWD).
 * Everything is removed at the end, also on failure or Ctrl-C. About a minute.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  ADDR,
  CLOUD,
  type CutMode,
  cutLink1,
  type HaEvent,
  type HaLab,
  type HaStatus,
  haEvents,
  longestRun,
  ONPREM,
  type PingResult,
  quickStatus,
  repairLink1,
  type Side,
  startHaLab,
  startPing,
  timelineEvents,
  timelinePings,
  waitHaReady,
} from './ha-lab.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { svgArg, timelineSvg } from './timeline-svg.js';
import { type Twinsec, twinsecUnavailable } from './twinsec.js';

const STEADY_MS = 5000;
const CUT_MS = 12_000;
const AFTER_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmtMs = (ms: number) => `${ms >= 0 ? '+' : ''}${Math.round(ms)}`.padStart(7);

/** Prints new health / route-switch log lines of both daemons as they appear (offsets from `t0()`). */
class LogWatch {
  readonly #seen = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  constructor(
    readonly daemons: [Twinsec, Side][],
    readonly t0: () => number,
  ) {}
  start(): void {
    for (const [tw, side] of this.daemons) this.#seen.set(side.name, haEvents(tw, side.name).length);
    this.#timer = setInterval(() => this.poll(), 100);
  }
  poll(): void {
    const fresh: HaEvent[] = [];
    for (const [tw, side] of this.daemons) {
      const ev = haEvents(tw, side.name);
      fresh.push(...ev.slice(this.#seen.get(side.name) ?? 0));
      this.#seen.set(side.name, ev.length);
    }
    for (const e of fresh.sort((a, b) => a.at - b.at)) {
      console.log(`  ${fmtMs(e.at - this.t0())} ms  ${e.side.padEnd(7)}  log: ${e.msg}`);
    }
  }
  stop(): void {
    clearInterval(this.#timer);
    this.poll();
  }
}

function routeLine(s: HaStatus, side: Side): string {
  const r = s.routes.find((x) => x.destination === side.destination);
  const c = (n: string) => {
    const x = s.connections[n];
    const rtt = x?.lastRttMs == null ? '' : ` ${x.lastRttMs.toFixed(2)}ms`;
    return `${n} ${x?.state ?? '?'}/${x?.health ?? '?'}${rtt}`;
  };
  const active = r ? `${r.active.join('+') || 'none'}${r.fallback ? ' (fallback: none healthy)' : ''}` : '?';
  return `${side.name.padEnd(7)}  ${c(side.primary)}, ${c(side.standby)}; route ${side.destination} -> ${active}, switches ${r?.switches ?? 0}`;
}

async function showStatus(h: HaLab, title: string): Promise<void> {
  console.log(`\n  status (${title}):`);
  for (const [tw, side] of [
    [h.onprem, ONPREM],
    [h.cloud!, CLOUD],
  ] as const) {
    console.log(`    ${routeLine(await quickStatus(tw), side)}`);
  }
}

async function waitRoutes(h: HaLab, primary: boolean, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(
      async () => {
        const a = await quickStatus(h.onprem);
        const b = await quickStatus(h.cloud!);
        const on = a.routes[0]?.active.join();
        const cl = b.routes[0]?.active.join();
        return primary ? on === 't1' && cl === 'c1' : on === 't2' && cl === 'c2';
      },
      timeoutMs,
      { intervalMs: 50 },
    );
    return true;
  } catch {
    return false;
  }
}

interface TimelineRow {
  at: number;
  who: string;
  what: string;
}

function timeline(rows: TimelineRow[], t0: number): void {
  console.log('\nTimeline (ms from the cut of link 1):');
  for (const r of rows.sort((a, b) => a.at - b.at)) {
    console.log(`  ${fmtMs(r.at - t0)}  ${r.who.padEnd(7)}  ${r.what}`);
  }
}

function eventRows(events: HaEvent[]): TimelineRow[] {
  return events.map((e) => ({
    at: e.at,
    who: e.side,
    what:
      e.event === 'health'
        ? `${e.connection} health ${e.from} -> ${e.to} (${e.reason})`
        : `route switch ${e.from} -> ${e.to} (${e.reason})`,
  }));
}

function pingRows(p: PingResult, dir: string): TimelineRow[] {
  return p.runs.flatMap((r) => [
    { at: r.startMs, who: 'ping', what: `${dir}: first lost ping sent (icmp_seq ${r.firstSeq})` },
    {
      at: r.endMs,
      who: 'ping',
      what: `${dir}: answered again (icmp_seq ${r.lastSeq + 1}): ${r.count} lost, ${Math.round(r.durationMs)} ms`,
    },
  ]);
}

/** Pings per second actually sent (iputils' -i 0.01 gives ~62/s on a 250 Hz kernel). */
function rate(p: PingResult): number {
  const last = p.sendMs(p.transmitted);
  const first = p.sendMs(1);
  return p.transmitted > 1 ? ((p.transmitted - 1) * 1000) / (last - first) : 0;
}

/** The topology, labels aligned under what they name. */
function diagram(): string {
  const l1 = `  ${ADDR.onLanHost} --- ${ADDR.onLanGw} [on-prem gw] ${ADDR.onWan1.padEnd(12)} == link 1: t1, weight 100 ==\\`;
  const wan2At = l1.indexOf(ADDR.onWan1);
  const l2 =
    '  (on-prem LAN)'.padEnd(l1.indexOf('[on-prem gw]') + 1) +
    '(twinsec)'.padEnd(wan2At - l1.indexOf('[on-prem gw]') - 1) +
    `${ADDR.onWan2} == link 2: t2, weight 0 ====[router]== ${ADDR.cloudWan} [cloud gw] ${ADDR.cloudLanGw} --- ${ADDR.cloudLanHost}`;
  const l3 =
    ''.padEnd(l2.indexOf('[cloud gw]') + 1) +
    '(twinsec)'.padEnd(l2.indexOf(ADDR.cloudLanHost) - l2.indexOf('[cloud gw]') - 1) +
    '(cloud LAN)';
  return [l1, l2, l3, ''].join('\n');
}

async function main(): Promise<number> {
  const mode: CutMode = process.argv.includes('--carrier') ? 'carrier' : 'silent';
  const hold = process.argv.includes('--hold');
  const svgFile = svgArg(process.argv.slice(2), process.env.INIT_CWD ?? process.cwd());
  if (svgFile === '') {
    console.error('npm run lab: --svg needs a file name, e.g. npm run lab -- --svg /tmp/lab.svg');
    return 2;
  }
  // Checked now rather than after a minute of lab.
  if (svgFile !== undefined && !existsSync(dirname(svgFile))) {
    console.error(`npm run lab: --svg ${svgFile}: no directory ${dirname(svgFile)}`);
    return 2;
  }
  const why = labUnavailable();
  if (why) {
    const root = why.includes('root');
    console.error(
      root
        ? 'npm run lab: needs root (it creates network namespaces, veth links and TUN devices).\n' +
            '  Run it as root, e.g.: sudo npm run lab'
        : `npm run lab: ${why}`,
    );
    return 2;
  }
  const notBuilt = twinsecUnavailable();
  if (notBuilt) {
    console.error(`npm run lab: ${notBuilt}; build first: npx node-gyp rebuild && npx tsc -p .`);
    return 2;
  }
  for (const tool of ['/usr/sbin/iptables', '/usr/bin/ping']) {
    if (!existsSync(tool) && !existsSync(tool.replace('/usr', ''))) {
      console.error(`npm run lab: ${tool} is missing (apt-get install iptables iputils-ping)`);
      return 2;
    }
  }
  Lab.sweepStale();
  const lab = new Lab();
  let h: HaLab | undefined;
  try {
    console.log(
      `twinsec dual-tunnel failover lab (${mode === 'silent' ? 'silent loss' : 'carrier loss'} on link 1)\n`,
    );
    console.log(diagram());
    console.log(
      '  health checks every 0.1 s through each tunnel, 3 lost = down; back to link 1 after 3 s of health',
    );
    console.log(`  namespaces: ${lab.id}-{onlan,ongw,inet,cloudgw,cloudlan}`);

    const started = Date.now();
    h = await startHaLab(lab, { interval: 0.1, retries: 3, holdDown: 3 });
    console.log(
      '\n[1] both gateways started; waiting for both tunnels to come up and answer health probes...',
    );
    await waitHaReady(h, 25_000);
    console.log(`    ready after ${Date.now() - started} ms`);
    await showStatus(h, 'both tunnels up');

    let t0 = Number.NaN;
    const watch = new LogWatch(
      [
        [h.onprem, ONPREM],
        [h.cloud!, CLOUD],
      ],
      () => (Number.isNaN(t0) ? Date.now() : t0),
    );
    // Both ways: an echo reply leaves through the tunnel its request came in on, so each ping measures
    // the failover of the pinging side's gateway.
    const pings = [
      { dir: 'to cloud', run: startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 10) },
      { dir: 'to on-prem', run: startPing(lab, h.ns.cloudLan, ADDR.onLanHost, 10) },
    ];
    const pingStart = Date.now();
    console.log(
      `\n[2] ping -D -O -i 0.01 both ways: ${ADDR.onLanHost} -> ${ADDR.cloudLanHost} and ${ADDR.cloudLanHost} -> ${ADDR.onLanHost}; ${STEADY_MS / 1000} s steady`,
    );
    await sleep(STEADY_MS);

    watch.start();
    t0 = await cutLink1(lab, h.ns, mode);
    console.log(
      `\n[3] link 1 cut: ${mode === 'silent' ? 'iptables -j DROP in the router, both directions (no carrier change)' : "ip link set r1 down in the router (on-prem's wan1 loses carrier)"}`,
    );
    const failedOver = await waitRoutes(h, false, 8000);
    await sleep(500);
    await showStatus(h, failedOver ? 'failed over' : 'NOT failed over after 8 s');
    await sleep(Math.max(0, CUT_MS - (Date.now() - t0)));

    const repairedAt = await repairLink1(lab, h.ns, mode);
    console.log(
      `\n[4] link 1 repaired at ${fmtMs(repairedAt - t0).trim()} ms; traffic returns after 3 s of health (hold-down)`,
    );
    const failedBack = await waitRoutes(h, true, 10_000);
    await showStatus(h, failedBack ? 'failed back' : 'NOT failed back after 10 s');
    console.log(`\n[5] ${AFTER_MS / 1000} s more on the primary`);
    await sleep(AFTER_MS);
    watch.stop();
    const results: { dir: string; p: PingResult }[] = [];
    for (const x of pings) results.push({ dir: x.dir, p: await x.run.stop() });
    const end = Date.now();

    const evOn = haEvents(h.onprem, 'on-prem').filter((e) => e.at >= t0 - 1000);
    const evCl = haEvents(h.cloud!, 'cloud').filter((e) => e.at >= t0 - 1000);
    timeline(
      [
        { at: pingStart, who: 'ping', what: 'pings started, both ways' },
        { at: t0, who: 'lab', what: `link 1 cut (${mode})` },
        { at: repairedAt, who: 'lab', what: 'link 1 repaired' },
        ...eventRows(evOn),
        ...eventRows(evCl),
        ...results.flatMap((r) => pingRows(r.p, r.dir)),
        { at: end, who: 'ping', what: 'pings stopped' },
      ],
      t0,
    );

    const primaryUp = [...evOn, ...evCl].filter(
      (e) =>
        e.event === 'health' &&
        e.to === 'up' &&
        (e.connection === 't1' || e.connection === 'c1') &&
        e.at > t0,
    );
    const healthyAgain = primaryUp.length ? Math.min(...primaryUp.map((e) => e.at)) : Number.NaN;
    const sw = (ev: HaEvent[]) =>
      ev.filter((e) => e.event === 'route-switch').map((e) => `${e.from} -> ${e.to}`);
    console.log("\nSummary (from ping -D output and the daemons' logs):");
    let worstMs = 0;
    for (const { dir, p } of results) {
      const worst = longestRun(p);
      worstMs = Math.max(worstMs, worst?.durationMs ?? 0);
      const late = Number.isNaN(healthyAgain) ? 'n/a' : String(p.lostSince(healthyAgain).length);
      console.log(`  ping ${dir} (${rate(p).toFixed(0)}/s)`);
      console.log(
        `    longest outage      ${worst ? `${Math.round(worst.durationMs)} ms (${worst.count} pings, icmp_seq ${worst.firstSeq}-${worst.lastSeq})` : 'none'}`,
      );
      console.log(
        `    pings               ${p.transmitted} sent, ${p.received} answered, ${p.lost.length} lost`,
      );
      console.log(`    lost after failback ${late} (sent after the primary was healthy again)`);
    }
    console.log(`  switches on-prem    ${sw(evOn).length}: ${sw(evOn).join(', ') || '-'}`);
    console.log(`  switches cloud      ${sw(evCl).length}: ${sw(evCl).join(', ') || '-'}`);
    const ok = failedOver && failedBack && worstMs <= 500;
    if (!failedOver || !failedBack) {
      console.log(
        "\n  note: a silent cut can leave BOTH tunnels looking down when a gateway answers the standby's probes\n" +
          '  through its (dead) primary; then each side keeps the highest weight (fallback) until the repair.',
      );
    }
    console.log(
      process.env.TWINSEC_LAB_KEEP === '1'
        ? `\ndaemon logs (kept): ${h.onprem.proc.logFile} ${h.cloud!.proc.logFile}`
        : '\ndaemon logs are removed at exit; TWINSEC_LAB_KEEP=1 npm run lab keeps them',
    );
    let svgOk = true;
    if (svgFile !== undefined) {
      const svg = timelineSvg({
        title: `twinsec dual-tunnel failover lab: ${mode === 'silent' ? 'silent cut' : 'carrier loss'} on link 1`,
        subtitle: `${new Date(pingStart).toISOString().slice(0, 19).replace('T', ' ')} UTC; ping -i 0.01 both ways; longest outage ${Math.round(worstMs)} ms`,
        start: pingStart,
        startLabel: 'the pings started',
        pings: results.flatMap((r) => timelinePings(r.p, r.dir)),
        events: [
          { at: t0, kind: 'cut', label: `link 1 cut (${mode})` },
          { at: repairedAt, kind: 'repair', label: 'link 1 repaired' },
          ...timelineEvents([...evOn, ...evCl]),
        ],
      });
      try {
        writeFileSync(svgFile, svg);
        console.log(`timeline picture written to ${svgFile}`);
      } catch (e) {
        console.error(`npm run lab: could not write ${svgFile}: ${(e as Error).message}`);
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
    return ok && svgOk ? 0 : 1;
  } catch (e) {
    console.error(`lab: ${(e as Error).message}`);
    if (h) {
      for (const tw of [h.onprem, h.cloud]) {
        if (!tw) continue;
        console.error(`--- ${tw.proc.logFile} (tail) ---`);
        console.error(readFileSync(tw.proc.logFile, 'utf8').split('\n').slice(-30).join('\n'));
      }
    }
    return 1;
  } finally {
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
