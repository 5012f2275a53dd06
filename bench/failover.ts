/**
 * Failover time against health-check settings (`npm run bench:failover`, needs root; a script, not a test).
 *
 *   node dist/bench/failover.js [--intervals 0.1,0.5,1,3] [--retries 3] [--runs 1]
 *
 * For each interval: a fresh dual-tunnel lab (test/lab/ha-lab.ts: on-prem twinsec with two links, a router,
 * cloud twinsec, a LAN host behind each), both tunnels healthy, the LAN hosts pinging each other
 * (`ping -D -O -i 0.01`), then link 1 is cut silently (iptables DROP in the router, both directions) and
 * held cut until both gateways have moved to the standby and traffic flows again. The outage is the longest
 * run of unanswered pings in either direction, from ping's own timestamps (an echo reply leaves through
 * the tunnel its request came in on, so each direction measures the pinging side's gateway). Detection is
 * when each daemon logged its primary down, from its JSON log.
 *
 * Expected: a probe goes out every interval; the first one sent after the cut is the first lost, counted
 * lost when the next one is due; `retries` of them mark the primary down. So a side detects the cut
 * `interval x retries` after it plus the wait for its next probe (0 .. 1 interval), and the LAN-to-LAN
 * outage is the slower side's: between interval x retries and interval x (retries + 1).
 */
import { parseArgs } from 'node:util';
import {
  ADDR,
  CLOUD,
  cutLink1,
  type HaLab,
  haEvents,
  longestRun,
  ONPREM,
  quickStatus,
  repairLink1,
  type Side,
  startHaLab,
  startPing,
  waitHaReady,
} from '../test/lab/ha-lab.js';
import { Lab, labUnavailable, waitFor } from '../test/lab/netns.js';
import { type Twinsec, twinsecUnavailable } from '../test/lab/twinsec.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Row {
  interval: number;
  retries: number;
  run: number;
  /** Longest run of lost pings, each direction (ms). */
  toCloud?: number;
  toOnprem?: number;
  lostPings?: number;
  /** Primary-down log line, ms after the cut. */
  detectOnprem?: number;
  detectCloud?: number;
  error?: string;
}

async function onStandby(h: HaLab): Promise<boolean> {
  const on = await quickStatus(h.onprem);
  const cl = await quickStatus(h.cloud!);
  return on.routes[0]?.active.join() === ONPREM.standby && cl.routes[0]?.active.join() === CLOUD.standby;
}

function detection(tw: Twinsec, side: Side, t0: number): number | undefined {
  const e = haEvents(tw, side.name).find(
    (x) => x.event === 'health' && x.connection === side.primary && x.to === 'down' && x.at >= t0,
  );
  return e ? e.at - t0 : undefined;
}

async function measure(interval: number, retries: number, run: number): Promise<Row> {
  const row: Row = { interval, retries, run };
  const lab = new Lab();
  try {
    const h = await startHaLab(lab, { interval, retries, holdDown: 1 });
    // The first probe leaves before the tunnel exists; health turns up one interval later.
    await waitHaReady(h, 20_000 + interval * 3000);
    const pings = [
      startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 10),
      startPing(lab, h.ns.cloudLan, ADDR.onLanHost, 10),
    ];
    await sleep(2000);
    const t0 = await cutLink1(lab, h.ns, 'silent');
    const budget = interval * (retries + 1) * 1000;
    await waitFor(() => onStandby(h), budget * 2 + 5000, {
      intervalMs: 50,
      what: 'both sides on the standby',
    });
    // Let the slower direction's pings come back, then a little steady traffic on the standby.
    await sleep(1000);
    await repairLink1(lab, h.ns, 'silent');
    const [toCloud, toOnprem] = [await pings[0]!.stop(), await pings[1]!.stop()];
    row.toCloud = longestRun(toCloud)?.durationMs ?? 0;
    row.toOnprem = longestRun(toOnprem)?.durationMs ?? 0;
    row.lostPings = toCloud.lost.length + toOnprem.lost.length;
    row.detectOnprem = detection(h.onprem, ONPREM, t0);
    row.detectCloud = detection(h.cloud!, CLOUD, t0);
  } catch (e) {
    row.error = (e as Error).message.split('\n')[0];
  } finally {
    await lab.cleanup();
  }
  return row;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
    .join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      intervals: { type: 'string', default: '0.1,0.5,1,3' },
      retries: { type: 'string', default: '3' },
      runs: { type: 'string', default: '1' },
    },
    strict: true,
  });
  const intervals = values.intervals.split(',').map(Number);
  const retries = Number(values.retries);
  const runs = Number(values.runs);
  if (intervals.some((i) => !(i >= 0.01)) || !(retries >= 1) || !(runs >= 1)) {
    console.error('usage: node dist/bench/failover.js [--intervals 0.1,0.5,1,3] [--retries 3] [--runs 1]');
    return 2;
  }
  console.log(
    `$ ${['node', ...process.argv.slice(1).map((a) => a.replace(`${process.cwd()}/`, ''))].join(' ')}`,
  );
  const why = labUnavailable() ?? twinsecUnavailable();
  if (why) {
    console.error(`bench:failover: ${why}${why.includes('root') ? ' (run it as root)' : ''}`);
    return 2;
  }
  Lab.sweepStale();
  console.log(
    `silent cut of link 1; health check every INTERVAL, ${retries} lost = down, on both gateways; ping -i 0.01 both ways\n`,
  );
  const rows: Row[] = [];
  for (const interval of intervals) {
    for (let run = 1; run <= runs; run++) {
      process.stdout.write(`  interval ${interval} s, run ${run}/${runs} ...`);
      const r = await measure(interval, retries, run);
      rows.push(r);
      const out = Math.max(r.toCloud ?? 0, r.toOnprem ?? 0);
      console.log(r.error ? ` error: ${r.error}` : ` outage ${Math.round(out)} ms`);
    }
  }
  const ms = (x: number | undefined) => (x === undefined ? '-' : String(Math.round(x)));
  const body = rows.map((r) => {
    const lo = r.interval * r.retries * 1000;
    const hi = r.interval * (r.retries + 1) * 1000;
    const outage = r.error ? undefined : Math.max(r.toCloud ?? 0, r.toOnprem ?? 0);
    return [
      `${r.interval} s x ${r.retries}${runs > 1 ? ` #${r.run}` : ''}`,
      `${ms(lo)} - ${ms(hi)}`,
      r.error ? `error: ${r.error}` : ms(outage),
      `${ms(r.toCloud)} / ${ms(r.toOnprem)}`,
      `${ms(r.detectOnprem)} / ${ms(r.detectCloud)}`,
      r.lostPings === undefined ? '-' : String(r.lostPings),
    ];
  });
  console.log(
    `\n${table([
      [
        'health check',
        'expected outage ms',
        'measured outage ms',
        'to cloud / to on-prem',
        'detected on-prem / cloud',
        'pings lost',
      ],
      ...body,
    ])}`,
  );
  console.log(
    '\nexpected = interval x retries .. interval x (retries + 1); measured = longest run of unanswered pings\n' +
      '(either direction, from ping -D); detected = primary marked down in each daemon log, ms after the cut.',
  );
  return rows.some((r) => r.error) ? 1 : 0;
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
