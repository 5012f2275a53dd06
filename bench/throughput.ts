/**
 * Throughput and latency-under-load benchmark (`npm run bench`, needs root, strongSwan, iperf3).
 *
 *   node dist/bench/throughput.js [--time SECONDS] [--only veth,strongswan,twinsec-esp,twinsec-udp,twinsec-route]
 *
 * Each path gets two fresh namespaces joined by a veth:
 *   [a] wan0 192.0.2.1/24 <-> wan0 192.0.2.2/24 [b],  LANs 198.18.1.1 (a) and 198.19.1.1 (b) on lo
 * and is measured with one iperf3 TCP stream a -> b between the LAN addresses (`-t 8 -J`), the CPU time
 * the two gateway daemons used meanwhile (/proc/PID/stat utime+stime), and ping RTT through the tunnel
 * while `iperf3 -u -b 0` floods it (latency under load). Paths: plain veth (no tunnel), strongSwan <->
 * strongSwan (charon, kernel-libipsec, ESP-in-UDP), twinsec <-> twinsec over raw ESP and over UDP, and
 * twinsec route-based (each side's connection owns a tunnel interface, 0.0.0.0/0 selectors, the LANs
 * routed into it by static routes; ESP-in-UDP), all AES-256-GCM. Everything is removed at the end, also on failure or Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, type LabProcess, labUnavailable, waitFor } from '../test/lab/netns.js';
import { charonUnavailable, startCharon } from '../test/lab/strongswan.js';
import { startTwinsec, twinsecUnavailable } from '../test/lab/twinsec.js';
import { cpuSeconds } from './proc.js';

const A_WAN = '192.0.2.1';
const B_WAN = '192.0.2.2';
const A_LAN = '198.18.1.0/24';
const B_LAN = '198.19.1.0/24';
const A_HOST = '198.18.1.1';
const B_HOST = '198.19.1.1';
const PSK = 'bench-psk-0123456789abcdef';
const IKE = 'aes256gcm16-prfsha256-x25519';
const ESP = 'aes256gcm16';
/** UDP flood datagram size: fits the 1400-byte tunnel MTU without fragments. */
const UDP_LEN = 1300;

type PathName = 'veth' | 'strongswan' | 'twinsec-esp' | 'twinsec-udp' | 'twinsec-route';
const ALL: PathName[] = ['veth', 'strongswan', 'twinsec-esp', 'twinsec-udp', 'twinsec-route'];

interface Result {
  path: string;
  mbps?: number;
  /** CPU seconds of both gateway daemons during the TCP run. */
  cpuSec?: number;
  gbits?: number;
  retransmits?: number;
  rtt?: { min: number; avg: number; max: number; loss: number; floodMbps: number };
  /** A ping gets through within 10 s after the flood. */
  recovered?: boolean;
  /** ESP drop counters at the end (twinsec). */
  drops?: string;
  error?: string;
}

interface Topology {
  lab: Lab;
  a: string;
  b: string;
  /** Gateway daemon processes whose CPU time counts. */
  daemons: LabProcess[];
  /** Address the client binds to and the server listens on. */
  from: string;
  to: string;
  /** Data-plane drop counters (non-zero ones) of each gateway, read at the end. */
  drops?: () => Promise<string>;
}

async function baseTopology(lab: Lab): Promise<{ a: string; b: string }> {
  const a = await lab.addNamespace('a');
  const b = await lab.addNamespace('b');
  await lab.link(
    { ns: a, ifname: 'wan0', address: `${A_WAN}/24` },
    { ns: b, ifname: 'wan0', address: `${B_WAN}/24` },
  );
  await lab.loopbackAddresses(a, `${A_HOST}/32`);
  await lab.loopbackAddresses(b, `${B_HOST}/32`);
  return { a, b };
}

async function pingOnce(lab: Lab, ns: string, from: string, to: string): Promise<boolean> {
  const r = await lab.exec(ns, 'ping', ['-n', '-c', '1', '-W', '1', '-I', from, to], { check: false });
  return r.code === 0;
}

async function setupVeth(lab: Lab): Promise<Topology> {
  const { a, b } = await baseTopology(lab);
  return { lab, a, b, daemons: [], from: A_WAN, to: B_WAN };
}

