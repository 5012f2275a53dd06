/**
 * `routes[].onAllDown` in the dual-tunnel lab (ha-lab.ts): both on-prem links fail silently at once
 * (iptables DROP in the router, one iptables-restore), so neither next hop of the on-prem route
 * 198.19.1.0/24 (t1 weight 100, t2 weight 0, `publish: true`) is usable.
 *
 * (a) `revoke`: the route leaves the on-prem gateway's OS table within the health check's detection
 *     time plus a margin, status / metric / log say it is withdrawn, a LAN host's packets to the cloud
 *     LAN get "network unreachable" from the gateway (no default route in its main table) instead of
 *     going into a dead tunnel; link 1 repaired: the route is back (OS table, status, log) within
 *     REPAIR_MAX_MS and LAN pings get through again.
 * (b) `reserve` (the default): the route stays in the OS table on t1 the whole time (fallback), nothing
 *     is withdrawn or re-published, LAN packets are lost in the tunnel (no unreachable); link 1
 *     repaired: pings get through.
 *
 * The OS table is watched with a background `ip -ts monitor route` in the on-prem namespace (the kernel's
 * own change notifications, microsecond timestamps of the monitor's clock, the same wall clock as
 * Date.now()): cheaper than polling `ip route` and exact. Spot checks with `ip -j route show`.
 *
 * The status during the cut comes from `twinsec status --json` (the CLI, the contract); before and after
 * from the same report over the control socket in-process (quickStatus: no node process per call).
 *
 * Both links stay cut for CUT_HOLD_MS only: far below healthCheck.resetAfter (default 60 s: no SA is
 * renegotiated meanwhile) and the IKE liveness check's delay (10 s), so the repair finds the SAs as they
 * were and the figures measure the HA layer alone.
 */
import t from 'tap';
import {
  ADDR,
  cutLinks,
  type HaLab,
  type HaLabOptions,
  type HaRouteStatus,
  type HaStatus,
  haStatus,
  ONPREM,
  quickStatus,
  repairLinks,
  startHaLab,
  summary,
  waitHaReady,
  waitLanPing,
} from './ha-lab.js';
import { Lab, type LabProcess, labUnavailable, waitFor } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const INTERVAL_S = 0.1;
const RETRIES = 3;
/** What the health check needs to call a connection down: RETRIES probes, each lost after INTERVAL_S. */
const DETECT_MS = INTERVAL_S * RETRIES * 1000;
/**
 * Cut -> route out of the OS table. The check itself takes 300-400 ms after the cut (the first probe
 * after the cut goes out within one interval, the third is counted lost 3 intervals later); then the
 * router decides at once and the daemon runs `ip route del` (a process start, some 10-50 ms). The rest
 * is margin for this 2-CPU machine shared with other tests (two daemons with 10 probes/s each, the
 * iptables-restore process, scheduling delays of ~100 ms seen under load): 1.5 s fails on any hold-down
 * or extra probe round (a fourth lost probe would be +100 ms, a 1 s hold-down +1000 ms) but not on noise.
 */
const GONE_MAX_MS = 1500;
/**
 * Nothing may go before the check could possibly know: its third lost probe is counted at the earliest
 * ~3 intervals after the cut (a probe is lost after 0.9 interval unanswered); 50 ms below that for timer
 * granularity. Catches a route withdrawn on the first lost probe or by anything but the health check.
 */
const GONE_MIN_MS = DETECT_MS - 50;
/**
 * Repair of link 1 -> route back: the next probe through t1 (within 100 ms) is answered, which marks t1
 * up, and a withdrawn route returns without hold-down; then `ip route replace`. 2 s is that plus the
 * same load margin; the hold-down (3 s here) would exceed it, so the test tells "at once" from "after the
 * hold-down".
 */
const REPAIR_MAX_MS = 2000;
/** How long both links stay cut (see the header: well below resetAfter and the IKE liveness delay). */
const CUT_HOLD_MS = 2500;
/** The on-prem daemon's metrics endpoint, inside its own namespace. */
const METRICS = '127.0.0.1:9464';
const DEST = ONPREM.destination;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// The OS table: `ip -ts monitor route` in the background, and one-off `ip -j route show`

