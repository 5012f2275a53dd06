/**
 * IKE setup benchmark (`npm run bench:ike`, issue #13; needs root, Debian's strongSwan, and the
 * load-tester build of scripts/build-load-tester.sh, which this script runs first: cached outside the repo).
 *
 *   node dist/bench/ike.js [--tunnels 1000] [--only charon,twinsec] [--initiators 2] [--in-flight 64]
 *     [--version 2] [--ike aes128gcm16-prfsha256-x25519] [--esp aes128gcm16] [--timeout 300] [--skip-build] [--keep]
 *     [--skip-probes]
 *
 * With twinsec as the responder it also measures (bench/ike-probes.ts, unless --skip-probes) status,
 * a metrics scrape, the event loop's lag and one TCP stream through a real site, with the tunnels up.
 *
 * For each responder, two fresh namespaces joined by a veth:
 *   [lt] wan0 192.0.2.1/24 (strongSwan's load tester, fake kernel)  <->  wan0 192.0.2.2/24 [gw] (responder)
 * The generator is the same for both: charon with the load-tester plugin, IKEv2, PSK, one IKE SA + one
 * CHILD_SA per site, site identities site<N>.bench.example, host-to-host selectors (its "dynamic" TS).
 * The responder is Debian's charon (kernel-libipsec, swanctl: one connection for %any) or twinsecd
 * (one `start: listen` connection, `remote: %any`, `remoteId: %any`). Both are configured as a hub:
 * the per-address and cookie thresholds are raised, since every site comes from the generator's one
 * address. Measured: setup rate (CHILD_SAs established per second, from the generator's first
 * initiation to its last establishment), failures (initiated but not established), the responder's
 * peak RSS (VmHWM) and RSS once all are up, and its CPU seconds (utime + stime) during the load.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, type LabProcess, labUnavailable, WaitAbort, waitFor } from '../test/lab/netns.js';
import { CHARON, charonUnavailable } from '../test/lab/strongswan.js';
import { startTwinsec, type Twinsec, twinsecUnavailable } from '../test/lab/twinsec.js';
import { type HubProbes, iperfAvailable, startTcpSite, timeScrape, timeStatus } from './ike-probes.js';
import { cpuSeconds } from './proc.js';

const LT_WAN = '192.0.2.1';
const GW_WAN = '192.0.2.2';
const PSK = 'bench-ike-psk-0123456789abcdef';
const GW_ID = 'gw.bench.example';
/**
 * Subnet selectors for every site (the load tester has no per-site selector). Host-to-host selectors
 * (its default) fail on a kernel-libipsec charon: it routes the peer's own address into its TUN and
 * cannot add the exclude route for an on-link peer ("unable to install IPsec policies").
 */
const SITE_LAN = '198.18.0.0/16';
const HUB_LAN = '198.19.0.0/16';
/** kernel-libipsec needs a local address inside its local selector (the source of its TUN route). */
const HUB_HOST = '198.19.0.1';
/** Defaults of --ike / --esp (strongSwan proposal syntax; twinsec reads the same). */
const IKE = 'aes128gcm16-prfsha256-x25519';
/** twinsec's metrics endpoint inside the responder's namespace. */
const METRICS = '127.0.0.1:9810';
const ESP = 'aes128gcm16';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE = process.env.TWINSEC_BENCH_CACHE ?? '/var/cache/twinsec-bench';
/** Where scripts/build-load-tester.sh installs (same default and override). */
const LT_PREFIX = process.env.STRONGSWAN_LT_PREFIX ?? join(CACHE, 'strongswan-5.9.8');
const LT_CHARON = join(LT_PREFIX, 'libexec/ipsec/charon');
const LT_RUN = join(LT_PREFIX, 'run');

type Responder = 'charon' | 'twinsec';
const ALL: Responder[] = ['charon', 'twinsec'];

interface Load {
  /** Also measure status, a scrape and one TCP stream through a real site (twinsec only). */
  probes: boolean;
  version: 1 | 2;
  ike: string;
  esp: string;
  tunnels: number;
  initiators: number;
  inFlight: number;
  timeoutSec: number;
}

