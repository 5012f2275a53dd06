/**
 * What `npm run bench:ike` measures of a twinsec hub besides the setup rate (issue #13): with all
 * the load tester's tunnels up, the cost of `twinsec status --json` and of a metrics scrape, and one
 * TCP stream through one real site tunnel, compared with the same stream before the load.
 *
 * The load tester cannot carry traffic (its fake kernel installs no SAs), so the TCP stream runs
 * through one more site: a twinsecd initiator in its own namespace, on its own link, with its own
 * selectors (198.18.255.0/24, longer than the load tester's 198.18.0.0/16, so the hub's per-site
 * routes send its traffic to its own SA whatever the other sites claim).
 *
 *   [site] wan0 198.51.100.2/24  <->  wan1 198.51.100.1/24 [gw]   (198.18.255.1 -> 198.19.0.1)
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Lab, LabProcess } from '../test/lab/netns.js';
import { waitFor } from '../test/lab/netns.js';
import { startTwinsec, type Twinsec } from '../test/lab/twinsec.js';

const SITE_WAN = '198.51.100.2';
const GW_WAN1 = '198.51.100.1';
const SITE_HOST = '198.18.255.1';
const SITE_NET = '198.18.255.0/24';
const IPERF_PORT = 5201;

export interface HubProbes {
  statusMs?: number;
  statusKb?: number;
  scrapeMs?: number;
  scrapeKb?: number;
  /** p99 of the event loop's delay from the metrics (issue #13: < 50 ms), when exported. */
  lagP99Ms?: number;
  /** One TCP stream through the real site's tunnel: alone, and with every load-tester tunnel up. */
  tcpAloneMbps?: number;
  tcpLoadedMbps?: number;
}

/** Times `twinsec status --json` (the CLI, as an operator runs it) and returns its size. */
export async function timeStatus(tw: Twinsec): Promise<{ ms: number; kb: number }> {
  const t0 = performance.now();
  const r = await tw.cli(['status', '--json'], { timeoutMs: 60_000 });
  return { ms: performance.now() - t0, kb: Buffer.byteLength(r.stdout) / 1024 };
}

/** Scrapes the metrics endpoint from inside the namespace; time, size and the event loop lag p99. */
export async function timeScrape(
  lab: Lab,
  ns: string,
  url: string,
): Promise<{ ms: number; kb: number; lagP99Ms?: number }> {
  const script =
    'const t=performance.now();fetch(process.argv[1]).then(r=>r.text()).then(b=>' +
    'console.log(JSON.stringify({ms:performance.now()-t,body:b})))';
  const r = await lab.exec(ns, process.execPath, ['-e', script, url], { timeoutMs: 60_000 });
  const { ms, body } = JSON.parse(r.stdout) as { ms: number; body: string };
  const lag = /^twinsec_event_loop_lag_seconds\{[^}]*quantile="0\.99"[^}]*\}\s+(\S+)/m.exec(body)?.[1];
  return { ms, kb: Buffer.byteLength(body) / 1024, lagP99Ms: lag ? Number(lag) * 1000 : undefined };
}

/** One real site with its own link; `tcp()` runs iperf3 through its tunnel to the hub's LAN host. */
export async function startTcpSite(
  lab: Lab,
  gw: string,
  hub: {
    version: 1 | 2;
    tunName: string;
    hubHost: string;
    gwWan: string;
    gwId: string;
    psk: string;
    ike: string;
    esp: string;
  },
): Promise<{ site: Twinsec; tcp: (seconds: number) => Promise<number>; stop: () => Promise<void> }> {
  const ns = await lab.addNamespace('site');
  await lab.link(
    { ns, ifname: 'wan0', address: `${SITE_WAN}/24` },
    { ns: gw, ifname: 'wan1', address: `${GW_WAN1}/24` },
  );
  await lab.exec(ns, 'ip', ['route', 'add', `${hub.gwWan}/32`, 'via', GW_WAN1]);
  await lab.loopbackAddresses(ns, `${SITE_HOST}/32`);
  // The hub's kernel sends what is for the sites into twinsec's device; twinsec picks the site.
  await lab.exec(gw, 'ip', ['route', 'replace', '198.18.0.0/16', 'dev', hub.tunName]);
  const site = await startTwinsec(lab, ns, {
    log: { level: 'warn' },
    connections: {
      hub: {
        version: hub.version,
        local: SITE_WAN,
        remote: hub.gwWan,
        localId: 'tcp-site.bench.example',
        remoteId: hub.gwId,
        psk: hub.psk,
        ike: { proposals: [hub.ike] },
        esp: { proposals: [hub.esp] },
        localSubnets: [SITE_NET],
        remoteSubnets: ['198.19.0.0/16'],
        start: 'initiate',
      },
    },
    routes: [{ destination: '198.19.0.0/16', via: [{ connection: 'hub', weight: 100 }], publish: true }],
  });
  await site.waitForState('hub', 'established', 30_000);
  const server: LabProcess = lab.spawn(gw, 'iperf3', ['-s', '-B', hub.hubHost, '-p', String(IPERF_PORT)]);
  await waitFor(
    async () => {
      const r = await lab.exec(gw, 'ss', ['-Hltn', `sport = :${IPERF_PORT}`], { check: false });
      return r.stdout.includes(String(IPERF_PORT));
    },
    5000,
    { what: 'iperf3 server', intervalMs: 100 },
  );
  const tcp = async (seconds: number): Promise<number> => {
    const out = await lab.exec(
      ns,
      'iperf3',
      ['-c', hub.hubHost, '-B', SITE_HOST, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'],
      { check: false, timeoutMs: (seconds + 30) * 1000 },
    );
    const j = JSON.parse(out.stdout) as {
      end?: { sum_received?: { bits_per_second: number } };
      error?: string;
    };
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return (j.end?.sum_received?.bits_per_second ?? 0) / 1e6;
  };
  const stop = async () => {
    await server.stop('SIGTERM', 2000);
    await site.proc.stop('SIGTERM', 5000);
  };
  return { site, tcp, stop };
}

/** iperf3 is needed for the TCP probe; the rest runs without it. */
export function iperfAvailable(): boolean {
  try {
    execFileSync('iperf3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
