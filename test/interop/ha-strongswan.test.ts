/**
 * Dual-tunnel failover, twinsec on-prem against strongSwan as the cloud gateway (test/lab/ha-lab.ts with
 * cloud 'none': charon 5.9 with kernel-libipsec in the cloud namespace, one WAN address 203.0.113.2, two
 * connections c1 -> 192.0.2.2 (link 1) and c2 -> 198.51.100.2 (link 2), both 198.19.1.0/24 <-> 198.18.1.0/24,
 * `dpd_delay = 1s`, charon's retransmit_timeout 1.0 s x 3 tries). twinsec: t1 (weight 100) and t2 (weight 0)
 * with health checks every 0.1 s, 3 retries, hold-down 3 s. charon initiates both, in a chosen order.
 *
 * What strongSwan's return path does (observed here, and asserted so a change shows up):
 *   - strongSwan has no health checks, and kernel-libipsec keeps one outbound policy per CHILD_SA; with
 *     identical selectors the most recently installed one matches first (libipsec inserts new policies
 *     ahead of equal-priority ones), and route 198.18.1.0/24 dev ipsec0 in table 220 is shared. So ALL of
 *     strongSwan's traffic to the on-prem LAN, the replies to twinsec's health probes included, leaves
 *     through the newest CHILD_SA, whichever link that is, and stays there until that SA goes away.
 *   - After a silent cut of that link only DPD notices: with dpd_delay = 1s the first DPD leaves ~1 s after
 *     the last inbound packet, is retransmitted after 1, 1.8 and 3.24 s, and charon gives up 5.8 s later,
 *     deleting the IKE_SA and its CHILD_SA: ~13 s, then the other child's policy carries the traffic.
 *   - charon cannot tell twinsec (the DELETE goes nowhere) and twinsec has no DPD of its own, so after the
 *     repair twinsec's t1 keeps an SA charon no longer has: t1 stays down and traffic stays on t2 until
 *     someone re-negotiates t1 (recorded as a comment, not asserted).
 *
 * (a) strongSwan's return path on link 2 (c2 initiated last): the cut only hits twinsec's direction.
 *     twinsec sees t1 down and moves to t2 within ~500 ms (status, log); t2 stays healthy (its probes are
 *     answered through c2); traffic to the strongSwan LAN flows over t2 again (c2 bytes-in grow), measured
 *     as the gap in echo requests arriving at the strongSwan LAN host (tcpdump) and by ping.
 * (b) strongSwan's return path on link 1 (c1 initiated last: the primary both ways, the natural set-up):
 *     t1 is down within ~500 ms, but t2's probes are answered through c1 into the cut, so t2 looks down
 *     too and twinsec keeps t1 (fallback, by the routing rule). Nothing moves until charon's DPD deletes
 *     c1 (~13 s); then t2's probes come back through c2, twinsec moves to t2 and traffic flows both ways.
 * (c) as (b), but each twinsec tunnel probes from its own address (t1 198.18.2.1, t2 198.18.2.2), which
 *     strongSwan's c1 / c2 carry as an extra /32 remote selector: a probe's reply can then only return
 *     through its own tunnel, so twinsec moves to t2 within ~500 ms and traffic to the strongSwan LAN flows
 *     again at once; the way back (strongSwan -> on-prem) still waits for charon's DPD.
 */
import t from 'tap';
import {
  ADDR,
  cutLink1,
  ESP_PROPOSAL,
  type HaEvent,
  type HaLab,
  type HaStatus,
  haEvents,
  haStatus,
  ID,
  IKE_PROPOSAL,
  longestGap,
  longestRun,
  PSK,
  quickStatus,
  repairLink1,
  startArrivals,
  startHaLab,
  startPing,
  summary,
  waitHaReady,
  waitLanPing,
} from '../lab/ha-lab.js';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, type CharonConn, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const MAX_SWITCH_MS = 500;
const DPD_DELAY = 1;
/** Generous bound for charon's DPD verdict (1 s + retransmits 1 + 1.8 + 3.24 + 5.83 s ≈ 13 s). */
const DPD_BOUND_MS = 25_000;
const PROBE_SRC = { t1: '198.18.2.1', t2: '198.18.2.2' };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

