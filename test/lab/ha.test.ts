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
import { FAILOVER_CASES, failover, sleep, type Test } from './ha-cases.js';
import { haEvents, startHaLab, waitHaReady } from './ha-lab.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

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
  for (const c of FAILOVER_CASES) t.test(c.title, (t) => failover(t, c.mode));
  t.test('(c) 20% random loss on the primary: at most one switch back per hold-down period', (t) => lossy(t));
}