async function setupStrongswan(lab: Lab): Promise<Topology> {
  const { a, b } = await baseTopology(lab);
  const conn = (local: string, remote: string, lts: string, rts: string) => ({
    name: 'gw',
    version: 2 as const,
    local,
    remote,
    psk: PSK,
    ikeProposals: [IKE],
    espProposals: [ESP],
    localTs: [lts],
    remoteTs: [rts],
    startAction: 'none' as const,
  });
  const ca = await startCharon(lab, a, {
    dir: lab.tempDir('charon-a'),
    conns: [conn(A_WAN, B_WAN, A_LAN, B_LAN)],
  });
  const cb = await startCharon(lab, b, {
    dir: lab.tempDir('charon-b'),
    conns: [conn(B_WAN, A_WAN, B_LAN, A_LAN)],
  });
  await ca.initiate('gw', { timeoutSec: 10 });
  await ca.waitFor(() => ca.established('gw'), 10_000, 'charon a established');
  await waitFor(() => pingOnce(lab, a, A_HOST, B_HOST), 10_000, {
    what: 'ping through strongSwan',
    intervalMs: 200,
  });
  return { lab, a, b, daemons: [ca.proc, cb.proc], from: A_HOST, to: B_HOST };
}

async function setupTwinsec(lab: Lab, encapsulation: 'esp' | 'udp', routeBased = false): Promise<Topology> {
  const { a, b } = await baseTopology(lab);
  const cfg = (
    local: string,
    remote: string,
    lts: string,
    rts: string,
    start: 'initiate' | 'listen',
    inside: string,
  ) => ({
    log: { level: 'info' },
    connections: {
      t1: {
        version: 2 as const,
        local,
        remote,
        psk: PSK,
        ike: { proposals: [IKE], lifetime: 3600 },
        esp: { proposals: [ESP], lifetime: 3600 },
        localSubnets: [routeBased ? '0.0.0.0/0' : lts],
        remoteSubnets: [routeBased ? '0.0.0.0/0' : rts],
        start,
        encapsulation,
        ...(routeBased ? { interface: { name: 'tw-t1', address: inside } } : {}),
      },
    },
    routes: routeBased ? [] : [{ destination: rts, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  const tb = await startTwinsec(lab, b, cfg(B_WAN, A_WAN, B_LAN, A_LAN, 'listen', '169.254.40.2/30'));
  const ta = await startTwinsec(lab, a, cfg(A_WAN, B_WAN, A_LAN, B_LAN, 'initiate', '169.254.40.1/30'));
  try {
    await ta.waitForState('t1', 'established', 12_000);
    await tb.waitForState('t1', 'established', 5000);
    if (routeBased) {
      // The host's routing decides what enters the tunnel interface (no health check: it has
      // carrier once the CHILD_SA is installed).
      await lab.exec(a, 'ip', ['route', 'add', B_LAN, 'dev', 'tw-t1', 'src', A_HOST]);
      await lab.exec(b, 'ip', ['route', 'add', A_LAN, 'dev', 'tw-t1', 'src', B_HOST]);
    }
    await waitFor(() => pingOnce(lab, a, A_HOST, B_HOST), 10_000, {
      what: 'ping through twinsec',
      intervalMs: 200,
    });
  } catch (e) {
    throw new Error(
      `${(e as Error).message}\n--- twinsecd a ---\n${ta.log()}\n--- twinsecd b ---\n${tb.log()}`,
    );
  }
  const nonZero = async (tw: typeof ta) => {
    const st = (await tw.status()) as { drops?: { esp?: Record<string, number> } };
    return JSON.stringify(Object.fromEntries(Object.entries(st.drops?.esp ?? {}).filter(([, v]) => v > 0)));
  };
  const drops = async () => `a ${await nonZero(ta)}, b ${await nonZero(tb)}`;
  return { lab, a, b, daemons: [ta.proc, tb.proc], from: A_HOST, to: B_HOST, drops };
}

async function startIperfServer(topo: Topology, port: number): Promise<LabProcess> {
  const server = topo.lab.spawn(topo.b, 'iperf3', ['-s', '-1', '-B', topo.to, '-p', String(port)]);
  await waitFor(
    async () => {
      const r = await topo.lab.exec(topo.b, 'ss', ['-Hltn', `sport = :${port}`], { check: false });
      return r.stdout.includes(String(port));
    },
    5000,
    { what: `iperf3 server on ${port}`, intervalMs: 100 },
  );
  return server;
}

interface IperfJson {
  end?: {
    sum_received?: { bytes: number; bits_per_second: number };
    sum_sent?: { retransmits?: number };
    sum?: { bits_per_second: number; lost_percent?: number };
  };
  error?: string;
}

async function tcpRun(topo: Topology, seconds: number, r: Result): Promise<void> {
  const server = await startIperfServer(topo, 5201);
  const cpu0 = topo.daemons.reduce((s, p) => s + cpuSeconds(p.pid), 0);
  const out = await topo.lab.exec(
    topo.a,
    'iperf3',
    ['-c', topo.to, '-B', topo.from, '-p', '5201', '-t', String(seconds), '-J'],
    { check: false, timeoutMs: (seconds + 30) * 1000 },
  );
  const cpu1 = topo.daemons.reduce((s, p) => s + cpuSeconds(p.pid), 0);
  await server.stop('SIGTERM', 2000);
  let j: IperfJson;
  try {
    j = JSON.parse(out.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${out.stdout}${out.stderr}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const bytes = j.end?.sum_received?.bytes ?? 0;
  r.mbps = (j.end?.sum_received?.bits_per_second ?? 0) / 1e6;
  r.gbits = (bytes * 8) / 1e9;
  r.retransmits = j.end?.sum_sent?.retransmits;
  if (topo.daemons.length > 0) r.cpuSec = cpu1 - cpu0;
}

/** Mean of iperf3's per-interval bitrates (text output), Mbit/s. */
function meanIntervalMbps(log: string): number {
  const rates: number[] = [];
  for (const m of log.matchAll(/sec\s+[\d.]+ [KMG]?Bytes\s+([\d.]+) ([KMG]?)bits\/sec/g)) {
    const unit = m[2] === 'G' ? 1000 : m[2] === 'M' ? 1 : m[2] === 'K' ? 0.001 : 1e-6;
    rates.push(Number(m[1]) * unit);
  }
  // The last line is iperf3's summary when it finished; the intervals alone are enough for a mean.
  return rates.length === 0 ? 0 : rates.reduce((a, b) => a + b, 0) / rates.length;
}

async function latencyUnderLoad(topo: Topology, r: Result): Promise<void> {
  const server = await startIperfServer(topo, 5202);
  const floodSec = 7;
  // Text output with --forceflush: a flood may starve iperf3's own control connection through the
  // tunnel, so the client is stopped by us if it cannot finish its result exchange.
  const flood = topo.lab.spawn(topo.a, 'iperf3', [
    '-c',
    topo.to,
    '-B',
    topo.from,
    '-p',
    '5202',
    '-u',
    '-b',
    '0',
    '-l',
    String(UDP_LEN),
    '-t',
    String(floodSec),
    '--forceflush',
  ]);
  await new Promise((res) => setTimeout(res, 1500));
  const ping = await topo.lab.exec(
    topo.a,
    'ping',
    ['-n', '-q', '-c', '20', '-i', '0.2', '-W', '2', '-I', topo.from, topo.to],
    { check: false, timeoutMs: 30_000 },
  );
  await Promise.race([flood.exited, new Promise((res) => setTimeout(res, (floodSec + 3) * 1000))]);
  await flood.stop('SIGTERM', 2000);
  await server.stop('SIGTERM', 2000);
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(ping.stdout);
  const loss = Number(/([\d.]+)% packet loss/.exec(ping.stdout)?.[1] ?? 100);
  r.rtt = {
    min: m ? Number(m[1]) : Number.NaN,
    avg: m ? Number(m[2]) : Number.NaN,
    max: m ? Number(m[3]) : Number.NaN,
    loss,
    floodMbps: meanIntervalMbps(flood.log()),
  };
  // Does the tunnel carry traffic again once the flood is over?
  r.recovered = await waitFor(() => pingOnce(topo.lab, topo.a, topo.from, topo.to), 10_000, {
    intervalMs: 500,
  }).then(
    () => true,
    () => false,
  );
}

async function measure(
  label: string,
  setup: (lab: Lab) => Promise<Topology>,
  seconds: number,
  unavailable: string | undefined,
): Promise<Result> {
  const r: Result = { path: label };
  if (unavailable) {
    r.error = unavailable;
    return r;
  }
  const lab = new Lab();
  try {
    process.stderr.write(`bench: ${label}: setting up\n`);
    const topo = await setup(lab);
    process.stderr.write(`bench: ${label}: iperf3 TCP ${seconds} s\n`);
    await tcpRun(topo, seconds, r);
    process.stderr.write(`bench: ${label}: ping under UDP flood\n`);
    await latencyUnderLoad(topo, r);
    if (topo.drops) r.drops = await topo.drops();
  } catch (e) {
    r.error = (e as Error).message;
  } finally {
    await lab.cleanup();
  }
  return r;
}

const fmt = (n: number | undefined, digits = 1) =>
  n === undefined || Number.isNaN(n) ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

function table(results: Result[]): string {
  const sw = results.find((r) => r.path.startsWith('strongSwan'))?.mbps;
  const rows = [
    [
      'path',
      'Mbit/s',
      'x strongSwan',
      'CPU s/Gbit',
      'TCP retr',
      'RTT under load min/avg/max ms',
      'ping loss',
      'flood Mbit/s',
      'after flood',
    ],
  ];
  for (const r of results) {
    if (r.error && r.mbps === undefined) {
      rows.push([r.path, `error: ${r.error.split('\n')[0]}`, '', '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      r.path,
      fmt(r.mbps, 0),
      sw && r.mbps !== undefined ? `${fmt(r.mbps / sw, 2)}` : '-',
      r.cpuSec !== undefined && r.gbits ? fmt(r.cpuSec / r.gbits, 2) : '-',
      r.retransmits === undefined ? '-' : String(r.retransmits),
      r.rtt ? `${fmt(r.rtt.min, 3)} / ${fmt(r.rtt.avg, 3)} / ${fmt(r.rtt.max, 3)}` : '-',
      r.rtt ? `${fmt(r.rtt.loss, 0)}%` : '-',
      r.rtt ? fmt(r.rtt.floodMbps, 0) : '-',
      r.recovered === undefined ? '-' : r.recovered ? 'ping ok' : 'no ping in 10 s',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')[0]!
      .trim();
  } catch {
    return '?';
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { time: { type: 'string', default: '8' }, only: { type: 'string' } },
    strict: true,
  });
  const seconds = Number(values.time);
  const only = values.only ? (values.only.split(',') as PathName[]) : ALL;
  console.log(
    `$ node ${[relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ')}   # npm run bench`,
  );
  const why = labUnavailable();
  if (why) {
    console.error(`bench: ${why}`);
    return 2;
  }
  Lab.sweepStale();
  const commit = version('git', ['rev-parse', '--short', 'HEAD']);
  console.log(
    `# ${new Date().toISOString()}  commit ${commit}  node ${process.version}  kernel ${version('uname', ['-r'])}  ` +
      `${version('nproc', [])} vCPUs  ${version('iperf3', ['--version'])}`,
  );
  console.log(
    `# one iperf3 TCP stream a -> b for ${seconds} s between LAN addresses; AES-256-GCM; ` +
      `CPU = utime+stime of both gateway daemons; RTT = 20 pings while iperf3 -u -b 0 -l ${UDP_LEN} floods a -> b`,
  );
  const results: Result[] = [];
  const noSwan = charonUnavailable();
  const noTw = twinsecUnavailable();
  for (const p of only) {
    switch (p) {
      case 'veth':
        results.push(await measure('plain veth (no tunnel)', setupVeth, seconds, undefined));
        break;
      case 'strongswan':
        results.push(
          await measure('strongSwan <-> strongSwan (libipsec, UDP)', setupStrongswan, seconds, noSwan),
        );
        break;
      case 'twinsec-esp':
        results.push(
          await measure('twinsec <-> twinsec (raw ESP)', (lab) => setupTwinsec(lab, 'esp'), seconds, noTw),
        );
        break;
      case 'twinsec-udp':
        results.push(
          await measure('twinsec <-> twinsec (ESP-in-UDP)', (lab) => setupTwinsec(lab, 'udp'), seconds, noTw),
        );
        break;
      case 'twinsec-route':
        results.push(
          await measure(
            'twinsec <-> twinsec route-based (ESP-in-UDP)',
            (lab) => setupTwinsec(lab, 'udp', true),
            seconds,
            noTw,
          ),
        );
        break;
      default:
        console.error(`bench: unknown path ${p} (known: ${ALL.join(', ')})`);
        return 2;
    }
  }
  console.log(table(results));
  for (const r of results) {
    if (r.error) console.log(`\n${r.path}: ${r.error}`);
  }
  for (const r of results) {
    if (r.drops) console.log(`${r.path}: ESP drops by reason at the end: ${r.drops}`);
  }
  const tw = results.filter((r) => r.path.startsWith('twinsec') && r.rtt);
  for (const r of tw) {
    const ok = (r.rtt?.max ?? Number.POSITIVE_INFINITY) < 50;
    console.log(
      `${r.path}: max RTT under load ${fmt(r.rtt?.max, 3)} ms ${ok ? '< 50 ms: OK' : '>= 50 ms: ABOVE TARGET'}`,
    );
  }
  return results.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