interface Setup {
  lab: Lab;
  h: HaLab;
  charon: Charon;
}

async function setup(
  t: Test,
  last: 'c1' | 'c2',
  probeSources: { t1: string; t2: string } | false,
): Promise<Setup> {
  const lab = new Lab(t);
  const h = await startHaLab(lab, { cloud: 'none', onpremStart: 'listen', probeSources });
  const conn = (name: 'c1' | 'c2', remote: string, remoteId: string, probe?: string): CharonConn => ({
    name,
    version: 2,
    local: ADDR.cloudWan,
    remote,
    localId: ID.cloud,
    remoteId,
    psk: PSK,
    ikeProposals: [IKE_PROPOSAL],
    espProposals: [ESP_PROPOSAL],
    localTs: [ADDR.cloudLan],
    remoteTs: probe ? [ADDR.onLan, `${probe}/32`] : [ADDR.onLan],
    startAction: 'none',
    dpdDelay: DPD_DELAY,
  });
  const charon = await startCharon(lab, h.ns.cloudGw, {
    dir: lab.tempDir('charon'),
    conns: [
      conn('c1', ADDR.onWan1, ID.on1, probeSources ? probeSources.t1 : undefined),
      conn('c2', ADDR.onWan2, ID.on2, probeSources ? probeSources.t2 : undefined),
    ],
  });
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- twinsecd on-prem log (tail) ---\n${tail(h.onprem.log(), 40)}`);
    t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 60)}`);
  });
  // The order decides strongSwan's return path: the newest CHILD_SA carries everything.
  for (const c of last === 'c1' ? ['c2', 'c1'] : ['c1', 'c2']) await charon.initiate(c);
  await waitHaReady(h, 25_000);
  await waitLanPing(h);
  return { lab, h, charon };
}

async function childCounters(charon: Charon): Promise<Record<string, { bytesIn: number; bytesOut: number }>> {
  const out: Record<string, { bytesIn: number; bytesOut: number }> = {};
  for (const sa of await charon.listSas()) {
    for (const c of sa.children) {
      if (c.state !== 'INSTALLED') continue;
      const o = out[c.name] ?? { bytesIn: 0, bytesOut: 0 };
      out[c.name] = { bytesIn: o.bytesIn + c.bytesIn, bytesOut: o.bytesOut + c.bytesOut };
    }
  }
  return out;
}

/** Asserts which of charon's children carries its traffic to the on-prem LAN (a short ping from there). */
async function checkReturnPath(t: Test, s: Setup, expected: 'c1' | 'c2'): Promise<void> {
  const other = expected === 'c1' ? 'c2' : 'c1';
  const before = await childCounters(s.charon);
  const p = await s.lab.exec(
    s.h.ns.onLan,
    'ping',
    ['-n', '-c', '20', '-i', '0.02', '-W', '1', ADDR.cloudLanHost],
    {
      check: false,
    },
  );
  const after = await childCounters(s.charon);
  const d = (c: string) => (after[c]?.bytesOut ?? 0) - (before[c]?.bytesOut ?? 0);
  t.match(p.stdout, / 20 received/, 'ping through the primary before the cut: 20/20');
  t.ok(
    d(expected) >= 20 * 84,
    `strongSwan sends to 198.18.1.0/24 through ${expected}, the newest CHILD_SA (+${d(expected)} bytes)`,
  );
  t.ok(d(other) < 84 * 5, `... and not through ${other} (+${d(other)} bytes; at most a few probe replies)`);
}

function firstAfter(ev: HaEvent[], t0: number, pred: (e: HaEvent) => boolean): HaEvent | undefined {
  return ev.find((e) => e.at >= t0 && pred(e));
}

const isDown = (c: string) => (e: HaEvent) => e.event === 'health' && e.connection === c && e.to === 'down';
const isUp = (c: string) => (e: HaEvent) => e.event === 'health' && e.connection === c && e.to === 'up';
const switchTo = (c: string) => (e: HaEvent) => e.event === 'route-switch' && e.to === c;

async function onRoute(h: HaLab, conn: string, fallbackOk = false): Promise<HaStatus | undefined> {
  const s = await quickStatus(h.onprem);
  const r = s.routes[0];
  return r?.active.join() === conn && (fallbackOk || !r.fallback) ? s : undefined;
}

