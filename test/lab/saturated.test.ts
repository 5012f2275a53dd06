/**
 * Security issue #11, "saturated primary link": a busy link must not look dead. The HA lab (ha-lab.ts,
 * IKEv2, health checks every 0.1 s x 3 on both gateways, routes 100/0) with a real bottleneck on link 1:
 * 100 Mbit/s each way, shaped where an operator shapes it (veth itself has no line rate):
 *
 *   - upstream on the on-prem gateway's own WAN port (wan1 egress): tbf with pfifo_fast as its child,
 *     whose first band takes twinsec's control priority (SO_PRIORITY 7) ahead of bulk;
 *   - downstream in the ISP's router (r1 egress towards the gateway): htb with a control class chosen
 *     by the outer DSCP (CS6, a u32 filter), as a router that sees only headers does it.
 *
 * Load for SATURATE_S seconds through the primary tunnel, both ways, from LAN host to LAN host: iperf3
 * TCP with 4 streams and an iperf3 UDP flood at 150 Mbit/s (above line rate), each in both directions.
 * Then, still under load, link 1 is cut silently (iptables DROP in the router, as ha.test.ts does).
 *
 * What must hold: no health change of the saturated primary and no route switch on either gateway
 * while the link is only saturated (an idle-standby blip is reported, at most one per gateway), and after the cut both gateways move to the standby within MAX_FAILOVER_MS of it (from the
 * cut to the daemons' own route-switch log lines). Figures printed: the bulk's loss and throughput, the
 * probes' RTTs (p50/p99, from the daemons' status sampled every 100 ms), drops by place (the shapers'
 * classes, the TUN device, the UDP receive buffers, the engine) and the failover times.
 *
 * Before issue #11 (twinsec 515f6da) this failed with 22 route switches and 28 health changes in the 60 s:
 * the probes shared the bulk class at the shaper, and the kernel's answers to the peer's probes the TUN
 * device's ring, which overflows under the flood (thousands of drops a second). Its first CI runs also
 * caught the per-datagram marks in the wrong order (an IP_TOS cmsg after SO_PRIORITY resets the
 * priority): probes then sat in the uplink's bulk band, RTT p50 45 ms, and the primary failed over.
 */