interface Result {
  responder: Responder;
  initiated?: number;
  established?: number;
  failed?: number;
  seconds?: number;
  rate?: number;
  peakRssMb?: number;
  rssMb?: number;
  /** RSS before the load (the idle daemon). */
  idleRssMb?: number;
  cpuSec?: number;
  /** CPU seconds of the generator meanwhile: on a 2-core machine both share the CPUs. */
  genCpuSec?: number;
  /** Responder-side count of IKE SAs up at the end (a cross-check of the generator's). */
  responderSas?: number;
  error?: string;
  /** The first failure lines of the generator's log (why setups failed). */
  failures?: string[];
  probes?: HubProbes;
}

/** A `Vm...:  N kB` field of /proc/PID/status, in MB. */
function vm(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  if (!pid) return 0;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The generator's strongswan.conf. The load-tester plugin is listed first so that its fake kernel-ipsec
 * is the one registered (the first wins): no SAs are installed and the NAT-T socket gets no UDP_ENCAP
 * option (this kernel has no ESP; with the option set, IKE answers on port 4500 went missing).
 * kernel-netlink is still needed because charon will not start without a kernel-net plugin.
 */
function generatorConf(dir: string, load: Load): string {
  const perInitiator = Math.ceil(load.tunnels / load.initiators);
  return `charon {
  load = load-tester random nonce openssl pem pkcs1 x509 pubkey kdf kernel-netlink socket-default
  # one thread per load-tester initiator loop plus workers for the exchanges
  threads = ${load.initiators + 16}
  install_routes = no
  retransmit_timeout = 2.0
  retransmit_tries = 3
  # the generator talks to one responder with thousands of SAs: never wait for cookies or limits here
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  syslog {
    daemon {
      default = -1
    }
  }
  filelog {
    gen {
      path = ${join(dir, 'generator.log')}
      time_format = %s
      time_add_ms = yes
      flush_line = yes
      append = no
      default = 0
      ike = 1
      cfg = 1
    }
  }
  plugins {
    load-tester {
      enable = yes
      fake_kernel = yes
      initiators = ${load.initiators}
      iterations = ${perInitiator}
      # in-flight cap: new initiations wait while this many IKE SAs are not yet established
      init_limit = ${load.inFlight}
      delay = 1
      version = ${load.version}
      proposal = ${load.ike}
      esp = ${load.esp}
      initiator = ${LT_WAN}
      responder = ${GW_WAN}
      initiator_tsi = ${SITE_LAN}
      initiator_tsr = ${HUB_LAN}
      initiator_auth = psk
      responder_auth = psk
      initiator_id = site%d.bench.example
      responder_id = ${GW_ID}
      preshared_key = ${PSK}
      # keep every SA up for the whole run: no rekeys, no DPD
      ike_rekey = 0
      child_rekey = 0
      dpd_delay = 0
    }
  }
}
`;
}

/** Debian's charon as the hub: kernel-libipsec (userspace ESP), one connection for any site. */
function responderConf(dir: string): string {
  return `charon {
  load = random nonce aes sha1 sha2 hmac gcm pem pkcs1 x509 pubkey curve25519 openssl kdf vici kernel-libipsec kernel-netlink socket-default
  # a hub: all sites arrive from one generator address, so per-address limits must not apply
  block_threshold = 1000000
  cookie_threshold = 1000000
  cookie_threshold_ip = 1000000
  init_limit_half_open = 0
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  plugins {
    vici {
      socket = unix://${join(dir, 'vici')}
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  filelog {
    charon {
      path = ${join(dir, 'charon.log')}
      time_format = %T
      flush_line = yes
      append = no
      default = 0
      ike = 1
    }
  }
}
`;
}

function responderSwanctl(load: Load): string {
  return `connections {
  sites {
    version = ${load.version}
    local_addrs = ${GW_WAN}
    remote_addrs = %any
    proposals = ${load.ike}
    unique = never
    local {
      auth = psk
      id = ${GW_ID}
    }
    remote {
      auth = psk
      id = %any
    }
    children {
      site {
        local_ts = ${HUB_LAN}
        remote_ts = ${SITE_LAN}
        esp_proposals = ${load.esp}
        start_action = none
      }
    }
  }
}
secrets {
  ike-sites {
    secret = "${PSK}"
  }
}
`;
}

async function swanctl(lab: Lab, ns: string, dir: string, args: string[]) {
  return lab.exec(ns, 'swanctl', [...args, '--uri', `unix://${join(dir, 'vici')}`], {
    check: false,
    timeoutMs: 60_000,
  });
}

async function startCharonHub(
  lab: Lab,
  ns: string,
  load: Load,
): Promise<{ proc: LabProcess; count: () => Promise<number> }> {
  const dir = lab.tempDir('charon-hub');
  const conf = join(dir, 'strongswan.conf');
  writeFileSync(conf, responderConf(dir));
  writeFileSync(join(dir, 'swanctl.conf'), responderSwanctl(load), { mode: 0o600 });
  const proc = lab.spawn(ns, 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON}`], {
    env: { STRONGSWAN_CONF: conf },
    logFile: join(dir, 'charon.stderr'),
  });
  await waitFor(
    async () => {
      if (!proc.running) throw new WaitAbort(`charon exited early:\n${proc.log()}`);
      return (await swanctl(lab, ns, dir, ['--stats'])).code === 0;
    },
    15_000,
    { what: 'charon vici socket', intervalMs: 100 },
  );
  const r = await swanctl(lab, ns, dir, ['--load-all', '--file', join(dir, 'swanctl.conf')]);
  if (r.code !== 0) throw new Error(`swanctl --load-all: ${r.stdout}${r.stderr}`);
  const count = async () => {
    const s = await swanctl(lab, ns, dir, ['--stats']);
    return Number(/IKE_SAs: (\d+) total/.exec(s.stdout)?.[1] ?? Number.NaN);
  };
  return { proc, count };
}

async function startTwinsecHub(
  lab: Lab,
  ns: string,
  load: Load,
): Promise<{ proc: LabProcess; count: () => Promise<number>; tw: Twinsec }> {
  const tw = await startTwinsec(lab, ns, {
    log: { level: 'warn' },
    metrics: { listen: METRICS },
    // a hub: all sites arrive from one generator address, so per-address limits must not apply
    limits: {
      halfOpen: 100_000,
      halfOpenPerPeer: 100_000,
      ikeSas: 1_000_000,
      ikeSasPerPeer: 1_000_000,
      cookieThreshold: 1_000_000,
      cookieThresholdPerPeer: 1_000_000,
      v1Unproven: 1_000_000,
      v1UnprovenPerPeer: 1_000_000,
    },
    connections: {
      sites: {
        version: load.version,
        local: GW_WAN,
        remote: '%any',
        localId: GW_ID,
        remoteId: '%any',
        psk: PSK,
        ike: { proposals: [load.ike] },
        esp: { proposals: [load.esp] },
        // What the generator proposes (TSi = SITE_LAN, TSr = HUB_LAN), the same for every site.
        localSubnets: [HUB_LAN],
        remoteSubnets: [SITE_LAN],
        start: 'listen',
      },
    },
  });
  const count = async () => {
    const s = (await tw.status()) as { connections: Record<string, { children?: unknown[] }> };
    return s.connections.sites?.children?.length ?? Number.NaN;
  };
  return { proc: tw.proc, count, tw };
}

interface GenLog {
  initiated: number;
  established: number;
  first?: number;
  last?: number;
  failures: string[];
}

/** Reads the generator's log (time_format %s + ms: lines start with "1764495612.123 "). */
function parseGenerator(text: string): GenLog {
  const g: GenLog = { initiated: 0, established: 0, failures: [] };
  for (const line of text.split('\n')) {
    const t = Number(/^(\d+\.\d+)/.exec(line)?.[1]);
    if (/initiating (Main Mode |Aggressive Mode )?IKE_SA/.test(line)) {
      g.initiated++;
      if (g.first === undefined) g.first = t;
    } else if (/CHILD_SA \S+ established/.test(line)) {
      g.established++;
      g.last = t;
    } else if (/failed|giving up|AUTHENTICATION_FAILED|UNACCEPTABLE|NO_PROPOSAL|INVALID_/.test(line)) {
      g.failures.push(line);
    }
  }
  return g;
}

async function measure(responder: Responder, load: Load, keep: boolean): Promise<Result> {
  const r: Result = { responder };
  const why = responder === 'charon' ? charonUnavailable() : twinsecUnavailable();
  if (why) {
    r.error = why;
    return r;
  }
  const lab = new Lab(undefined, { keepDir: keep });
  if (keep) process.stderr.write(`bench:ike: ${responder}: logs kept in ${lab.dir}\n`);
  try {
    const lt = await lab.addNamespace('lt');
    const gw = await lab.addNamespace('gw');
    await lab.link(
      { ns: lt, ifname: 'wan0', address: `${LT_WAN}/24` },
      { ns: gw, ifname: 'wan0', address: `${GW_WAN}/24` },
    );
    process.stderr.write(`bench:ike: ${responder}: starting the responder\n`);
    await lab.loopbackAddresses(gw, `${HUB_HOST}/32`);
    const hub: { proc: LabProcess; count: () => Promise<number>; tw?: Twinsec } =
      responder === 'charon' ? await startCharonHub(lab, gw, load) : await startTwinsecHub(lab, gw, load);
    const pid = hub.proc.pid;
    // Per-tunnel memory is the growth over the idle responder, not its whole RSS.
    r.idleRssMb = vm(pid, 'VmRSS');
    const probes: HubProbes = {};
    const tw = hub.tw;
    const site =
      tw && load.probes && iperfAvailable()
        ? await startTcpSite(lab, gw, {
            version: load.version,
            tunName: tw.tunName,
            hubHost: HUB_HOST,
            gwWan: GW_WAN,
            gwId: GW_ID,
            psk: PSK,
            ike: load.ike,
            esp: load.esp,
          })
        : undefined;
    if (site) {
      process.stderr.write(`bench:ike: ${responder}: TCP through one site, before the load\n`);
      probes.tcpAloneMbps = await site.tcp(5).catch((e: Error) => {
        process.stderr.write(`bench:ike: TCP probe failed: ${e.message}\n`);
        return Number.NaN;
      });
    }
    const cpu0 = cpuSeconds(pid);

    const dir = lab.tempDir('generator');
    const conf = join(dir, 'strongswan.conf');
    writeFileSync(conf, generatorConf(dir, load));
    process.stderr.write(`bench:ike: ${responder}: ${load.tunnels} tunnels from the load tester\n`);
    // Its piddir is ${LT_PREFIX}/run (never the system's /run): a private tmpfs over it per run.
    const gen = lab.spawn(
      lt,
      'unshare',
      ['-m', 'sh', '-c', `mount -t tmpfs none ${LT_RUN} && exec ${LT_CHARON}`],
      {
        env: { STRONGSWAN_CONF: conf },
        logFile: join(dir, 'generator.stderr'),
      },
    );
    const logFile = join(dir, 'generator.log');
    const read = () => parseGenerator(existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
    // Done when every tunnel is up, or when the generator has initiated them all and nothing moved
    // for a whole retransmission cycle (the rest failed).
    let progress = { n: -1, at: Date.now() };
    let g = read();
    await waitFor(
      () => {
        if (!gen.running) throw new WaitAbort(`load tester exited:\n${gen.log()}`);
        g = read();
        const n = g.established + g.failures.length;
        if (n !== progress.n) progress = { n, at: Date.now() };
        if (g.established >= load.tunnels) return true;
        return g.initiated >= load.tunnels && Date.now() - progress.at > 15_000;
      },
      load.timeoutSec * 1000,
      { what: `${load.tunnels} tunnels against ${responder}`, intervalMs: 250 },
    ).catch((e: Error) => {
      if (e instanceof WaitAbort) throw e;
      // a timeout still reports what got up
    });
    const cpu1 = cpuSeconds(pid);
    r.genCpuSec = cpuSeconds(gen.pid);
    await new Promise((res) => setTimeout(res, 1000));
    r.rssMb = vm(pid, 'VmRSS');
    r.peakRssMb = vm(pid, 'VmHWM');
    r.responderSas = await hub.count().catch(() => Number.NaN);
    if (tw && load.probes) {
      process.stderr.write(`bench:ike: ${responder}: status, scrape and TCP with the tunnels up\n`);
      const st = await timeStatus(tw);
      probes.statusMs = st.ms;
      probes.statusKb = st.kb;
      const sc = await timeScrape(lab, gw, `http://${METRICS}/metrics`);
      probes.scrapeMs = sc.ms;
      probes.scrapeKb = sc.kb;
      probes.lagP99Ms = sc.lagP99Ms;
      if (site) probes.tcpLoadedMbps = await site.tcp(5).catch(() => Number.NaN);
      r.probes = probes;
    }
    await site?.stop();
    r.cpuSec = cpu1 - cpu0;
    r.initiated = g.initiated;
    r.established = g.established;
    r.failed = load.tunnels - g.established;
    if (g.first !== undefined && g.last !== undefined && g.last > g.first) {
      r.seconds = g.last - g.first;
      r.rate = g.established / r.seconds;
    }
    r.failures = g.failures.slice(0, 5);
    await gen.stop('SIGTERM', 5000);
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
  const ref = results.find((r) => r.responder === 'charon');
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? fmt(a / b, 2) : '-';
  const rows = [
    [
      'responder',
      'up/total',
      'failed',
      'SAs/s',
      'x charon',
      'seconds',
      'CPU s',
      'gen. CPU s',
      'idle RSS MB',
      'peak RSS MB',
      'RSS MB',
      'KB/tunnel',
      'resp. SAs',
    ],
  ];
  for (const r of results) {
    if (r.error) {
      rows.push([
        r.responder,
        `error: ${r.error.split('\n')[0]}`,
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
      ]);
      continue;
    }
    rows.push([
      r.responder,
      `${r.established}/${r.initiated}`,
      String(r.failed),
      fmt(r.rate, 0),
      r.responder === 'charon' ? '1' : ratio(r.rate, ref?.rate),
      fmt(r.seconds, 2),
      fmt(r.cpuSec, 2),
      fmt(r.genCpuSec, 2),
      fmt(r.idleRssMb, 1),
      fmt(r.peakRssMb, 1),
      fmt(r.rssMb, 1),
      r.rssMb !== undefined && r.idleRssMb !== undefined && r.established
        ? fmt(((r.rssMb - r.idleRssMb) * 1024) / r.established, 1)
        : '-',
      fmt(r.responderSas, 0),
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

/** The IKE proposal of a run: --ike, with the DH group replaced when --dh lists groups (IKEv1 has no AEAD for IKE). */
function ikeProposal(ike: string, version: 1 | 2, dh: string | undefined): string {
  if (!dh) return ike;
  return version === 1 ? `aes128-sha256-${dh}` : `aes128gcm16-prfsha256-${dh}`;
}

function report(load: Load, results: Result[]): void {
  console.log(
    `\nIKEv${load.version} ${load.ike} / ESP ${load.esp}, PSK, ${load.tunnels} tunnels, ${load.initiators} load-tester initiators, ` +
      `at most ${load.inFlight} in flight; generator: strongSwan 5.9.8 load-tester (fake kernel)\n`,
  );
  console.log(table(results));
  for (const r of results) {
    const p = r.probes;
    if (!p) continue;
    const tcp =
      p.tcpAloneMbps !== undefined && p.tcpLoadedMbps !== undefined
        ? `one TCP stream through one site: ${fmt(p.tcpAloneMbps, 0)} Mbit/s with it alone, ` +
          `${fmt(p.tcpLoadedMbps, 0)} Mbit/s with all tunnels up (${fmt((100 * p.tcpLoadedMbps) / p.tcpAloneMbps, 1)} %)`
        : 'no TCP probe (iperf3 missing)';
    console.log(
      `\n${r.responder} with the tunnels up (+1 TCP site): status --json ${fmt(p.statusMs, 0)} ms, ${fmt(p.statusKb, 0)} KB; ` +
        `metrics scrape ${fmt(p.scrapeMs, 0)} ms, ${fmt(p.scrapeKb, 0)} KB; event loop lag p99 ${fmt(p.lagP99Ms, 1)} ms\n${tcp}`,
    );
  }
  for (const r of results) {
    if (r.failures && r.failures.length > 0)
      console.log(`\n${r.responder}: first failures:\n  ${r.failures.join('\n  ')}`);
    if (r.error) console.log(`\n${r.responder}: ${r.error}`);
  }
}

/** One line per load: both responders' rates and memory, and the ratios. */
function summary(all: { load: Load; results: Result[] }[]): string {
  const rows = [
    [
      'tunnels',
      'IKE',
      'proposal',
      'charon SAs/s',
      'twinsec SAs/s',
      'x',
      'charon KB/tun',
      'twinsec KB/tun',
      'charon CPU s',
      'twinsec CPU s',
      'failed c/t',
    ],
  ];
  const kb = (r?: Result) =>
    r && r.rssMb !== undefined && r.idleRssMb !== undefined && r.established
      ? ((r.rssMb - r.idleRssMb) * 1024) / r.established
      : undefined;
  for (const { load, results } of all) {
    const c = results.find((r) => r.responder === 'charon');
    const t = results.find((r) => r.responder === 'twinsec');
    rows.push([
      fmt(load.tunnels, 0),
      `v${load.version}`,
      load.ike,
      c?.error ? 'error' : fmt(c?.rate, 0),
      t?.error ? 'error' : fmt(t?.rate, 0),
      c?.rate && t?.rate ? fmt(t.rate / c.rate, 2) : '-',
      fmt(kb(c), 1),
      fmt(kb(t), 1),
      fmt(c?.cpuSec, 2),
      fmt(t?.cpuSec, 2),
      `${c?.failed ?? '-'}/${t?.failed ?? '-'}`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tunnels: { type: 'string', default: '1000' },
      version: { type: 'string', default: '2' },
      ike: { type: 'string', default: IKE },
      esp: { type: 'string', default: ESP },
      initiators: { type: 'string', default: '2' },
      'in-flight': { type: 'string', default: '64' },
      timeout: { type: 'string', default: '300' },
      only: { type: 'string' },
      'skip-build': { type: 'boolean', default: false },
      'skip-probes': { type: 'boolean', default: false },
      dh: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  // Comma lists run every combination (tunnels x version x DH group), each against every responder.
  const list = (v: string) =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const loads: Load[] = [];
  for (const tunnels of list(values.tunnels).map(Number))
    for (const version of list(values.version).map((v) => (v === '1' ? 1 : 2) as 1 | 2))
      for (const dh of values.dh ? list(values.dh) : [undefined])
        loads.push({
          probes: !values['skip-probes'],
          version,
          ike: ikeProposal(values.ike, version, dh),
          esp: values.esp,
          tunnels,
          initiators: Number(values.initiators),
          inFlight: Number(values['in-flight']),
          timeoutSec: Number(values.timeout),
        });
  const only = values.only ? (values.only.split(',') as Responder[]) : ALL;
  console.log(
    `$ node ${[relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ')}   # npm run bench:ike`,
  );
  const why = labUnavailable();
  if (why) {
    console.error(`bench:ike: ${why}`);
    return 2;
  }
  if (!values['skip-build']) {
    // The build is cached: a second run only checks the stamp file.
    execFileSync('sh', [join(REPO, 'scripts/build-load-tester.sh')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
  if (!existsSync(LT_CHARON)) {
    console.error(`bench:ike: no load-tester charon at ${LT_CHARON} (scripts/build-load-tester.sh)`);
    return 2;
  }
  Lab.sweepStale();
  const all: { load: Load; results: Result[] }[] = [];
  for (const load of loads) {
    const results: Result[] = [];
    for (const responder of only) results.push(await measure(responder, load, values.keep));
    all.push({ load, results });
    report(load, results);
  }
  if (all.length > 1) {
    console.log('\nSummary (twinsec / charon in the same run):\n');
    console.log(summary(all));
  }
  const results = all.flatMap((a) => a.results);
  return results.some((r) => r.error || (r.failed ?? 0) > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