/** (a) and (c): twinsec moves to t2 within ~500 ms; traffic to the strongSwan LAN flows over t2. */
async function fastFailover(t: Test, s: Setup, expectRoundTrip: 'fast' | 'dpd'): Promise<void> {
  const { lab, h, charon } = s;
  const arrivals = await startArrivals(
    lab,
    h.ns.cloudLan,
    'eth0',
    `icmp[icmptype] == icmp-echo and src host ${ADDR.onLanHost}`,
  );
  const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 10);
  await sleep(2000);
  const c0 = await childCounters(charon);
  const t0 = await cutLink1(lab, h.ns, 'silent');
  await waitFor(() => onRoute(h, 't2'), 5000, { what: 'twinsec route on t2', intervalMs: 50 }).catch(
    () => {},
  );
  await sleep(Math.max(0, t0 + 3000 - Date.now()));
  const during = await haStatus(h.onprem);
  const c1 = await childCounters(charon);
  if (expectRoundTrip === 'dpd') {
    // Let charon's DPD finish so the way back works too before the repair (and say when it did).
    await waitFor(async () => !(await childCounters(charon)).c1, DPD_BOUND_MS, {
      what: "charon's DPD deleting c1",
      intervalMs: 250,
    }).catch(() => {});
    await sleep(1500);
  }
  const ev = haEvents(h.onprem, 'on-prem');
  const down1 = firstAfter(ev, t0, isDown('t1'));
  const sw = firstAfter(ev, t0, switchTo('t2'));
  t.ok(
    down1 && down1.at - t0 <= MAX_SWITCH_MS,
    `log: t1 health up -> down ${down1 ? down1.at - t0 : '-'} ms after the cut`,
  );
  t.ok(sw && sw.at - t0 <= MAX_SWITCH_MS, `log: "${sw?.msg}" ${sw ? sw.at - t0 : '-'} ms after the cut`);
  t.same(
    during.routes[0]?.active,
    ['t2'],
    `status 3 s after the cut: route on t2 (${JSON.stringify(summary(during))})`,
  );
  t.equal(during.routes[0]?.fallback, false, 'status: not a fallback, t2 is healthy');
  t.equal(during.connections.t2?.health, 'up', 'status: t2 health up');
  t.equal(during.connections.t1?.health, 'down', 'status: t1 health down');
  const grew = (c1.c2?.bytesIn ?? 0) - (c0.c2?.bytesIn ?? 0);
  t.ok(grew > 100 * 84, `strongSwan's c2 CHILD_SA bytes-in grew by ${grew} in the 3 s after the cut`);

  const times = await arrivals.stop();
  const gap = longestGap(times, t0 - 1000, t0 + 3000);
  t.ok(
    gap.gapMs <= MAX_SWITCH_MS,
    `echo requests reach the strongSwan LAN host again after ${Math.round(gap.gapMs)} ms (tcpdump there; longest gap from ${Math.round(gap.startMs - t0)} ms)`,
  );
  const p = await ping.stop();
  const worst = longestRun(p);
  t.comment(
    `ping on-prem -> strongSwan LAN: longest run ${Math.round(worst?.durationMs ?? 0)} ms (${worst?.count ?? 0} lost) from ${Math.round((worst?.startMs ?? t0) - t0)} ms`,
  );
  if (expectRoundTrip === 'fast') {
    t.ok(
      (worst?.durationMs ?? 0) <= MAX_SWITCH_MS,
      'round trip: ping answered again within 500 ms (return path unaffected)',
    );
  } else {
    const d = worst?.durationMs ?? 0;
    t.ok(d > 3000 && d < DPD_BOUND_MS, `round trip: replies wait for charon's DPD (${Math.round(d)} ms)`);
  }
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();

  t.test("(a) strongSwan's return path on link 2: twinsec fails over to t2 within 500 ms", async (t) => {
    const s = await setup(t, 'c2', false);
    await checkReturnPath(t, s, 'c2');
    await fastFailover(t, s, 'fast');
    const r = await repairLink1(s.lab, s.h.ns, 'silent');
    const back = await waitFor(() => onRoute(s.h, 't1'), 10_000, { intervalMs: 100 }).catch(() => undefined);
    t.ok(back, 'after the repair (before charon gives c1 up) twinsec is back on t1 after the hold-down');
    const ev = haEvents(s.h.onprem, 'on-prem');
    const up = firstAfter(ev, r, isUp('t1'));
    const sw = firstAfter(ev, r, switchTo('t1'));
    if (up && sw) t.comment(`t1 up ${up.at - r} ms after the repair, route back ${sw.at - r} ms after it`);
  });

  t.test("(b) strongSwan's return path on link 1: both tunnels look down until charon's DPD", async (t) => {
    const s = await setup(t, 'c1', false);
    const { lab, h, charon } = s;
    await checkReturnPath(t, s, 'c1');
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 10);
    await sleep(2000);
    const t0 = await cutLink1(lab, h.ns, 'silent');
    await sleep(1500);
    const early = await haStatus(h.onprem);
    t.same(
      [early.connections.t1?.health, early.connections.t2?.health],
      ['down', 'down'],
      "1.5 s after the cut both tunnels look down: t2's probes are answered through charon's c1",
    );
    t.same(early.routes[0]?.active, ['t1'], 'the route stays on t1 (no next hop healthy: highest weight)');
    t.equal(early.routes[0]?.fallback, true, 'status says fallback');
    const moved = await waitFor(() => onRoute(h, 't2'), DPD_BOUND_MS, {
      what: 'twinsec on t2',
      intervalMs: 100,
    }).catch(() => undefined);
    t.ok(moved, 'once charon has given c1 up, t2 is healthy and carries the route');
    const c0 = await childCounters(charon);
    t.notOk(c0.c1, "charon deleted c1 (DPD: 'giving up after 3 retransmits')");
    t.match(charon.log(), /giving up after 3 retransmits/, 'charon log: DPD gave up');
    await sleep(2000);
    const c1 = await childCounters(charon);
    const grew = (c1.c2?.bytesIn ?? 0) - (c0.c2?.bytesIn ?? 0);
    t.ok(grew > 50 * 84, `traffic to the strongSwan LAN flows over t2 (c2 bytes-in +${grew} in 2 s)`);
    const p = await ping.stop();
    const worst = longestRun(p);
    const ev = haEvents(h.onprem, 'on-prem');
    const down1 = firstAfter(ev, t0, isDown('t1'));
    const down2 = firstAfter(ev, t0, isDown('t2'));
    const up2 = firstAfter(ev, t0, isUp('t2'));
    t.ok(
      down1 && down1.at - t0 <= MAX_SWITCH_MS,
      `log: t1 down ${down1 ? down1.at - t0 : '-'} ms after the cut`,
    );
    t.ok(down2, `log: t2 down ${down2 ? down2.at - t0 : '-'} ms after the cut`);
    t.ok(up2, `log: t2 up again ${up2 ? up2.at - t0 : '-'} ms after the cut (after charon's DPD)`);
    const d = worst?.durationMs ?? 0;
    t.ok(
      d > 3000 && d < DPD_BOUND_MS,
      `ping outage ${Math.round(d)} ms: decided by charon's DPD (dpd_delay ${DPD_DELAY}s)`,
    );
    t.comment(
      `strongSwan return path on the cut link, dpd_delay ${DPD_DELAY}s: outage ${Math.round(d)} ms (${worst?.count} pings), ` +
        `t2 healthy again ${up2 ? up2.at - t0 : '-'} ms after the cut`,
    );
    await repairLink1(lab, h.ns, 'silent');
    await sleep(5000);
    const after = await haStatus(h.onprem);
    t.comment(
      `5 s after the repair: ${JSON.stringify(summary(after))} (t1 keeps an SA charon deleted; no DPD in twinsec to notice)`,
    );
  });

  t.test(
    '(c) per-tunnel probe addresses, return path on link 1: twinsec -> strongSwan fails over within 500 ms',
    async (t) => {
      const s = await setup(t, 'c1', PROBE_SRC);
      await checkReturnPath(t, s, 'c1');
      await fastFailover(t, s, 'dpd');
    },
  );
}
