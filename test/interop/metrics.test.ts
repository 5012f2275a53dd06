/**
 * Prometheus metrics of a running twinsecd with a live tunnel to strongSwan 5.9 (kernel-libipsec,
 * ESP-in-UDP), in network namespaces. twinsec listens, charon initiates; twinsec probes the peer's
 * LAN address through the tunnel (health check) and serves `metrics: { listen: 127.0.0.1:9469 }`
 * inside its namespace, scraped with curl there.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 *
 * Checks: every family is exposed; up/healthy/route_active are 1; ESP packet and byte counters grow
 * with a ping; the RTT histogram has observations; after strongSwan deletes the IKE SA and initiates a
 * new one (a new CHILD_SA with counters from zero) the ESP counters never go down and
 * ike_sa_established_total is 2; no PSK in the output; other paths are 404.
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const TW_HOST = '198.18.1.1';
const SW_HOST = '198.19.1.1';
const PSK = 'metrics-interop-psk-9f3e1c7a5b';
const LISTEN = '127.0.0.1:9469';
const ESTABLISH_MS = 12_000;

type Samples = Map<string, number>;

/** `name{labels} value` lines -> map keyed by the sample as written (labels in prom-client's order). */
function parse(text: string): { samples: Samples; types: Map<string, string> } {
  const samples: Samples = new Map();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const ty = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (ty) types.set(ty[1]!, ty[2]!);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m && !line.startsWith('#')) samples.set(m[1]!, Number(m[2]));
  }
  return { samples, types };
}

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

async function scrape(lab: Lab, ns: string, path = '/metrics') {
  return lab.exec(ns, 'curl', ['-sS', '-o', '-', '-w', '\\n%{http_code}', `http://${LISTEN}${path}`], {
    check: false,
    timeoutMs: 10_000,
  });
}

async function metrics(lab: Lab, ns: string) {
  const r = await scrape(lab, ns);
  const status = r.stdout.slice(r.stdout.lastIndexOf('\n') + 1);
  if (status !== '200') throw new Error(`GET /metrics: ${status} ${r.stderr}`);
  const body = r.stdout.slice(0, r.stdout.lastIndexOf('\n'));
  return { body, ...parse(body) };
}

const C = (name: string, labels = 'connection="t1"') => `${name}{${labels}}`;
/** The IKE families also carry the connection's IKE version. */
const CV = (name: string) => C(name, 'connection="t1",version="2"');

