/**
 * Dual-tunnel failover in network namespaces (ha-lab.ts: on-prem twinsec with two links, a router, cloud
 * twinsec with one; a LAN host behind each). Health checks every 0.1 s with 3 retries on both sides,
 * routes 100/0 with a 3 s hold-down. Each LAN host pings the other with `ping -D -O -i 0.01` (iputils
 * sends every ~16 ms at that setting on a 250 Hz kernel; below 10 ms it busy-polls a CPU) while link 1
 * fails and is repaired. Both directions, because an echo reply leaves through the tunnel its request came
 * in on (the engine's echo return path): a ping measures the failover of the pinging side's gateway.
 *
 * (a) silent cut: iptables DROP in the router, both directions, no carrier change;
 * (b) carrier loss: the router's link-1 port goes down (the on-prem wan1 sees NO-CARRIER).
 *
 * Every figure comes from ping's own output (send times = receive timestamp - rtt, interpolated for lost
 * ones) and from the daemons' JSON log lines and `twinsec status --json`, never from timers of this test:
 *   - the longest run of unanswered pings is at most 500 ms, and it is the only loss (it starts at the cut);
 *   - both sides move to the standby (status: route active t2 / c2, health t1 / c1 down; log: one
 *     route-switch each way) and back after the repair;
 *   - no ping sent after the primary is healthy again is lost (failback loses nothing);
 *   - the standby carried the traffic meanwhile (its CHILD_SA byte counters grew).
 *
 * Needs the ESP engine's echo return path (an echo reply leaves through the connection its request came
 * in on): without it each gateway answers the standby's probes through its own dead primary, both tunnels
 * look down on both sides, the routes stay on the primary (fallback) and case (a) fails with an outage
 * as long as the cut.
 */
import t from 'tap';
import {
  ADDR,
  CLOUD,
  type CutMode,
  cutLink1,
  type HaLab,
  type HaStatus,
  haEvents,
  haStatus,
  longestRun,
  ONPREM,
  type PingResult,
  quickStatus,
  repairLink1,
  type Side,
  startHaLab,
  startPing,
  summary,
  switchesSince,
  waitHaReady,
} from './ha-lab.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const MAX_OUTAGE_MS = 500;
const STEADY_MS = 3000;
const CUT_MS = 4000;
const AFTER_FAILBACK_MS = 2000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

function route(s: HaStatus, side: Side) {
  return s.routes.find((r) => r.destination === side.destination);
}

function childBytes(s: HaStatus, conn: string): number {
  return (s.connections[conn]?.children ?? []).reduce((n, c) => n + c.bytesIn + c.bytesOut, 0);
}

/** Polls both gateways until their routes sit on the given connections (no assertion on how fast). */
async function waitRoutes(h: HaLab, on: string, cloud: string, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(
      async () =>
        route(await quickStatus(h.onprem), ONPREM)?.active.join() === on &&
        route(await quickStatus(h.cloud!), CLOUD)?.active.join() === cloud,
      timeoutMs,
      { intervalMs: 50 },
    );
    return true;
  } catch {
    return false;
  }
}

function describeRuns(p: PingResult, t0: number): string {
  return p.runs
    .map(
      (r) =>
        `seq ${r.firstSeq}-${r.lastSeq} (${r.count}) sent at ${Math.round(r.startMs - t0)} ms, ${Math.round(r.durationMs)} ms`,
    )
    .join('; ');
}

