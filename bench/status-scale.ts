/**
 * Status and metrics at scale (`node dist/bench/status-scale.js`): a hub with one connection
 * `sites` (remote %any) and --tunnels sites, each one IKE SA with one CHILD_SA, then how long
 * `twinsec status` (JSON and table) and a metrics scrape take and how big they are.
 *
 *   node dist/bench/status-scale.js [--tunnels 10000] [--per-daemon 100] [--in-flight 4]
 *     [--dpd 30] [--observe 0]
 *
 * No root, no peer: everything runs in this one process on the real clock. The hub is the real
 * Daemon (IKE core, SA table, HA layer, status) with the in-memory data plane, answering on a real
 * control socket and a real metrics HTTP server; the sites are twinsec's own IKEv2 initiators
 * (Daemons of --per-daemon connections each, one address per site), reaching the hub over the
 * exchange tests' in-memory network (test/exchange/fake-network.ts). Every site negotiates for real
 * (IKE_SA_INIT with x25519, IKE_AUTH with PSK). What the figures leave out: the UDP sockets and the
 * native ESP engine (status reads its counters per CHILD SA: a hash lookup each there as here), and
 * the sites share the hub's CPU while they come up (not while measuring: they are idle by then).
 * `twinsec status` is the real CLI, run as a child process against the control socket, so its
 * time includes starting node (about 0.1 s) and parsing the JSON.
 *
 * --observe S: afterwards, watch the hub's DPD probes (INFORMATIONAL requests) for S seconds and
 * print the busiest second (DPD delay --dpd seconds on the hub).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { call } from '../src/control/client.js';
import { DEFAULT_STATUS_LIMIT, formatStatus } from '../src/control/format.js';
import { startControlServer } from '../src/control/server.js';
import { Daemon, type StatusReport, statusOptions } from '../src/daemon.js';
import { MemoryDataPlane } from '../src/dataplane/memory.js';
import { type Clock, systemClock, type TimerHandle } from '../src/ike/core/clock.js';
import { ExchangeType } from '../src/ike/wire/constants.js';
import { startMetrics } from '../src/metrics/server.js';
import { FakeNetwork } from '../test/exchange/fake-network.js';
import { config, conn } from '../test/exchange/pair.js';

const { values } = parseArgs({
  options: {
    tunnels: { type: 'string', default: '10000' },
    'per-daemon': { type: 'string', default: '100' },
    'in-flight': { type: 'string', default: '4' },
    dpd: { type: 'string', default: '30' },
    observe: { type: 'string', default: '0' },
  },
  strict: true,
});
const TUNNELS = Number(values.tunnels);
const PER = Number(values['per-daemon']);
const IN_FLIGHT = Number(values['in-flight']);
const DPD = Number(values.dpd);
const OBSERVE = Number(values.observe);
const HUB = '203.0.113.1';
const TWINSEC = fileURLToPath(new URL('../src/cli/twinsec.js', import.meta.url));

const site = (i: number): string => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** The real clock, counting the hub's live timers. */
function countingClock(): Clock & { live: number } {
  const live = new Set<number>();
  return {
    get live() {
      return live.size;
    },
    now: () => systemClock.now(),
    setTimer(ms, fn, keepAlive) {
      const h: TimerHandle = systemClock.setTimer(
        ms,
        () => {
          live.delete(h.id);
          fn();
        },
        keepAlive,
      );
      live.add(h.id);
      return h;
    },
    clearTimer(t) {
      if (t) live.delete(t.id);
      systemClock.clearTimer(t);
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(2)} MB`;

/**
 * Median wall time (ms) of `runs` calls, the median CPU time (user + system, ms) this process spent
 * meanwhile (what the figure would be on an idle machine: this one is shared), and the last result.
 */
async function timed<T>(
  runs: number,
  fn: () => T | Promise<T>,
): Promise<{ ms: number; cpu: number; result: T }> {
  const times: number[] = [];
  const cpus: number[] = [];
  let result!: T;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    result = await fn();
    times.push(ms(t0, process.hrtime.bigint()));
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { ms: median(times), cpu: median(cpus), result };
}
const both = (r: { ms: number; cpu: number }) => `${r.ms.toFixed(1)} ms (CPU ${r.cpu.toFixed(1)} ms)`;

function cli(args: string[]): Promise<{ ms: number; stdout: string; code: number | null }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [TWINSEC, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('close', (code) =>
      resolve({ ms: ms(t0, process.hrtime.bigint()), stdout: Buffer.concat(out).toString(), code }),
    );
  });
}

async function main(): Promise<void> {
  const net = new FakeNetwork();
  const clock = countingClock();
  const limits = { total: TUNNELS + 1000, halfOpen: TUNNELS + 1000, perPeer: 64, halfOpenPerPeer: 16 };
  // Generous retransmission: the sites and the hub share one CPU while thousands come up.
  const timing = {
    retransmitBase: 30_000,
    retransmitTries: 2,
    halfOpenTimeout: 300_000,
    cookieThreshold: 1e9,
    cookieThresholdPerPeer: 1e9,
  };
  const sites = conn('sites', {
    local: HUB,
    remote: '%any',
    localId: HUB,
    remoteId: '%any',
    start: 'listen',
    localSubnets: ['10.0.0.0/8'],
    remoteSubnets: ['172.16.0.0/12'],
    ...(DPD > 0 ? { dpd: { delay: DPD, timeout: 150 } } : {}),
  });
  const hub = new Daemon(config([sites]), {
    transport: net.transport([HUB]),
    dataplane: new MemoryDataPlane(),
    timing,
    limits,
    clock,
  });
  await hub.start();

  const t0 = Date.now();
  const initiators: Daemon[] = [];
  let established = 0;
  hub.bus.on('child-up', () => established++);
  const daemons = Math.ceil(TUNNELS / PER);
  for (let d = 0; d < daemons; d++) {
    const conns = [];
    for (let i = d * PER; i < Math.min(TUNNELS, (d + 1) * PER); i++) {
      const a = site(i);
      conns.push(
        conn(`s${i}`, {
          local: a,
          remote: HUB,
          localId: a,
          remoteId: HUB,
          localSubnets: [`172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`],
          remoteSubnets: ['10.0.0.0/8'],
        }),
      );
    }
    const daemon = new Daemon(config(conns), {
      transport: net.transport(conns.map((c) => c.local)),
      dataplane: new MemoryDataPlane(),
      timing,
      limits,
    });
    await daemon.start();
    initiators.push(daemon);
    // At most IN_FLIGHT daemons' worth of negotiations at once.
    while (established < (d + 1 - IN_FLIGHT) * PER) await sleep(5);
  }
  while (established < TUNNELS) {
    if (Date.now() - t0 > 600_000) throw new Error(`only ${established} of ${TUNNELS} up after 600 s`);
    await sleep(20);
  }
  const upSeconds = (Date.now() - t0) / 1000;
  const report0 = hub.status({ limit: 0 });
  const k = report0.connections.sites!.ikeSas!;
  process.stdout.write(
    `${TUNNELS} tunnels up in ${upSeconds.toFixed(1)} s: hub IKE SAs ${k.established} established, ` +
      `${k.connecting} connecting; CHILD SAs ${report0.connections.sites!.childrenTotal}; ` +
      `hub timers ${clock.live}; RSS ${mb(process.memoryUsage().rss)}\n`,
  );

  // Two lag windows (loop-lag.ts): the second complete one is all idle, after the bring-up.
  await sleep(21_000);
  const idleLag = hub.status({ limit: 0 }).eventLoop;
  // The lag while the status and scrape requests below run: a histogram of the bench's own.
  const busy = monitorEventLoopDelay({ resolution: 10 });
  busy.enable();

  const dir = mkdtempSync(join(tmpdir(), 'twinsec-scale-'));
  const sock = join(dir, 'control.sock');
  const control = await startControlServer(sock, { status: (a) => hub.status(statusOptions(a)) });
  const metrics = await startMetrics({
    listen: { host: '127.0.0.1', port: 0 },
    bus: hub.bus,
    snapshot: () => hub.status(),
    routes: () => hub.config.routes,
    version: (name) => hub.config.connections[name]?.version,
  });
  const rows: [string, string, string][] = [];
  try {
    const build = await timed(5, () => hub.status());
    const json = await timed(5, () => JSON.stringify(build.result));
    rows.push([
      'status() in-process (complete)',
      both(build),
      `${build.result.connections.sites!.children.length} entries`,
    ]);
    rows.push(['JSON.stringify of it', both(json), mb(Buffer.byteLength(json.result))]);
    const sockJson = await timed(5, () => call(sock, 'status', undefined, { timeoutMs: 30_000 }));
    rows.push(['control socket: status (complete)', both(sockJson), 'round trip, parsed']);
    const page = await timed(5, () => call(sock, 'status', { limit: DEFAULT_STATUS_LIMIT }));
    const text = formatStatus(page.result as StatusReport, { limit: DEFAULT_STATUS_LIMIT });
    rows.push(['control socket: status page (20)', both(page), `${text.split('\n').length} table lines`]);
    const base = await cli(['--version']);
    rows.push([
      'twinsec --version (node start-up)',
      `${base.ms.toFixed(0)} ms`,
      'the floor of every CLI row',
    ]);
    const cliJson = await cli(['-s', sock, 'status', '--json']);
    if (cliJson.code !== 0) throw new Error('twinsec status --json failed');
    rows.push([
      'twinsec status --json (CLI process)',
      `${cliJson.ms.toFixed(0)} ms`,
      mb(Buffer.byteLength(cliJson.stdout)),
    ]);
    const cliText = await cli(['-s', sock, 'status']);
    if (cliText.code !== 0) throw new Error('twinsec status failed');
    rows.push([
      'twinsec status (CLI process)',
      `${cliText.ms.toFixed(0)} ms`,
      `${cliText.stdout.split('\n').length} lines`,
    ]);
    const cliAll = await cli(['-s', sock, 'status', '--all']);
    rows.push([
      'twinsec status --all (CLI process)',
      `${cliAll.ms.toFixed(0)} ms`,
      `${cliAll.stdout.split('\n').length} lines`,
    ]);
    const url = `http://127.0.0.1:${metrics.address.port}/metrics`;
    await fetch(url).then((r) => r.text()); // the first scrape learns every SA's counters
    const scrape = await timed(5, () => fetch(url).then((r) => r.text()));
    const series = scrape.result.split('\n').filter((l) => l && !l.startsWith('#')).length;
    rows.push([
      'metrics scrape (HTTP)',
      both(scrape),
      `${mb(Buffer.byteLength(scrape.result))}, ${series} samples`,
    ]);
    busy.disable();
    rows.push([
      'event loop lag p99 / max, idle 10 s',
      idleLag ? `${idleLag.lagP99Ms} / ${idleLag.lagMaxMs} ms` : '-',
      `hub timers: ${clock.live}`,
    ]);
    const lagMs = (v: number) => Math.max(0, v / 1e6 - 10).toFixed(1);
    rows.push([
      'event loop lag p99 / max, measuring',
      `${lagMs(busy.percentile(99))} / ${lagMs(busy.max)} ms`,
      'while the requests above ran',
    ]);
    process.stdout.write(`\n${text.split('\n').slice(0, 12).join('\n')}\n...\n\n`);
    const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of [['measure', 'time', 'size / note'] as [string, string, string], ...rows])
      process.stdout.write(
        `${r
          .map((c, i) => c.padEnd(w[i]!))
          .join('  ')
          .trimEnd()}\n`,
      );

    if (OBSERVE > 0) {
      // The network log has no timestamps: read what each second added to it.
      let seen = net.log.length;
      const perSecond: number[] = [];
      for (let i = 0; i < OBSERVE; i++) {
        await sleep(1000);
        const now = net.log.length;
        let n = 0;
        for (let j = seen; j < now; j++) {
          const s = net.log[j]!;
          if (s.exchange === ExchangeType.INFORMATIONAL && !s.response && s.from.address === HUB) n++;
        }
        perSecond.push(n);
        seen = now;
      }
      const total = perSecond.reduce((a, b) => a + b, 0);
      process.stdout.write(
        `\nDPD probes from the hub in ${OBSERVE} s: ${total}; busiest second ${Math.max(...perSecond)}` +
          ` (${total > 0 ? ((100 * Math.max(...perSecond)) / total).toFixed(1) : 0} %); per second: ${perSecond.join(' ')}\n`,
      );
    }
  } finally {
    await metrics.close();
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`status-scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
