/**
 * Security issue #11, load item (b): authenticated-looking hostile traffic against the cloud
 * gateway of the HA lab (ike-flood-lab.ts; it also answers any peer, `remote: %any`).
 *
 * From the attacker's namespace, hostile-initiator.ts (twinsec's own IKEv2 initiator, patched)
 * repeats as fast as it can, over PARALLEL connections from its one real address: a complete
 * IKE_SA_INIT (with the COOKIE round trip when asked), then an IKE_AUTH sealed with the right SK
 * keys but with an AUTH made from a wrong PSK and TSi/TSr of 255 selectors each.
 *
 * What must hold during the attack (ATTACK_S seconds):
 *   - the attacks are answered AUTHENTICATION_FAILED (both the attacker's count and the gateway's);
 *   - `status` on the gateway's control socket, asked back to back from the test (a new request
 *     10 ms after each answer): 97 % of the answers within 100 ms, p95 < 100 ms, none over 1 s
 *     (p50/p95/max, every slower answer, and the same figures for 3 s before the attack printed);
 *   - no health change and no route switch on either gateway, the HA IKE SAs are the same ones
 *     after the attack, and the LAN pings keep flowing (>= 98 %).
 */
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ADDR, ID, startPing, waitHaReady } from './ha-lab.js';
import {
  cpuSeconds,
  FLOOD_ADDR,
  fmtMs,
  haFlaps,
  haIkeSas,
  loadAverage,
  mib,
  percentiles,
  pollStatus,
  rssBytes,
  startFloodLab,
} from './ike-flood-lab.js';
import { Lab, labUnavailable } from './netns.js';
import { type Twinsec, twinsecUnavailable } from './twinsec.js';

const ATTACK_S = 12;
const PARALLEL = 8;
const HOSTILE = fileURLToPath(new URL('./hostile-initiator.js', import.meta.url));

/**
 * What the gateway's log says of the attack since `since`: its `ike-state` lines of connection `any`
 * ending in auth_failed, and how many negotiation lines of `any` the log limiter left out (those
 * lines are limited per connection, 10/s, security issue #11).
 */
function logged(tw: Twinsec, since: number): { authFailed: number; suppressed: number; printed: number } {
  const ev = tw.logEvents().filter((e) => e.at >= since);
  return {
    // Each attempt's two negotiation lines: -> connecting, connecting -> down.
    printed: ev.filter(
      (e) =>
        e.event === 'ike-state' &&
        e.connection === 'any' &&
        (e.to === 'connecting' || (e.from === 'connecting' && e.to === 'down')),
    ).length,
    authFailed: ev.filter(
      (e) =>
        e.event === 'ike-state' && e.connection === 'any' && e.to === 'down' && e.reason === 'auth_failed',
    ).length,
    suppressed: ev
      .filter((e) => e.event === 'log-suppressed' && e.of === 'ike-state' && e.reason === 'any negotiations')
      .reduce((n, e) => n + Number(e.suppressed ?? 0), 0),
  };
}

const skip = labUnavailable() ?? twinsecUnavailable();