import t from 'tap';
import { sleep } from './ha-cases.js';
import {
  ADDR,
  cutLink1,
  firstEvent,
  type HaLab,
  haEvents,
  quickStatus,
  startHaLab,
  startPing,
  waitHaReady,
} from './ha-lab.js';
import { Lab, type LabProcess, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const SATURATE_S = 60;
const RATE = '100mbit';
const FLOOD = '150M';
const MAX_FAILOVER_MS = 500;
/** The router's htb class for DSCP CS6. */
const CONTROL_CLASS = '1:10';

/**
 * The gateway's own uplink (wan1 egress): tbf at line rate with pfifo_fast as its child, whose first
 * band takes packets of priority 6-7 (TC_PRIO_CONTROL is twinsec's default SO_PRIORITY) ahead of bulk;
 * each band holds txqueuelen packets (500: ~60 ms at line rate).
 */
async function shapeUplink(lab: Lab, ns: string, dev: string): Promise<void> {
  await lab.exec(ns, 'ip', ['link', 'set', dev, 'txqueuelen', '500']);
  await lab.exec(ns, 'tc', [
    'qdisc',
    'add',
    'dev',
    dev,
    'root',
    'handle',
    '1:',
    'tbf',
    'rate',
    RATE,
    'burst',
    '32kb',
    'latency',
    '60ms',
  ]);
  await lab.exec(ns, 'tc', ['qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', 'pfifo_fast']);
}

/**
 * A router's port (r1 egress, the ISP's downlink): htb with a control class (at least 5 Mbit/s, may
 * borrow the whole link, served first) chosen by the outer DSCP CS6, and a bulk class whose FIFO holds
 * 500 packets. This kernel has no cls_basic, so the filter is u32.
 */
async function shapeRouter(lab: Lab, ns: string, dev: string): Promise<void> {
  const tc = (...args: string[]) => lab.exec(ns, 'tc', args);
  await tc('qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '20');
  await tc('class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', RATE);
  for (const [id, rate, prio] of [
    [CONTROL_CLASS, '5mbit', '0'],
    ['1:20', '95mbit', '1'],
  ] as const) {
    await tc(
      'class',
      'add',
      'dev',
      dev,
      'parent',
      '1:1',
      'classid',
      id,
      'htb',
      'rate',
      rate,
      'ceil',
      RATE,
      'prio',
      prio,
    );
  }
  await tc('qdisc', 'add', 'dev', dev, 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '500');
  await tc('qdisc', 'add', 'dev', dev, 'parent', CONTROL_CLASS, 'handle', '10:', 'pfifo', 'limit', '100');
  // The outer header's DSCP CS6 (TOS byte 0xc0 under mask 0xfc), whatever the protocol (ESP, UDP).
  await tc(
    ...['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32'],
    ...['match', 'ip', 'dsfield', '0xc0', '0xfc', 'flowid', CONTROL_CLASS],
  );
}

/** `tc -s qdisc show`: per qdisc handle ("1:" the root, "11:" band 0 ...) sent packets and drops. */
async function qdiscStats(
  lab: Lab,
  ns: string,
  dev: string,
): Promise<Record<string, { sent: number; dropped: number }>> {
  const out = (await lab.exec(ns, 'tc', ['-s', 'qdisc', 'show', 'dev', dev])).stdout;
  const res: Record<string, { sent: number; dropped: number }> = {};
  for (const block of out.split(/\n(?=qdisc )/)) {
    const id = /^qdisc \S+ (\S+)/.exec(block)?.[1];
    const m = /Sent \d+ bytes (\d+) pkt \(dropped (\d+)/.exec(block);
    if (id && m) res[id] = { sent: Number(m[1]), dropped: Number(m[2]) };
  }
  return res;
}

/** `tc -s class show`: per class sent packets and drops. */
async function classStats(
  lab: Lab,
  ns: string,
  dev: string,
): Promise<Record<string, { sent: number; dropped: number }>> {
  const out = (await lab.exec(ns, 'tc', ['-s', 'class', 'show', 'dev', dev])).stdout;
  const res: Record<string, { sent: number; dropped: number }> = {};
  for (const block of out.split(/\n(?=class )/)) {
    const id = /^class htb (\S+)/.exec(block)?.[1];
    const m = /Sent \d+ bytes (\d+) pkt \(dropped (\d+)/.exec(block);
    if (id && m) res[id] = { sent: Number(m[1]), dropped: Number(m[2]) };
  }
  return res;
}

/** TX drops of a device (`ip -s link`: the TUN's queue towards twinsec's TX thread). */
async function txDropped(lab: Lab, ns: string, dev: string): Promise<number> {
  const out = (await lab.exec(ns, 'ip', ['-s', '-j', 'link', 'show', 'dev', dev])).stdout;
  const j = JSON.parse(out) as { stats64?: { tx?: { dropped?: number } } }[];
  return j[0]?.stats64?.tx?.dropped ?? 0;
}

/** UDP receive-buffer overflows in a namespace (/proc/net/snmp, Udp RcvbufErrors). */
async function rcvbufErrors(lab: Lab, ns: string): Promise<number> {
  const lines = (await lab.exec(ns, 'cat', ['/proc/net/snmp'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const vals = lines[1]?.split(/\s+/) ?? [];
  return Number(vals[names.indexOf('RcvbufErrors')] ?? 0);
}

interface Snapshot {
  wan1: Record<string, { sent: number; dropped: number }>;
  r1: Record<string, { sent: number; dropped: number }>;
  tunOn: number;
  tunCloud: number;
  rcvOn: number;
  rcvCloud: number;
  engineOn: Record<string, number>;
  engineCloud: Record<string, number>;
}

async function snapshot(h: HaLab): Promise<Snapshot> {
  const drops = async (tw: typeof h.onprem) => (await quickStatus(tw)).drops?.esp ?? {};
  return {
    wan1: await qdiscStats(h.lab, h.ns.onGw, 'wan1'),
    r1: await classStats(h.lab, h.ns.router, 'r1'),
    tunOn: await txDropped(h.lab, h.ns.onGw, h.onprem.tunName),
    tunCloud: await txDropped(h.lab, h.ns.cloudGw, h.cloud!.tunName),
    rcvOn: await rcvbufErrors(h.lab, h.ns.onGw),
    rcvCloud: await rcvbufErrors(h.lab, h.ns.cloudGw),
    engineOn: await drops(h.onprem),
    engineCloud: await drops(h.cloud!),
  };
}

function delta(a: Snapshot, b: Snapshot): string {
  const cls = (x: Snapshot['r1'], y: Snapshot['r1']) =>
    ['1:10', '1:20']
      .map(
        (id) =>
          `${id} sent ${(y[id]?.sent ?? 0) - (x[id]?.sent ?? 0)} dropped ${(y[id]?.dropped ?? 0) - (x[id]?.dropped ?? 0)}`,
      )
      .join(', ');
  const eng = (x: Record<string, number>, y: Record<string, number>) =>
    JSON.stringify(
      Object.fromEntries(
        Object.keys(y)
          .map((k) => [k, y[k]! - (x[k] ?? 0)])
          .filter(([, v]) => v !== 0),
      ),
    );
  return [
    `shaper wan1 (on-prem uplink, tbf + pfifo_fast): sent ${(b.wan1['1:']?.sent ?? 0) - (a.wan1['1:']?.sent ?? 0)} dropped ${(b.wan1['1:']?.dropped ?? 0) - (a.wan1['1:']?.dropped ?? 0)}`,
    `shaper r1 (router downlink, htb): ${cls(a.r1, b.r1)}`,
    `TUN tx dropped: on-prem ${b.tunOn - a.tunOn}, cloud ${b.tunCloud - a.tunCloud}`,
    `UDP RcvbufErrors: on-prem ${b.rcvOn - a.rcvOn}, cloud ${b.rcvCloud - a.rcvCloud}`,
    `engine drops: on-prem ${eng(a.engineOn, b.engineOn)}, cloud ${eng(a.engineCloud, b.engineCloud)}`,
  ].join('\n');
}

/** Queue depths in bytes at one instant: UDP/raw socket queues of a gateway namespace, a qdisc backlog. */
async function queues(lab: Lab, ns: string, dev: string): Promise<Record<string, number>> {
  const out = (
    await lab.exec(ns, 'sh', ['-c', `cat /proc/net/udp /proc/net/raw; tc -s qdisc show dev ${dev}`])
  ).stdout;
  const res: Record<string, number> = { rx: 0, tx: 0, qdisc: 0, qpkts: 0 };
  for (const line of out.split('\n')) {
    const m = /^\s*\d+: [0-9A-F]+:([0-9A-F]+) [0-9A-F]+:[0-9A-F]+ [0-9A-F]+ ([0-9A-F]+):([0-9A-F]+)/.exec(
      line,
    );
    if (m) {
      res.tx = Math.max(res.tx!, Number.parseInt(m[2]!, 16));
      res.rx = Math.max(res.rx!, Number.parseInt(m[3]!, 16));
    }
    const b = /backlog (\d+)b (\d+)p/.exec(line);
    if (b && res.qpkts === 0) {
      res.qdisc = Number(b[1]);
      res.qpkts = Number(b[2]);
    }
  }
  return res;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))]! : Number.NaN;
};

/**
 * The traffic generators run at nice 10: in the lab the LAN hosts share the two CPUs with the gateways,
 * which in reality are separate machines; without this, eight busy iperf3 processes starve the
 * gateways' packet threads and every probe waits for a CPU (tens of ms) instead of in a queue.
 */
const NICE = ['-n', '10', 'iperf3'];

/** An iperf3 client run (JSON output) in `ns` against `server`:`port`. */
function iperf(lab: Lab, ns: string, server: string, port: number, args: string[], seconds: number) {
  return lab.exec(
    ns,
    'nice',
    [...NICE, '-c', server, '-p', String(port), '-t', String(seconds), '-J', ...args],
    {
      timeoutMs: (seconds + 30) * 1000,
      check: false,
    },
  );
}

interface IperfJson {
  end?: {
    sum?: { lost_percent?: number; bits_per_second?: number; lost_packets?: number; packets?: number };
    sum_received?: { bits_per_second?: number };
  };
  error?: string;
}

const skip = labUnavailable() ?? twinsecUnavailable();
/**
 * The probes' median RTT under load must stay well below the bulk queue's depth (tbf with 500-packet
 * bands: ~55 ms at line rate): a median near it means the marks did not put them ahead of bulk.
 */
const MAX_PROBE_RTT_P50_MS = 15;
// About 80 s (60 s of load, the set-up, the cut), beyond tap's default 30 s when run on its own.
t.setTimeout(240_000);

t.test(
  'saturated primary link: no failover for 60 s of TCP + UDP flood, a silent cut under load fails over <= 500 ms',
  { skip, timeout: 180_000 },
  async (t) => {
    const lab = new Lab(t);
    const h = await startHaLab(lab, { interval: 0.1, retries: 3, holdDown: 3 });
    t.teardown(() => {
      if (t.passing()) return;
      for (const [tw, name] of [
        [h.onprem, 'on-prem'],
        [h.cloud!, 'cloud'],
      ] as const) {
        const lines = tw.log().split('\n');
        t.comment(`--- twinsecd ${name} log (tail) ---\n${lines.slice(-30).join('\n')}`);
      }
    });
    await shapeUplink(lab, h.ns.onGw, 'wan1');
    await shapeRouter(lab, h.ns.router, 'r1');
    await waitHaReady(h, 25_000);

    const servers: LabProcess[] = [];
    for (const port of [5201, 5202, 5203, 5204]) {
      servers.push(lab.spawn(h.ns.cloudLan, 'nice', [...NICE, '-s', '-1', '-p', String(port)]));
    }
    await sleep(500);
    const s0 = await snapshot(h);
    const loadStart = Date.now();
    const secs = SATURATE_S + 4; // the flood outlasts the cut
    const runs = [
      { what: 'TCP x4 up', p: iperf(lab, h.ns.onLan, ADDR.cloudLanHost, 5201, ['-P', '4'], secs) },
      { what: 'TCP x4 down', p: iperf(lab, h.ns.onLan, ADDR.cloudLanHost, 5202, ['-P', '4', '-R'], secs) },
      {
        what: `UDP ${FLOOD} up`,
        p: iperf(lab, h.ns.onLan, ADDR.cloudLanHost, 5203, ['-u', '-b', FLOOD, '-l', '1300'], secs),
      },
      {
        what: `UDP ${FLOOD} down`,
        p: iperf(lab, h.ns.onLan, ADDR.cloudLanHost, 5204, ['-u', '-b', FLOOD, '-l', '1300', '-R'], secs),
      },
    ];
    // A user's ping through the same tunnel: bulk, not marked, it shares the flood's fate.
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 50);
    const rtts: { on: number[]; cloud: number[] } = { on: [], cloud: [] };
    while (Date.now() - loadStart < SATURATE_S * 1000) {
      const [on, cloud] = await Promise.all([quickStatus(h.onprem), quickStatus(h.cloud!)]);
      const r1 = on.connections.t1?.lastRttMs;
      const r2 = cloud.connections.c1?.lastRttMs;
      if (r1 != null) rtts.on.push(r1);
      if (r2 != null) rtts.cloud.push(r2);
      if (process.env.TWINSEC_SATURATED_DIAG === '1') {
        const [qo, qc, qr] = await Promise.all([
          queues(lab, h.ns.onGw, 'wan1'),
          queues(lab, h.ns.cloudGw, 'wan0'),
          queues(lab, h.ns.router, 'r1'),
        ]);
        t.comment(
          `diag +${Date.now() - loadStart} rtt ${r1} ${r2} on ${JSON.stringify(qo)} cloud ${JSON.stringify(qc)} r1 ${JSON.stringify(qr)}`,
        );
      }
      await sleep(100);
    }
    const s1 = await snapshot(h);
    const loadEnd = Date.now();

    // The silent cut, flood still running.
    const cutAt = await cutLink1(lab, h.ns, 'silent');
    await sleep(2500);
    const pings = await ping.stop();
    const results = await Promise.all(runs.map(async (r) => ({ what: r.what, res: await r.p })));

    const events = [...haEvents(h.onprem, 'on-prem'), ...haEvents(h.cloud!, 'cloud')];
    const underLoad = events.filter((e) => e.at >= loadStart && e.at < cutAt - 100);
    const switches = underLoad.filter((e) => e.event === 'route-switch');
    const healthChanges = underLoad.filter((e) => e.event === 'health');
    t.comment(`under load (${((loadEnd - loadStart) / 1000).toFixed(1)} s):`);
    for (const line of delta(s0, s1).split('\n')) t.comment(`  ${line}`);
    for (const { what, res } of results) {
      let j: IperfJson = {};
      try {
        j = JSON.parse(res.stdout) as IperfJson;
      } catch {
        /* reported below */
      }
      const bps = j.end?.sum_received?.bits_per_second ?? j.end?.sum?.bits_per_second ?? 0;
      const loss = j.end?.sum?.lost_percent;
      t.comment(
        `  iperf3 ${what}: ${(bps / 1e6).toFixed(1)} Mbit/s${loss !== undefined ? `, loss ${loss.toFixed(1)} %` : ''}${j.error ? ` (${j.error})` : ''}`,
      );
    }
    const pingLoss = pings.transmitted ? (100 * (pings.transmitted - pings.received)) / pings.transmitted : 0;
    t.comment(
      `  LAN ping (bulk, 20/s, through the cut): ${pings.received}/${pings.transmitted}, ${pingLoss.toFixed(1)} % lost`,
    );
    t.comment(
      `  probe RTT (status every 100 ms): on-prem t1 p50 ${pct(rtts.on, 0.5).toFixed(2)} ms p99 ${pct(rtts.on, 0.99).toFixed(2)} ms; cloud c1 p50 ${pct(rtts.cloud, 0.5).toFixed(2)} ms p99 ${pct(rtts.cloud, 0.99).toFixed(2)} ms`,
    );
    t.comment(`  health changes: ${healthChanges.length}, route switches: ${switches.length}`);
    for (const e of underLoad) t.comment(`    +${e.at - loadStart} ms ${e.side} ${e.msg}`);
    // The saturated primary must never look dead, and no route may move: that is a failover. The
    // idle standby shares the two CPUs with the load generators of this one-box lab; a blip of it
    // (seen once in five loaded runs: down and up within 16 ms) is reported, not a failover.
    const primary = healthChanges.filter((e) => e.connection === 't1' || e.connection === 'c1');
    t.equal(primary.length, 0, 'no health change of the saturated primary on either gateway');
    t.equal(
      switches.length,
      0,
      'no route switch (failover) on either gateway while the link is only saturated',
    );
    t.ok(healthChanges.length <= 2, `standby health blips: ${healthChanges.length - primary.length}`);
    for (const [side, xs] of [
      ['on-prem t1', rtts.on],
      ['cloud c1', rtts.cloud],
    ] as const) {
      const p50 = pct(xs, 0.5);
      t.ok(
        p50 < MAX_PROBE_RTT_P50_MS,
        `${side}: probe RTT p50 ${p50.toFixed(2)} ms < ${MAX_PROBE_RTT_P50_MS} ms`,
      );
    }

    for (const [side, from, to] of [
      ['on-prem', 't1', 't2'],
      ['cloud', 'c1', 'c2'],
    ] as const) {
      const sw = firstEvent(events, cutAt - 100, (e) => e.side === side && e.event === 'route-switch');
      const ms = sw ? sw.at - cutAt : Number.POSITIVE_INFINITY;
      t.comment(
        `${side}: failover after the cut under load: ${sw ? `${ms} ms (${sw.from} -> ${sw.to})` : 'none'}`,
      );
      t.ok(sw && sw.from === from && sw.to === to, `${side}: the route moved ${from} -> ${to}`);
      t.ok(ms <= MAX_FAILOVER_MS, `${side}: failover ${ms} ms <= ${MAX_FAILOVER_MS} ms`);
    }
    for (const s of servers) await s.stop('SIGTERM', 1000);
  },
);
