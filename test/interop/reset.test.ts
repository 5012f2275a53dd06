/**
 * healthCheck.resetAfter interop: a strongSwan peer killed with -9 and started again at once (it has
 * forgotten every SA; no DPD on either side), twinsec's health check probing the peer's LAN host
 * through the tunnel. The stale SA still looks established on twinsec's side and carries nothing.
 *
 * (a) IKEv2, twinsec initiates: after `resetAfter` seconds of failing checks twinsec deletes the SA
 *     (DELETE, bounded wait) and negotiates again; LAN pings resume within resetAfter + a few seconds.
 * (b) the same with IKEv1 main mode.
 * (c) IKEv2, twinsec listens, charon initiates (start_action = start): the restarted charon initiates
 *     again with INITIAL_CONTACT; twinsec accepts and drops the stale SA. Whether a reset fired is
 *     recorded, not required (the peer recovers the tunnel here, usually before resetAfter).
 *
 * Measured and reported per case: kill -> first answered LAN ping, health down -> connection-reset.
 * The LAN ping is one background `ping -D -O -i 0.1` (its replies stamped with the wall clock).
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]   (LANs on loopback /32 addresses)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Lab, type LabProcess, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, settleToOneIkeSa, startCharon } from '../lab/strongswan.js';
import {
  startTwinsec,
  type Twinsec,
  type TwinsecConfigYaml,
  type TwinsecLogEvent,
  twinsecUnavailable,
} from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.7.0/24';
const SW_LAN = '198.19.7.0/24';
const TW_HOST = '198.18.7.1';
const SW_HOST = '198.19.7.1';
const PSK = 'reset-interop-test-psk-0123456789';
const METRICS = '127.0.0.1:9469';

/** Health check: 5 probes/s, down after 3 lost (~0.6-0.8 s after the peer died). */
const INTERVAL = 0.2;
const RETRIES = 3;
/** Seconds of failing checks on an established SA before the reset: short, but well above detection. */
const RESET_AFTER = 3;
/**
 * kill -> ping answered again, on top of RESET_AFTER (3 s):
 *   detection: INTERVAL x RETRIES plus up to one interval for the tick        ~0.8 s
 *   the DELETE's bounded wait (the restarted charon does not answer it; IKEv2  1.5 s
 *   only: an IKEv1 DELETE is not answered, twinsec does not wait for one)
 *   one IKE negotiation (IKEv1 main + quick mode: 4 round trips, 2 DH)          <0.5 s
 *   the ping's own interval                                                     0.1 s
 *   (charon's restart, ~0.5-1 s, runs while the reset timer does)
 * about 3 s, plus 3 s for a loaded 2-CPU machine with other tests running: bound 9 s. Measured here:
 * IKEv2 ~5.2-5.5 s, IKEv1 ~3.7-3.9 s. Without the reset the tunnel never comes back (no DPD, SA
 * lifetimes of 20 min and more), so this bound does fail when the reset does not happen.
 */
const RECOVERY_SLACK_S = 6;
/** The reset must not come before resetAfter of down health (log timestamps are ms; timers never early). */
const EARLY_TOLERANCE_MS = 100;
/** ... nor much after it (a busy event loop delays timers). */
const LATE_TOLERANCE_MS = 1500;

const tail = (s: string | undefined, n: number) => (s ?? '').split('\n').slice(-n).join('\n');

interface Case {
  name: string;
  version: 1 | 2;
  twRole: 'initiate' | 'listen';
  ike: string;
  esp: string;
}

const CASES: Case[] = [
  {
    name: '(a) IKEv2, twinsec initiates',
    version: 2,
    twRole: 'initiate',
    ike: 'aes256gcm16-prfsha256-x25519',
    esp: 'aes256gcm16-x25519',
  },
  {
    name: '(b) IKEv1 main mode, twinsec initiates',
    version: 1,
    twRole: 'initiate',
    ike: 'aes128-sha256-modp2048',
    esp: 'aes256gcm16',
  },
  {
    name: '(c) IKEv2, twinsec listens, charon initiates',
    version: 2,
    twRole: 'listen',
    ike: 'aes256gcm16-prfsha256-x25519',
    esp: 'aes256gcm16-x25519',
  },
];