interface RouteChange {
  /** unix ms (the monitor's timestamp, local time with microseconds). */
  at: number;
  deleted: boolean;
  line: string;
}

interface RouteMonitor {
  proc: LabProcess;
  /** Changes of `DEST` in the main table seen so far. */
  changes(): RouteChange[];
}

/** `[2026-11-30T14:47:49.031604] Deleted 198.19.1.0/24 dev tsw… proto static scope link` */
const MONITOR_LINE = /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})\] (Deleted )?(.*)$/;

function parseMonitor(text: string): RouteChange[] {
  const out: RouteChange[] = [];
  for (const line of text.split('\n')) {
    const m = MONITOR_LINE.exec(line.trim());
    if (!m) continue;
    const rest = m[9]!;
    // The main table's entry (other tables print `table N`): `DEST dev TUN ...`.
    if (!rest.startsWith(`${DEST} dev `) || / table /.test(rest)) continue;
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    // ip prints local time (localtime(3)); new Date(y, ...) reads it the same way (same TZ).
    const at = new Date(y, mo - 1, d, h, mi, s).getTime() + Number(m[7]) / 1000;
    out.push({ at, deleted: m[8] !== undefined, line: line.trim() });
  }
  return out;
}

/**
 * Starts the monitor and waits until it listens: a blackhole route in a spare table is added and
 * deleted until the monitor reports it (a change made before it subscribed would never show).
 */
async function startRouteMonitor(lab: Lab, ns: string): Promise<RouteMonitor> {
  const proc = lab.spawn(ns, 'ip', ['-ts', 'monitor', 'route']);
  const mark = ['blackhole', '198.18.254.0/24', 'table', '250'];
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`ip monitor exited: ${proc.log()}`);
      await lab.exec(ns, 'ip', ['route', 'add', ...mark]);
      await lab.exec(ns, 'ip', ['route', 'del', ...mark]);
      await sleep(50);
      return proc.log().includes('198.18.254.0/24 table 250');
    },
    5000,
    { what: 'ip monitor route listening', intervalMs: 50 },
  );
  return { proc, changes: () => parseMonitor(proc.log()) };
}

interface OsRoute {
  dst: string;
  dev?: string;
  protocol?: string;
}

/** DEST in the on-prem gateway's main table, or undefined. */
async function osRoute(h: HaLab): Promise<OsRoute | undefined> {
  const r = await h.lab.exec(h.ns.onGw, 'ip', ['-j', 'route', 'show', 'table', 'main']);
  return (JSON.parse(r.stdout || '[]') as OsRoute[]).find((x) => x.dst === DEST);
}

// ---------------------------------------------------------------------------------------------------------
// The daemon's view: status, metric, log lines

function routeOf(s: HaStatus): HaRouteStatus | undefined {
  return s.routes.find((r) => r.destination === DEST);
}

/** The route's fields the cases assert on, for t.same / t.match. */
function routeView(s: HaStatus) {
  const r = routeOf(s);
  return {
    onAllDown: r?.onAllDown,
    active: r?.active,
    fallback: r?.fallback,
    revoked: r?.revoked,
    published: r?.published,
  };
}

/** `twinsec_route_withdrawn{destination="DEST"}` scraped from the on-prem daemon (inside its namespace). */
async function withdrawnMetric(h: HaLab): Promise<number | undefined> {
  const script = `fetch('http://${METRICS}/metrics').then((r) => r.text()).then((s) => process.stdout.write(s))`;
  const r = await h.lab.exec(h.ns.onGw, process.execPath, ['-e', script]);
  const m = new RegExp(`^twinsec_route_withdrawn\\{destination="${DEST}"\\} (\\S+)$`, 'm').exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

interface LogLine {
  at: number;
  event?: string;
  destination?: string;
  from?: string[];
  to?: string[];
  revoked?: boolean;
  published?: boolean;
  ok?: boolean;
  connection?: string;
  msg: string;
}

/** The on-prem daemon's route-switch / route-publish lines for DEST, and health lines, since `since`. */
function logLines(h: HaLab, since: number): LogLine[] {
  return (h.onprem.logEvents() as LogLine[]).filter(
    (e) =>
      e.at >= since &&
      (((e.event === 'route-switch' || e.event === 'route-publish') && e.destination === DEST) ||
        e.event === 'health'),
  );
}

/** One ping from the on-prem LAN host to the cloud LAN host (1 s wait): exit code and output. */
async function lanPingOnce(h: HaLab) {
  return h.lab.exec(h.ns.onLan, 'ping', ['-n', '-c', '1', '-W', '1', ADDR.cloudLanHost], { check: false });
}

/** Both connections' health down in the on-prem daemon's status (polled in-process). */
async function waitBothDown(h: HaLab, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(
      async () => {
        const s = await quickStatus(h.onprem);
        return s.connections.t1?.health === 'down' && s.connections.t2?.health === 'down';
      },
      timeoutMs,
      { intervalMs: 50 },
    );
    return true;
  } catch {
    return false;
  }
}

