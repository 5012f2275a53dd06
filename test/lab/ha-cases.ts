/**
 * The dual-tunnel failover case shared by ha.test.ts (IKEv2) and ha-v1.test.ts (IKEv1): ha-lab.ts's
 * topology and gateways, link 1 cut (silently or by carrier loss) under ping from both LANs, then
 * repaired. Every figure comes from ping's own output and the daemons' log lines and status, never from
 * timers of the test (see ha.test.ts for what each assertion means).
 */
import type t from 'tap';
import {
  ADDR,
  CLOUD,
  type CutMode,
  cutLink1,
  type HaLab,
  type HaLabOptions,
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
import { Lab, waitFor } from './netns.js';

export type Test = Parameters<Parameters<typeof t.test>[0]>[0];

export const MAX_OUTAGE_MS = 500;
const STEADY_MS = 3000;
const CUT_MS = 4000;
const AFTER_FAILBACK_MS = 2000;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

/** The two failover cases' titles (the same figures on every IKE version). */
export const FAILOVER_CASES: readonly { mode: CutMode; title: string }[] = [
  {
    mode: 'silent',
    title: '(a) silent cut of link 1 (iptables DROP in the router): failover <= 500 ms, lossless failback',
  },
  {
    mode: 'carrier',
    title: '(b) carrier loss on link 1 (router port down): failover <= 500 ms, lossless failback',
  },
];

/**
 * One failover case: the longest run of lost pings each way <= MAX_OUTAGE_MS and the only loss, both
 * sides on the standby during the cut and back after the repair (status and log), the standby's CHILD_SA
 * carried the traffic, no ping lost after the repair. `options` go to startHaLab (e.g. `{ version: 1 }`).
 */
export async function failover(t: Test, mode: CutMode, options: HaLabOptions = {}): Promise<void> {
  const lab = new Lab(t);
  const h = await startHaLab(lab, { interval: 0.1, retries: 3, holdDown: 3, ...options });
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
  for (const [name, s] of [
    ['on-prem', before.on],
    ['cloud', before.cloud],
  ] as const) {
    t.same(
      Object.values(s.connections).map((c) => c.version),
      [h.opts.version, h.opts.version],
      `${name}: both tunnels are IKEv${h.opts.version} (status)`,
    );
  }

  // The cut takes effect somewhere between these two: iptables-restore / ip link inserts it, then its
  // exit reaches this process (tens of ms on a loaded 2-CPU machine).
  const cutStartedAt = Date.now();
  const t0 = await cutLink1(lab, h.ns, mode);
  t.comment(`${mode}: the cut command took ${t0 - cutStartedAt} ms`);
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
  // Distinct IDs per tunnel: no identity-pair warning, and no SA removed for a peer's INITIAL_CONTACT
  // (with IKEv1 a shared ID pair would make each tunnel's main mode delete the other's SAs).
  for (const [tw, name] of [
    [h.onprem, 'on-prem'],
    [cloud, 'cloud'],
  ] as const) {
    t.notMatch(tw.log(), /share the identity pair/, `${name}: no identity-pair warning`);
    t.notMatch(tw.log(), /peer sent INITIAL_CONTACT/, `${name}: no SA deleted for INITIAL_CONTACT`);
  }

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
    const stray = p.lost.filter((s) => p.sendMs(s) < cutStartedAt - 20 || p.sendMs(s) > t0 + 1000);
    t.same(stray, [], `${dir}: no ping lost except in the run that starts at the cut`);
    t.same(
      p.lostSince(healthyAgain),
      [],
      `${dir}: no ping lost after the primary was healthy again (${healthyAgain - repairedAt} ms after the repair)`,
    );
    t.same(p.lostSince(repairedAt), [], `${dir}: no ping lost after the repair at all`);
  }
}