/** The real charon processes in `ns` (by /proc/PID/comm; the spawned pid may be a wrapper's). */
async function charonPids(lab: Lab, ns: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await lab.pids(ns)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'charon') out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Answered echoes of a `ping -D` log: wall-clock receive time (ms) and sequence number. */
function pingReplies(log: string): { at: number; seq: number }[] {
  const out: { at: number; seq: number }[] = [];
  for (const line of log.split('\n')) {
    const m = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/.exec(line);
    if (m) out.push({ at: Number(m[1]) * 1000, seq: Number(m[2]) });
  }
  return out;
}

/** `twinsec_connection_resets_total{connection="t1"}` from the daemon's metrics endpoint. */
async function resetsMetric(lab: Lab, ns: string): Promise<number | undefined> {
  const r = await lab.exec(ns, 'curl', ['-sS', '-m', '5', `http://${METRICS}/metrics`], {
    check: false,
    timeoutMs: 10_000,
  });
  const m = /^twinsec_connection_resets_total\{connection="t1"\} (\S+)$/m.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

async function runCase(t: Test, c: Case): Promise<void> {
  const twInit = c.twRole === 'initiate';
  const lab = new Lab(t);
  const charons: Charon[] = [];
  let twinsec: Twinsec | undefined;
  let pinger: LabProcess | undefined;
  // Registered after the lab's teardown, so it runs first (LIFO): the logs still exist.
  t.teardown(() => {
    if (t.passing()) return;
    for (const ch of charons) t.comment(`--- charon log (tail) ---\n${tail(ch.log(), 60)}`);
    t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec?.log(), 100)}`);
    t.comment(`--- ping log (tail) ---\n${tail(pinger?.log(), 40)}`);
  });
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);

  // No DPD on either side: charon's dpd_delay stays at its default 0, twinsec has no `dpd`.
  const startSwan = async () => {
    const ch = await startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version: c.version,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: [c.ike],
          espProposals: [c.esp],
          localTs: [SW_LAN],
          remoteTs: [TW_LAN],
          startAction: twInit ? 'none' : 'start',
        },
      ],
    });
    charons.push(ch);
    return ch;
  };
  const config: TwinsecConfigYaml = {
    log: { level: 'debug' },
    metrics: { listen: METRICS },
    connections: {
      t1: {
        version: c.version,
        local: TW_WAN,
        remote: SW_WAN,
        psk: PSK,
        ike: { proposals: [c.ike], lifetime: 3600 },
        esp: { proposals: [c.esp], lifetime: 1200 },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: c.twRole,
        encapsulation: 'auto',
        healthCheck: {
          source: TW_HOST,
          destination: SW_HOST,
          interval: INTERVAL,
          retries: RETRIES,
          resetAfter: RESET_AFTER,
        },
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  };

  // twinsecd's start (node, native addon) took over 10 s once with other suites loading both CPUs.
  let charon: Charon;
  if (twInit) {
    charon = await startSwan();
    twinsec = await startTwinsec(lab, tw, config, { readyTimeoutMs: 30_000 });
  } else {
    twinsec = await startTwinsec(lab, tw, config, { readyTimeoutMs: 30_000 });
    charon = await startSwan();
  }
  const d = twinsec;
  await charon.waitFor(() => charon.established('gw'), 20_000, 'strongSwan IKE SA ESTABLISHED');
  await d.waitForState('t1', 'established', 15_000);
  await waitFor(async () => (await d.status()).connections.t1?.health === 'up', 10_000, {
    what: 'health check up',
    intervalMs: 100,
  });

  pinger = lab.spawn(tw, 'ping', ['-n', '-D', '-O', '-i', '0.1', '-I', TW_HOST, SW_HOST], {
    logFile: join(lab.tempDir('ping'), 'ping.log'),
  });
  const ping = pinger;
  await waitFor(() => pingReplies(ping.log()).length >= 3, 10_000, {
    what: 'LAN pings answered through the tunnel',
    intervalMs: 100,
  });
  t.pass('tunnel up, health check up, LAN pings answered');
  t.equal((await d.status()).connections.t1?.resets, 0, 'status: resets 0 before the kill');
  const saBefore = d.liveIkeSas('t1');
  t.equal(saBefore.length, 1, `twinsec: one IKE SA for t1 before the kill (${saBefore.join(', ')})`);
  // No wait for the SA to age: a peer's INITIAL_CONTACT replaces an SA it started itself however
  // young (ike-core.ts peerInitialContact); case (c) kills charon a few seconds after the SA came up.
  const eventsBefore = d.logEvents().length;

  // kill -9 and start again at once, same configuration.
  const pids = await charonPids(lab, sw);
  t.equal(pids.length, 1, `one charon process in ${sw} (${pids.join(' ')})`);
  const killedAt = Date.now();
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await charon.proc.exited;
  await waitFor(async () => (await charonPids(lab, sw)).length === 0, 5000, { what: 'charon gone' });
  charon = await startSwan();
  const restarted = Date.now() - killedAt;
  const ch = charon;

  // Recovery: the first echo answered well after the kill (charon died at killedAt: nothing it
  // encrypted can arrive later than the few ms a packet spends in flight on the veth and in twinsecd).
  const bound = (RESET_AFTER + RECOVERY_SLACK_S) * 1000;
  const answered = () => pingReplies(ping.log()).find((r) => r.at > killedAt + 300);
  const first = await waitFor(answered, bound + 5000, {
    what: 'a LAN ping answered after the kill',
    intervalMs: 100,
  }).catch(() => undefined);
  const recovery = first ? Math.round(first.at - killedAt) : Number.NaN;
  const lastBefore = pingReplies(ping.log())
    .filter((r) => r.at <= killedAt + 300)
    .pop();
  t.comment(
    `${c.name}: charon restarted ${restarted} ms after SIGKILL; last echo before at ` +
      `+${lastBefore ? Math.round(lastBefore.at - killedAt) : '?'} ms; first answered after: ` +
      `${first ? `+${recovery} ms (icmp_seq ${first.seq})` : 'none'}`,
  );
  t.ok(first && recovery <= bound, `pings resume ${recovery} ms after the kill (<= ${bound} ms)`);

  // Both sides settle to one SA.
  await ch.waitFor(() => ch.established('gw'), 10_000, 'restarted strongSwan IKE SA ESTABLISHED');
  await d.waitForState('t1', 'established', 10_000);
  await waitFor(async () => (await d.status()).connections.t1?.health === 'up', 10_000, {
    what: 'health check up again',
    intervalMs: 100,
  }).catch(() => {});
  const gw = await settleToOneIkeSa(ch, 'gw');
  t.equal(
    gw.length,
    1,
    `strongSwan holds exactly one IKE SA for gw (${gw.map((s) => `#${s.uniqueId} ${s.state}`).join(', ')})`,
  );
  t.equal(gw[0]?.state, 'ESTABLISHED', 'and it is established');
  t.equal(gw[0]?.initiator, !twInit, twInit ? 'twinsec initiated it' : 'strongSwan initiated it');

  const st = (await d.status()).connections.t1;
  t.equal(st?.state, 'established', 'twinsec: t1 established');
  t.equal(st?.health, 'up', 'twinsec: t1 health up');
  t.equal(st?.children.length, 1, `twinsec: one CHILD_SA for t1 (${st?.children.length})`);
  const live = d.liveIkeSas('t1');
  t.equal(live.length, 1, `twinsec: one established IKE SA for t1 (log: ${live.join(', ')})`);
  t.notSame(live, saBefore, 'twinsec: and not the one from before the kill');

  // The health check went down after the kill; when (and whether) the reset fired.
  const after: TwinsecLogEvent[] = d.logEvents().slice(eventsBefore);
  const down = after.find((e) => e.event === 'health' && e.connection === 't1' && e.to === 'down');
  const reset = after.find((e) => e.event === 'connection-reset' && e.connection === 't1');
  const resets = st?.resets as number | undefined;
  const metric = await resetsMetric(lab, tw);
  // With twinsec as responder the restarted charon's INITIAL_CONTACT may replace the stale SA before
  // the check has lost `retries` probes: then health never goes down, and that is the better outcome.
  if (twInit)
    t.ok(down, `twinsec logged health t1 -> down (+${down ? down.at - killedAt : '?'} ms after the kill)`);
  const downToReset = down && reset ? reset.at - down.at : Number.NaN;
  t.comment(
    `${c.name}: health down +${down ? down.at - killedAt : '?'} ms after the kill; ` +
      (reset
        ? `connection-reset +${reset.at - killedAt} ms (health down -> reset ${downToReset} ms; ` +
          `failedSeconds ${reset.failedSeconds}, attempt ${reset.attempt}, nextAfterSeconds ${reset.nextAfterSeconds})`
        : 'no connection-reset') +
      `; status resets ${resets}; metric ${metric}`,
  );

  if (twInit) {
    t.ok(reset, 'twinsec logged a connection-reset event for t1');
    t.ok(
      downToReset >= RESET_AFTER * 1000 - EARLY_TOLERANCE_MS,
      `the reset came ${downToReset} ms after health went down (>= resetAfter ${RESET_AFTER * 1000} ms - ${EARLY_TOLERANCE_MS})`,
    );
    t.ok(
      downToReset <= RESET_AFTER * 1000 + LATE_TOLERANCE_MS,
      `... and not much later (<= ${RESET_AFTER * 1000 + LATE_TOLERANCE_MS} ms)`,
    );
    t.equal(reset?.attempt, 1, 'first reset of this failure (attempt 1)');
    t.ok(
      typeof reset?.failedSeconds === 'number' && (reset.failedSeconds as number) >= RESET_AFTER - 0.1,
      `failedSeconds ${reset?.failedSeconds} >= resetAfter`,
    );
    t.ok(
      typeof reset?.nextAfterSeconds === 'number' && (reset.nextAfterSeconds as number) >= 2 * RESET_AFTER,
      `nextAfterSeconds ${reset?.nextAfterSeconds} backs off (>= 2 x resetAfter)`,
    );
    t.ok(typeof resets === 'number' && resets >= 1, `status --json: t1 resets ${resets} >= 1`);
    t.ok(
      metric !== undefined && metric >= 1,
      `twinsec_connection_resets_total{connection="t1"} ${metric} >= 1`,
    );
    t.ok(first && reset && first.at >= reset.at, 'the pings came back only after the reset');
  } else {
    // The peer re-initiated; a reset is not required. Its counters agree with the log either way.
    const n = after.filter((e) => e.event === 'connection-reset' && e.connection === 't1').length;
    t.equal(resets, n, `status --json: t1 resets ${resets} = connection-reset lines in the log (${n})`);
    t.equal(metric, n, `twinsec_connection_resets_total{connection="t1"} ${metric} = ${n}`);
    const ic = ch
      .log()
      .split('\n')
      .some((l) => /IKE_AUTH request.*N\(INIT_CONTACT\)/.test(l));
    t.ok(ic, 'the restarted charon sent INITIAL_CONTACT');
  }
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
if (!skip) Lab.sweepStale();

for (const c of CASES)
  t.test(`${c.name}: strongSwan killed -9 and restarted, resetAfter ${RESET_AFTER} s`, { skip }, (t) =>
    runCase(t, c),
  );