async function startLab(t: Test, options: HaLabOptions): Promise<HaLab> {
  const lab = new Lab(t);
  const h = await startHaLab(lab, {
    interval: INTERVAL_S,
    retries: RETRIES,
    holdDown: 3,
    onpremMetrics: METRICS,
    ...options,
  });
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- twinsecd on-prem log (tail) ---\n${tail(h.onprem.log(), 40)}`);
    if (h.cloud) t.comment(`--- twinsecd cloud log (tail) ---\n${tail(h.cloud.log(), 20)}`);
  });
  await waitHaReady(h, 25_000);
  return h;
}

// ---------------------------------------------------------------------------------------------------------

async function revokeCase(t: Test): Promise<void> {
  const h = await startLab(t, { onpremOnAllDown: 'revoke' });
  const mon = await startRouteMonitor(h.lab, h.ns.onGw);

  // The route went in when t1 first became usable; the status says so once `ip route replace` has
  // returned, which may be just after the kernel table (and so the LAN ping of waitHaReady) had it.
  await waitFor(async () => routeOf(await quickStatus(h.onprem))?.published, 3000, { intervalMs: 50 }).catch(
    () => undefined,
  );
  const before = await quickStatus(h.onprem);
  t.same(
    routeView(before),
    { onAllDown: 'revoke', active: ['t1'], fallback: false, revoked: false, published: true },
    'before: status route on t1, published, not revoked',
  );
  t.match(await osRoute(h), { dev: h.onprem.tunName, protocol: 'static' }, 'before: route in the OS table');
  t.equal(await withdrawnMetric(h), 0, 'before: twinsec_route_withdrawn 0');

  // The cut takes effect between these two (the iptables-restore process's start and its exit).
  const cutStartedAt = Date.now();
  const cutAt = await cutLinks(h.lab, h.ns, [1, 2], 'silent');
  let gone: RouteChange | undefined;
  try {
    gone = await waitFor(() => mon.changes().find((c) => c.deleted), 8000, { intervalMs: 20 });
  } catch {
    gone = undefined;
  }
  t.ok(gone, `the route left the OS table (${gone?.line ?? mon.proc.log()})`);
  const goneMs = gone ? Math.round(gone.at - cutStartedAt) : Number.NaN;
  t.comment(
    `revoke: cut -> route gone from the OS table: ${goneMs} ms after the cut command started (the command took ${cutAt - cutStartedAt} ms)`,
  );
  t.ok(
    goneMs <= GONE_MAX_MS,
    `cut -> route gone ${goneMs} ms <= ${GONE_MAX_MS} ms (detection ${DETECT_MS} ms + margin)`,
  );
  t.ok(goneMs >= GONE_MIN_MS, `cut -> route gone ${goneMs} ms >= ${GONE_MIN_MS} ms (not before detection)`);

  await sleep(Math.max(0, cutAt + CUT_HOLD_MS - Date.now()));
  const during = await haStatus(h.onprem);
  t.same(
    routeView(during),
    { onAllDown: 'revoke', active: [], fallback: true, revoked: true, published: false },
    `during: status route revoked, no next hop, not published (${JSON.stringify(summary(during))})`,
  );
  t.equal(during.connections.t1?.health, 'down', 'during: t1 health down');
  t.equal(during.connections.t2?.health, 'down', 'during: t2 health down');
  t.equal(await osRoute(h), undefined, 'during: `ip route show` has no route to the cloud LAN');
  t.equal(await withdrawnMetric(h), 1, 'during: twinsec_route_withdrawn 1');
  // The gateway has no default route in its main table: with the route withdrawn the kernel answers
  // the LAN host itself instead of handing the packet to the engine for a dead tunnel.
  const unreachable = await lanPingOnce(h);
  t.not(unreachable.code, 0, 'during: a LAN ping is not answered');
  t.match(
    unreachable.stdout,
    new RegExp(`From ${ADDR.onLanGw.replace(/\./g, '\\.')} .*Unreachable`),
    'during: the LAN host gets "unreachable" from its gateway',
  );

  const cutLog = logLines(h, cutStartedAt - 50);
  const withdrawn = cutLog.filter((e) => e.event === 'route-switch' && e.revoked === true);
  t.equal(withdrawn.length, 1, 'log: one route-switch with revoked: true');
  t.same(withdrawn[0]?.to, [], `log: withdrawn to none ("${withdrawn[0]?.msg}")`);
  const unpublished = cutLog.filter((e) => e.event === 'route-publish');
  t.same(
    unpublished.map((e) => ({ published: e.published, ok: e.ok })),
    [{ published: false, ok: true }],
    `log: one route-publish, published false, ok ("${unpublished[0]?.msg}")`,
  );
  const downs = cutLog.filter((e) => e.event === 'health' && (e as { to?: string }).to === 'down');
  t.comment(
    `revoke: health down (daemon log): ${downs.map((e) => `${e.connection} +${e.at - cutStartedAt} ms`).join(', ')}; route-switches: ${cutLog
      .filter((e) => e.event === 'route-switch')
      .map((e) => `"${e.msg}" +${e.at - cutStartedAt} ms`)
      .join(', ')}`,
  );

  // Link 1 only: the route comes back on t1 at once (no hold-down), t2 stays down.
  const repairStartedAt = Date.now();
  const repairedAt = await repairLinks(h.lab, h.ns, [1], 'silent');
  let back: RouteChange | undefined;
  try {
    back = await waitFor(() => mon.changes().find((c) => !c.deleted && c.at >= repairStartedAt - 5), 8000, {
      intervalMs: 20,
    });
  } catch {
    back = undefined;
  }
  t.ok(back, `the route is back in the OS table (${back?.line ?? mon.proc.log()})`);
  const backMs = back ? Math.round(back.at - repairStartedAt) : Number.NaN;
  t.comment(
    `revoke: repair of link 1 -> route back in the OS table: ${backMs} ms after the repair command started (the command took ${repairedAt - repairStartedAt} ms)`,
  );
  t.ok(backMs <= REPAIR_MAX_MS, `repair -> route back ${backMs} ms <= ${REPAIR_MAX_MS} ms (no hold-down)`);
  t.match(back?.line ?? '', ` dev ${h.onprem.tunName} proto static`, 'back: dev TUN proto static');

  const sawPublished = await waitFor(
    async () => {
      const s = await quickStatus(h.onprem);
      return routeOf(s)?.published === true && routeOf(s)?.active.join() === 't1';
    },
    5000,
    { intervalMs: 50 },
  ).catch(() => false);
  t.ok(sawPublished, 'status: published again, on t1');
  await waitLanPing(h);
  const lanOk = await lanPingOnce(h);
  t.equal(lanOk.code, 0, 'after: a LAN ping is answered');
  const after = await quickStatus(h.onprem);
  t.same(
    routeView(after),
    { onAllDown: 'revoke', active: ['t1'], fallback: false, revoked: false, published: true },
    'after: status route on t1, published, not revoked',
  );
  t.equal(after.connections.t2?.health, 'down', 'after: t2 still down (link 2 still cut)');
  t.match(await osRoute(h), { dev: h.onprem.tunName, protocol: 'static' }, 'after: route in the OS table');
  t.equal(await withdrawnMetric(h), 0, 'after: twinsec_route_withdrawn 0');
  const repairLog = logLines(h, repairStartedAt - 50);
  const restored = repairLog.filter((e) => e.event === 'route-switch');
  t.same(
    restored.map((e) => ({ to: e.to, revoked: e.revoked })),
    [{ to: ['t1'], revoked: false }],
    `log: one route-switch back to t1 with revoked: false ("${restored[0]?.msg}")`,
  );
  t.same(
    repairLog.filter((e) => e.event === 'route-publish').map((e) => ({ published: e.published, ok: e.ok })),
    [{ published: true, ok: true }],
    'log: one route-publish, published true, ok',
  );
  t.same(
    mon.changes().map((c) => c.deleted),
    [true, false],
    'OS table: exactly one deletion and one re-addition of the route',
  );
}

async function reserveCase(t: Test): Promise<void> {
  const h = await startLab(t, {});
  const mon = await startRouteMonitor(h.lab, h.ns.onGw);
  const before = await quickStatus(h.onprem);
  t.same(
    routeView(before),
    { onAllDown: 'reserve', active: ['t1'], fallback: false, revoked: false, published: true },
    'before: status route on t1, published (onAllDown reserve by default)',
  );

  const cutStartedAt = Date.now();
  const cutAt = await cutLinks(h.lab, h.ns, [1, 2], 'silent');
  t.ok(await waitBothDown(h, 8000), 'both connections down after the cut (status)');
  t.comment(`reserve: both down ${Date.now() - cutStartedAt} ms after the cut command started (polled)`);
  await sleep(Math.max(0, cutAt + CUT_HOLD_MS - Date.now()));
  const during = await haStatus(h.onprem);
  t.same(
    routeView(during),
    { onAllDown: 'reserve', active: ['t1'], fallback: true, revoked: false, published: true },
    `during: status route kept on t1 (fallback), published, not revoked (${JSON.stringify(summary(during))})`,
  );
  t.match(await osRoute(h), { dev: h.onprem.tunName, protocol: 'static' }, 'during: route in the OS table');
  t.equal(await withdrawnMetric(h), 0, 'during: twinsec_route_withdrawn 0');
  // The route stays: the packet goes into t1's SA over the dead link and is lost, no unreachable.
  const lost = await lanPingOnce(h);
  t.not(lost.code, 0, 'during: a LAN ping is not answered');
  t.notMatch(lost.stdout, /Unreachable/, 'during: no "unreachable" (the packet went into the tunnel)');
  const cutLog = logLines(h, cutStartedAt - 50);
  t.same(
    cutLog.filter((e) => e.event === 'route-switch' && e.revoked !== undefined),
    [],
    'log: no route-switch withdraws or restores the route',
  );
  t.same(
    cutLog.filter((e) => e.event === 'route-publish'),
    [],
    'log: no route-publish',
  );

  const repairStartedAt = Date.now();
  await repairLinks(h.lab, h.ns, [1], 'silent');
  // The route never left t1, so LAN traffic flows again as soon as link 1 carries it, possibly before
  // the next probe has marked t1 up (the status may still say fallback for up to an interval or so).
  await waitLanPing(h);
  t.comment(`reserve: repair of link 1 -> LAN ping answered: ${Date.now() - repairStartedAt} ms (polled)`);
  const t1Up = await waitFor(
    async () => {
      const s = await quickStatus(h.onprem);
      return s.connections.t1?.health === 'up' && routeOf(s)?.fallback === false;
    },
    5000,
    { intervalMs: 50 },
  ).catch(() => false);
  t.ok(t1Up, 'status: t1 healthy again, the route no longer a fallback');
  const after = await quickStatus(h.onprem);
  t.same(
    routeView(after),
    { onAllDown: 'reserve', active: ['t1'], fallback: false, revoked: false, published: true },
    'after: status route on t1, published',
  );
  t.equal((await lanPingOnce(h)).code, 0, 'after: a LAN ping is answered');
  t.same(mon.changes(), [], 'OS table: the route was never deleted or replaced (ip monitor)');
  t.match(await osRoute(h), { dev: h.onprem.tunName, protocol: 'static' }, 'after: route in the OS table');
}

const skip = labUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  t.test(
    '(a) onAllDown revoke: both links cut -> route out of the OS table and engine; link 1 repaired -> back at once',
    (t) => revokeCase(t),
  );
  t.test('(b) onAllDown reserve (default): both links cut -> route stays on t1 in the OS table', (t) =>
    reserveCase(t),
  );
}