async function failover(t: Test, mode: CutMode): Promise<void> {
  const lab = new Lab(t);
  const h = await startHaLab(lab, { interval: 0.1, retries: 3, holdDown: 3 });
  const cloud = h.cloud!;
  t.teardown(() => {
    if (t.passing()) return;
    for (const [tw, name] of [
      [h.onprem, 'on-prem'],
      [cloud, 'cloud'],
    ] as const) {
      t.comment(`--- twinsecd ${name} log (tail) ---\n${tail(tw.log(), 40)}`);
    }
  });
  await waitHaReady(h, 25_000);

  // Both directions: an echo reply leaves through the tunnel its request came in on, so each ping
  // measures the failover of the pinging side's gateway; together they cover the LAN-to-LAN outage.
  const pings = [
    { dir: 'on-prem -> cloud', run: startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 10) },
    { dir: 'cloud -> on-prem', run: startPing(lab, h.ns.cloudLan, ADDR.onLanHost, 10) },
  ];
  await sleep(STEADY_MS);
  const before = { on: await haStatus(h.onprem), cloud: await haStatus(cloud) };

  const t0 = await cutLink1(lab, h.ns, mode);
  const movedAway = await waitRoutes(h, 't2', 'c2', 8000);
  await sleep(Math.max(0, t0 + CUT_MS - Date.now()));
  const during = { on: await haStatus(h.onprem), cloud: await haStatus(cloud) };

  const repairedAt = await repairLink1(lab, h.ns, mode);
  const movedBack = await waitRoutes(h, 't1', 'c1', 12_000);
  await sleep(AFTER_FAILBACK_MS);
  const results = [];
  for (const x of pings) results.push({ dir: x.dir, p: await x.run.stop() });
  const after = { on: await haStatus(h.onprem), cloud: await haStatus(cloud) };

  // --- the daemons' views: status --json and log lines
  t.ok(movedAway, `both gateways moved to the standby (on-prem ${JSON.stringify(summary(during.on))})`);
  for (const [side, tw] of [
    [ONPREM, h.onprem],
    [CLOUD, cloud],
  ] as const) {
    const pick = (x: { on: HaStatus; cloud: HaStatus }) => (side === ONPREM ? x.on : x.cloud);
    const d = pick(during);
    const a = pick(after);
    const b = pick(before);
    t.same(
      route(d, side)?.active,
      [side.standby],
      `${side.name}: status during the cut: route on ${side.standby}`,
    );
    t.equal(route(d, side)?.fallback, false, `${side.name}: not a fallback (the standby is healthy)`);
    t.equal(
      d.connections[side.primary]?.health,
      'down',
      `${side.name}: ${side.primary} health down during the cut`,
    );
    t.equal(
      d.connections[side.standby]?.health,
      'up',
      `${side.name}: ${side.standby} health up during the cut`,
    );
    t.same(
      route(a, side)?.active,
      [side.primary],
      `${side.name}: status after the repair: back on ${side.primary}`,
    );
    t.equal(
      (route(a, side)?.switches ?? 0) - (route(b, side)?.switches ?? 0),
      2,
      `${side.name}: status counts 2 switches (away and back)`,
    );
    t.equal(a.connections[side.primary]?.health, 'up', `${side.name}: ${side.primary} healthy again`);
    const grew = childBytes(d, side.standby) - childBytes(b, side.standby);
    t.ok(grew > 10_000, `${side.name}: ${side.standby}'s CHILD_SA carried the traffic (+${grew} bytes)`);

    const ev = haEvents(tw, side.name);
    t.same(
      switchesSince(ev, t0 - 50),
      [`${side.primary} -> ${side.standby}`, `${side.standby} -> ${side.primary}`],
      `${side.name}: log shows one switch away and one back`,
    );
    const away = ev.find((e) => e.event === 'route-switch' && e.at >= t0 - 50);
    t.match(
      away?.msg ?? '',
      new RegExp(
        `^route ${side.destination.replace(/[./]/g, '\\$&')}: ${side.primary} -> ${side.standby} \\(${side.primary} down: \\d+ probes lost\\)$`,
      ),
      `${side.name}: log line "${away?.msg}"`,
    );
    const down = ev.find(
      (e) => e.event === 'health' && e.connection === side.primary && e.to === 'down' && e.at >= t0,
    );
    t.ok(down, `${side.name}: log: ${side.primary} health up -> down`);
    t.notOk(
      ev.some((e) => e.event === 'health' && e.connection === side.standby && e.to === 'down' && e.at >= t0),
      `${side.name}: ${side.standby} never looked down`,
    );
    if (down) t.comment(`${side.name}: ${side.primary} down ${down.at - t0} ms after the cut (daemon log)`);
  }
  t.ok(movedBack, 'both gateways moved back to the primary after the repair');

  // --- ping's view
  const primaryUp = [...haEvents(h.onprem, 'on-prem'), ...haEvents(cloud, 'cloud')].filter(
    (e) =>
      e.event === 'health' && e.to === 'up' && (e.connection === 't1' || e.connection === 'c1') && e.at > t0,
  );
  t.ok(primaryUp.length >= 2, 'log: t1 and c1 health down -> up after the repair');
  const healthyAgain = Math.min(...primaryUp.map((e) => e.at));
  for (const { dir, p } of results) {
    const worst = longestRun(p);
    t.comment(
      `${mode}, ping ${dir}: ${p.transmitted} sent, ${p.received} answered, ${p.lost.length} lost; runs: ${describeRuns(p, t0) || 'none'}`,
    );
    t.ok(p.received > 100, `${dir}: ping got answers (${p.received})`);
    t.ok(worst, `${dir}: the cut cost some pings`);
    t.ok(
      (worst?.durationMs ?? 0) <= MAX_OUTAGE_MS,
      `${dir}: longest run of lost pings ${Math.round(worst?.durationMs ?? 0)} ms (${worst?.count} pings) <= ${MAX_OUTAGE_MS} ms`,
    );
    const stray = p.lost.filter((s) => p.sendMs(s) < t0 - 20 || p.sendMs(s) > t0 + 1000);
    t.same(stray, [], `${dir}: no ping lost except in the run that starts at the cut`);
    t.same(
      p.lostSince(healthyAgain),
      [],
      `${dir}: no ping lost after the primary was healthy again (${healthyAgain - repairedAt} ms after the repair)`,
    );
    t.same(p.lostSince(repairedAt), [], `${dir}: no ping lost after the repair at all`);
  }
}