async function run(t: Test): Promise<void> {
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  t.teardown(() => {
    if (t.passing()) return;
    if (charon) t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 60)}`);
    if (twinsec) t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec.log(), 60)}`);
  });

  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);

  twinsec = await startTwinsec(lab, tw, {
    log: { level: 'debug' },
    metrics: { listen: LISTEN },
    connections: {
      t1: {
        version: 2,
        local: TW_WAN,
        remote: SW_WAN,
        psk: PSK,
        ike: { proposals: ['aes256gcm16-prfsha256-x25519'] },
        esp: { proposals: ['aes256gcm16'] },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: 'listen',
        healthCheck: { source: TW_HOST, destination: SW_HOST, interval: 0.2, retries: 3 },
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  const d = twinsec;

  // Served as soon as the daemon runs, before any tunnel.
  const m0 = await waitFor(() => metrics(lab, tw).catch(() => undefined), 5000, {
    what: `twinsecd metrics on ${LISTEN}`,
    intervalMs: 100,
  });
  t.equal(m0.samples.get(CV('twinsec_connection_up')), 0, 'not up before negotiation');

  charon = await startCharon(lab, sw, {
    dir: lab.tempDir('charon'),
    conns: [
      {
        name: 'gw',
        version: 2,
        local: SW_WAN,
        remote: TW_WAN,
        psk: PSK,
        ikeProposals: ['aes256gcm16-prfsha256-x25519'],
        espProposals: ['aes256gcm16'],
        localTs: [SW_LAN],
        remoteTs: [TW_LAN],
        startAction: 'none',
      },
    ],
  });
  const c = charon;
  await c.initiate('gw', { timeoutSec: 10 });
  await d.waitForState('t1', 'established', ESTABLISH_MS);

  // Health probes cross the tunnel; wait until the connection is healthy.
  const m1 = await waitFor(
    async () => {
      const m = await metrics(lab, tw);
      return m.samples.get(C('twinsec_connection_healthy')) === 1 ? m : undefined;
    },
    10_000,
    { what: 'twinsec_connection_healthy 1', intervalMs: 200 },
  );
  const families: [string, string][] = [
    ['twinsec_connection_up', 'gauge'],
    ['twinsec_connection_healthy', 'gauge'],
    ['twinsec_esp_bytes_total', 'counter'],
    ['twinsec_esp_packets_total', 'counter'],
    ['twinsec_esp_dropped_packets_total', 'counter'],
    ['twinsec_health_check_rtt_seconds', 'histogram'],
    ['twinsec_route_active', 'gauge'],
    ['twinsec_route_switches_total', 'counter'],
    ['twinsec_ike_sa_established_total', 'counter'],
    ['twinsec_ike_negotiation_failures_total', 'counter'],
    ['process_cpu_user_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
  ];
  for (const [name, type] of families) t.equal(m1.types.get(name), type, `${name} (${type})`);
  t.equal(m1.samples.get(CV('twinsec_connection_up')), 1, 'connection up');
  t.equal(m1.samples.get(CV('twinsec_ike_sa_established_total')), 1, 'one IKE SA established');
  t.equal(
    m1.samples.get(`twinsec_route_active{destination="${SW_LAN}",connection="t1"}`),
    1,
    'route active via t1',
  );
  t.ok((m1.samples.get(C('twinsec_health_check_rtt_seconds_count')) ?? 0) >= 1, 'RTT observed');
  t.ok(
    m1.samples.has('twinsec_esp_dropped_packets_total{connection="",reason="no_sa"}'),
    'drops by reason with connection=""',
  );
  t.notOk(m1.body.includes(PSK), 'no PSK in the exposition');

  // A ping through the tunnel moves the ESP counters.
  const bytesOut = C('twinsec_esp_bytes_total', 'connection="t1",direction="out"');
  const bytesIn = C('twinsec_esp_bytes_total', 'connection="t1",direction="in"');
  const pktsOut = C('twinsec_esp_packets_total', 'connection="t1",direction="out"');
  const pktsIn = C('twinsec_esp_packets_total', 'connection="t1",direction="in"');
  const p = await lab.exec(tw, 'ping', ['-n', '-I', TW_HOST, '-c', '5', '-i', '0.2', '-W', '2', SW_HOST], {
    check: false,
    timeoutMs: 30_000,
  });
  t.match(p.stdout, / 5 received/, 'ping through the tunnel');
  const m2 = await metrics(lab, tw);
  t.ok(
    m2.samples.get(pktsOut)! >= m1.samples.get(pktsOut)! + 5,
    `packets out +5 (${m2.samples.get(pktsOut)})`,
  );
  t.ok(m2.samples.get(pktsIn)! >= m1.samples.get(pktsIn)! + 5, `packets in +5 (${m2.samples.get(pktsIn)})`);
  t.ok(m2.samples.get(bytesOut)! > m1.samples.get(bytesOut)!, 'bytes out grew');
  t.ok(m2.samples.get(bytesIn)! > m1.samples.get(bytesIn)!, 'bytes in grew');
  const sa1 = (await d.status()).connections.t1!.children[0]!;

  // strongSwan deletes the IKE SA and negotiates a new one: new CHILD_SA, its counters from zero.
  await c.terminate('gw');
  await waitFor(async () => (await d.status()).connections.t1?.state !== 'established', 10_000, {
    what: 'twinsec sees the DELETE',
    intervalMs: 100,
  });
  await c.initiate('gw', { timeoutSec: 10 });
  await d.waitForState('t1', 'established', ESTABLISH_MS);
  const sa2 = (await d.status()).connections.t1!.children[0]!;
  t.not(sa2.spiIn, sa1.spiIn, 'a new CHILD_SA');
  const m3 = await waitFor(
    async () => {
      const m = await metrics(lab, tw);
      return m.samples.get(CV('twinsec_connection_up')) === 1 ? m : undefined;
    },
    5000,
    { what: 'twinsec_connection_up 1 again', intervalMs: 100 },
  );
  for (const k of [bytesOut, bytesIn, pktsOut, pktsIn]) {
    t.ok(
      m3.samples.get(k)! >= m2.samples.get(k)!,
      `${k} monotonic (${m2.samples.get(k)} -> ${m3.samples.get(k)})`,
    );
  }
  t.ok(
    m3.samples.get(pktsOut)! >= m2.samples.get(pktsOut)! + sa2.packetsOut!,
    "the old SA's packets stay counted",
  );
  t.equal(m3.samples.get(CV('twinsec_ike_sa_established_total')), 2, 'two IKE SAs established');
  t.notOk(m3.body.includes(PSK), 'no PSK in the exposition');

  const nf = await scrape(lab, tw, '/');
  t.match(nf.stdout, /404$/, 'GET / is 404');
}

const skip = labUnavailable() ?? charonUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) {
    t.fail(`${missing}: build the daemon first (npx tsc -p .)`);
  } else {
    t.test('twinsecd serves Prometheus metrics for a live tunnel to strongSwan', (t) => run(t));
  }
}