t.test(
  'IKE_AUTH with a wrong PSK and 255 selectors, as fast as possible: status answers within 100 ms, no flap',
  { skip },
  async (t) => {
    const lab = new Lab(t);
    const h = await startFloodLab(lab);
    await waitHaReady(h);
    const sas0 = haIkeSas(h);
    const rssStart = rssBytes(h.cloud.proc.pid!);
    const cpu0 = cpuSeconds(h.cloud.proc.pid!);
    const load0 = loadAverage();
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 20);
    // The same status requests for 3 s before the attack: the machine's own tail, for comparison.
    const base = pollStatus(h.cloud, 10);
    await new Promise((r) => setTimeout(r, 3000));
    const baseline = await base.stop();
    const since = Date.now();
    const attacker = lab.exec(
      h.attackerNs,
      process.execPath,
      [
        HOSTILE,
        '--local',
        FLOOD_ADDR.attacker,
        '--remote',
        ADDR.cloudWan,
        '--remote-id',
        ID.cloud,
        '--parallel',
        String(PARALLEL),
        '--seconds',
        String(ATTACK_S),
      ],
      { timeoutMs: (ATTACK_S + 30) * 1000 },
    );
    // Give the attacker's node a moment to start, then measure while it runs.
    await new Promise((r) => setTimeout(r, 1000));
    const polledFrom = Date.now();
    const poll = pollStatus(h.cloud, 10);
    const out = await attacker;
    const lat = await poll.stop();
    const cpu = cpuSeconds(h.cloud.proc.pid!) - cpu0;
    const load1 = loadAverage();
    await new Promise((r) => setTimeout(r, 1500)); // the last log lines and suppression summaries
    const rssEnd = rssBytes(h.cloud.proc.pid!);
    const pings = await ping.stop();
    const res = JSON.parse(out.stdout.trim()) as {
      attempts: number;
      ended: Record<string, number>;
      cookies: number;
      seconds: number;
    };
    const lines = logged(h.cloud, since);
    t.comment(
      `attacker: ${res.attempts} IKE_SA_INIT + IKE_AUTH attempts in ${res.seconds.toFixed(1)} s ` +
        `(${(res.attempts / res.seconds).toFixed(0)}/s), ended ${JSON.stringify(res.ended)}, ` +
        `${res.cookies} COOKIE challenges answered; gateway log: ${lines.authFailed} auth_failed lines, ` +
        `${lines.suppressed} negotiation lines suppressed by the log limiter`,
    );
    const p = percentiles(lat);
    const over = lat.filter((x) => x >= 100).length;
    t.comment(
      `status before the attack: ${fmtMs(percentiles(baseline))}, ${baseline.filter((x) => x >= 100).length} over 100 ms`,
    );
    t.comment(`status during the attack: ${fmtMs(p)}, ${over} over 100 ms`);
    t.comment(
      `cloud twinsecd: RSS start ${mib(rssStart)}, end ${mib(rssEnd)}; CPU ${cpu.toFixed(1)} s in ${res.seconds.toFixed(1)} s ` +
        `(${((cpu / res.seconds) * 100).toFixed(0)} % of a core); load average ${load0} before, ${load1} after`,
    );
    const slow = poll
      .slow(100)
      .map((x) => `+${((x.at - polledFrom) / 1000).toFixed(1)} s: ${x.ms.toFixed(0)} ms`);
    if (slow.length) t.comment(`status answers over 100 ms: ${slow.join(', ')}`);
    t.ok(
      (res.ended.auth_failed ?? 0) >= 100,
      `the attacker was refused AUTHENTICATION_FAILED (${res.ended.auth_failed ?? 0})`,
    );
    // Every attempt shows in the gateway's log, printed or counted as suppressed: two lines each.
    t.ok(
      lines.printed + lines.suppressed >= 2 * (res.ended.auth_failed ?? 0),
      `the gateway logged or counted every failed attempt (${lines.printed} printed + ${lines.suppressed} suppressed)`,
    );
    t.ok(lines.suppressed > 0, 'the log limiter held the attack back');
    t.ok(p.n >= 200, `status asked throughout (${p.n} requests)`);
    // Two cores shared by the attacker, both gateways and the test: an answer now and then waits
    // for a CPU (they are listed above with their times, and the same happens before the attack on
    // a busy machine); the bound is on 97 % of them, and none may take a second.
    t.ok(
      p.p95 < 100 && over <= lat.length * 0.03 && p.max < 1000,
      `status within 100 ms: ${fmtMs(p)}, ${over} over 100 ms`,
    );
    t.same(haFlaps(h, since), [], 'no health change and no route switch on either gateway');
    t.same(haIkeSas(h), sas0, 'the HA IKE SAs are the same ones');
    t.ok(
      pings.received >= pings.transmitted * 0.98,
      `LAN pings kept flowing (${pings.received}/${pings.transmitted})`,
    );
  },
);