/**
 * (c) A lossy primary: 20% random loss on link 1 (both directions) for LOSSY_MS. Failover needs
 * `retries` lost probes in a row; failback needs the primary healthy for the whole hold-down, so no
 * two switches of a route may come closer than the hold-down unless the second is a failover away
 * from a link that just lost `retries` probes again. Measured from the daemons' own log lines.
 */
const LOSSY_MS = 15_000;
const HOLD_DOWN_S = 3;

async function lossy(t: Test): Promise<void> {
  const lab = new Lab(t);
  const h = await startHaLab(lab, { interval: 0.1, retries: 3, holdDown: HOLD_DOWN_S });
  await waitHaReady(h, 25_000);
  const rules = (op: '-I' | '-D') =>
    [
      '*filter',
      `${op} FORWARD -i r1 -m statistic --mode random --probability 0.2 -j DROP`,
      `${op} FORWARD -o r1 -m statistic --mode random --probability 0.2 -j DROP`,
      'COMMIT',
      '',
    ].join('\n');
  const t0 = Date.now();
  await lab.exec(h.ns.router, 'iptables-restore', ['--noflush'], { input: rules('-I') });
  await sleep(LOSSY_MS);
  await lab.exec(h.ns.router, 'iptables-restore', ['--noflush'], { input: rules('-D') });
  const t1 = Date.now();
  for (const [tw, side] of [
    [h.onprem, 'on-prem'],
    [h.cloud!, 'cloud'],
  ] as const) {
    const sw = haEvents(tw, side).filter((e) => e.event === 'route-switch' && e.at >= t0 && e.at <= t1 + 100);
    t.comment(
      `${side}: ${sw.length} switches in ${LOSSY_MS} ms of 20% loss: ${sw.map((e) => `${e.from}->${e.to}@${e.at - t0}`).join(', ') || 'none'}`,
    );
    // Switches back to the primary (failbacks) are at least the hold-down apart from the failover before them.
    for (let i = 1; i < sw.length; i++) {
      const back = sw[i]!;
      if (back.reason.includes(' up for ')) {
        t.ok(
          back.at - sw[i - 1]!.at >= HOLD_DOWN_S * 1000 - 50,
          `${side}: failback ${back.at - sw[i - 1]!.at} ms after the failover`,
        );
      }
    }
    const periods = Math.ceil(LOSSY_MS / (HOLD_DOWN_S * 1000));
    t.ok(
      sw.length <= 2 * periods,
      `${side}: ${sw.length} switches <= 2 per ${HOLD_DOWN_S} s hold-down period (${2 * periods})`,
    );
    const failbacks = sw.filter((e) => e.reason.includes(' up for ')).length;
    t.ok(failbacks <= periods, `${side}: ${failbacks} failbacks <= one per hold-down period (${periods})`);
  }
}

const skip = labUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  t.test(
    '(a) silent cut of link 1 (iptables DROP in the router): failover <= 500 ms, lossless failback',
    (t) => failover(t, 'silent'),
  );
  t.test('(b) carrier loss on link 1 (router port down): failover <= 500 ms, lossless failback', (t) =>
    failover(t, 'carrier'),
  );
  t.test('(c) 20% random loss on the primary: at most one switch back per hold-down period', (t) => lossy(t));
}
