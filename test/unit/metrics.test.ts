import { request } from 'node:http';
import { register as globalRegistry } from 'prom-client';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { ChildStatus, ConnectionStatus, StatusReport } from '../../src/daemon.js';
import type { DataPlane } from '../../src/dataplane/types.js';
import { EventBus } from '../../src/events.js';
import { HaController } from '../../src/ha/controller.js';
import { Metrics, snakeCase } from '../../src/metrics/metrics.js';
import { MetricsServer, startMetrics } from '../../src/metrics/server.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const PSK = 's3cret-psk-never-exported';

/* ------------------------------------------------------------------ helpers */

function child(spiIn: string, spiOut: string, n: Partial<ChildStatus> = {}): ChildStatus {
  return {
    spiIn,
    spiOut,
    bytesIn: 0,
    bytesOut: 0,
    packetsIn: 0,
    packetsOut: 0,
    encr: 'aes256gcm16',
    integ: null,
    encapsulation: 'udp',
    tsLocal: ['198.18.1.0/24'],
    tsRemote: ['198.19.1.0/24'],
    ...n,
  };
}

function conn(over: Partial<ConnectionStatus> = {}): ConnectionStatus {
  // Cast: other fields (e.g. adminDown) are irrelevant to metrics.
  return {
    state: 'established',
    version: 2,
    local: '192.0.2.1',
    remote: '203.0.113.1',
    health: 'up',
    lastRttMs: 1.5,
    children: [],
    ...over,
  } as ConnectionStatus;
}

/** A daemon-like status that the tests mutate between scrapes. */
function fakeStatus(): StatusReport {
  return {
    connections: {
      t1: conn({
        children: [
          child('c1a2b3d4', '0badcafe', { bytesIn: 1000, bytesOut: 2000, packetsIn: 10, packetsOut: 20 }),
        ],
      }),
      t2: conn({ state: 'connecting', health: 'down', lastRttMs: null, local: '192.0.2.2' }),
    },
    routes: [
      {
        destination: '198.19.1.0/24',
        active: ['t1'],
        fallback: false,
        onAllDown: 'reserve',
        revoked: false,
        switches: 0,
      },
    ],
    drops: {
      esp: { malformed: 1, noSa: 2, replay: 3, integrity: 0, policy: 0, noRoute: 4, mtu: 0, queue: 0 },
      ike: {},
    },
  };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

function parse(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const ty = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (ty) {
      types.set(ty[1]!, ty[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const s = e.samples.find(
    (x) =>
      x.name === name &&
      Object.keys(labels).length === Object.keys(x.labels).length &&
      Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s?.value;
}

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function setup(t: Test, routes = true) {
  const bus = new EventBus();
  const status = fakeStatus();
  const running = await startMetrics({
    listen: { host: '127.0.0.1', port: 0 },
    bus,
    snapshot: () => status,
    ...(routes
      ? {
          routes: () => [{ destination: '198.19.1.0/24', via: [{ connection: 't1' }, { connection: 't2' }] }],
        }
      : {}),
  });
  t.teardown(() => running.close());
  const scrape = async () => {
    const r = await get(running.address.port, '/metrics');
    t.equal(r.status, 200);
    return parse(r.body);
  };
  return { bus, status, running, scrape };
}

/* -------------------------------------------------------------------- tests */

t.test('every family is exposed over HTTP with its type and labels', async (t) => {
  const { bus, running } = await setup(t);
  bus.emit('ike-state', { connection: 't1', from: 'connecting', to: 'established', reason: 'auth ok' });
  bus.emit('ike-failure', { connection: 't2', reason: 'auth_failed', detail: 'AUTHENTICATION_FAILED' });
  bus.emit('health-rtt', { connection: 't1', seconds: 0.0021 });

  const r = await get(running.address.port, '/metrics');
  t.equal(r.status, 200);
  t.match(r.type, /^text\/plain; version=0\.0\.4/);
  const e = parse(r.body);
  const families: [string, string, string[]][] = [
    ['twinsec_connection_up', 'gauge', ['connection', 'version']],
    ['twinsec_connection_healthy', 'gauge', ['connection']],
    ['twinsec_esp_bytes_total', 'counter', ['connection', 'direction']],
    ['twinsec_esp_packets_total', 'counter', ['connection', 'direction']],
    ['twinsec_esp_dropped_packets_total', 'counter', ['connection', 'reason']],
    ['twinsec_health_check_rtt_seconds', 'histogram', ['connection']],
    ['twinsec_route_active', 'gauge', ['connection', 'destination']],
    ['twinsec_route_switches_total', 'counter', ['destination']],
    ['twinsec_ike_sa_established_total', 'counter', ['connection', 'version']],
    ['twinsec_ike_negotiation_failures_total', 'counter', ['connection', 'reason', 'version']],
    ['twinsec_event_loop_lag_seconds', 'gauge', ['quantile']],
  ];
  for (const [name, type, labels] of families) {
    t.equal(e.types.get(name), type, `${name} is a ${type}`);
    const samples = e.samples.filter((s) => s.name === name || s.name.startsWith(`${name}_`));
    t.ok(samples.length > 0, `${name} has samples`);
    for (const s of samples) {
      const names = Object.keys(s.labels)
        .filter((l) => l !== 'le')
        .sort();
      t.same(names, labels, `${s.name} labels`);
    }
  }
  t.ok(e.types.has('process_cpu_user_seconds_total'), 'default process metrics');
  t.ok(e.types.has('nodejs_eventloop_lag_seconds'), 'default Node.js metrics');
  for (const quantile of ['0.5', '0.99', '1']) {
    const lag = value(e, 'twinsec_event_loop_lag_seconds', { quantile });
    t.ok(lag !== undefined && lag >= 0 && lag < 60, `event loop lag, quantile ${quantile}: ${lag} s`);
  }

  t.equal(value(e, 'twinsec_connection_up', { connection: 't1', version: '2' }), 1);
  t.equal(value(e, 'twinsec_connection_up', { connection: 't2', version: '2' }), 0);
  t.equal(value(e, 'twinsec_connection_healthy', { connection: 't1' }), 1);
  t.equal(value(e, 'twinsec_connection_healthy', { connection: 't2' }), 0);
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1000);
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'out' }), 2000);
  t.equal(value(e, 'twinsec_esp_packets_total', { connection: 't1', direction: 'in' }), 10);
  t.equal(value(e, 'twinsec_esp_packets_total', { connection: 't1', direction: 'out' }), 20);
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't2', direction: 'in' }), 0, 'zero series exist');
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'no_sa' }), 2);
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'no_route' }), 4);
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'replay' }), 3);
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'malformed' }), 1);
  for (const reason of ['integrity', 'policy', 'mtu', 'queue'])
    t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason }), 0, reason);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't1' }), 1);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't2' }), 0);
  t.equal(value(e, 'twinsec_route_switches_total', { destination: '198.19.1.0/24' }), 0);
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't1', version: '2' }), 1);
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '2' }), 0);
  t.equal(
    value(e, 'twinsec_ike_negotiation_failures_total', {
      connection: 't2',
      version: '2',
      reason: 'auth_failed',
    }),
    1,
  );
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_count', { connection: 't1' }), 1);
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_sum', { connection: 't1' }), 0.0021);
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_bucket', { connection: 't1', le: '0.001' }), 0);
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_bucket', { connection: 't1', le: '0.0025' }), 1);
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_bucket', { connection: 't1', le: '0.0001' }), 0);
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_bucket', { connection: 't1', le: '5' }), 1);
});

t.test('values follow the snapshot between scrapes', async (t) => {
  const { bus, status, scrape } = await setup(t);
  await scrape();
  const ch = status.connections.t1!.children[0]!;
  ch.bytesIn += 500;
  ch.packetsOut += 7;
  status.drops.esp.replay = 10;
  status.connections.t2 = conn({
    local: '192.0.2.2',
    children: [child('00000001', '00000002', { bytesOut: 64 })],
  });
  status.connections.t1 = { ...status.connections.t1!, health: 'down' };
  status.routes[0] = {
    destination: '198.19.1.0/24',
    active: ['t2'],
    fallback: false,
    onAllDown: 'reserve',
    revoked: false,
    switches: 1,
  };
  bus.emit('ike-state', { connection: 't2', from: 'connecting', to: 'established', reason: 'auth ok' });
  bus.emit('ike-state', { connection: 't2', from: 'established', to: 'deleting', reason: 'x' });
  const e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1500);
  t.equal(value(e, 'twinsec_esp_packets_total', { connection: 't1', direction: 'out' }), 27);
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't2', direction: 'out' }), 64);
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'replay' }), 10);
  t.equal(value(e, 'twinsec_connection_healthy', { connection: 't1' }), 0);
  t.equal(value(e, 'twinsec_connection_up', { connection: 't2', version: '2' }), 1);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't1' }), 0);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't2' }), 1);
  t.equal(value(e, 'twinsec_route_switches_total', { destination: '198.19.1.0/24' }), 1);
  t.equal(
    value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '2' }),
    1,
    'only ->established counts',
  );

  // A removed connection (config reload) disappears from the gauges; its counters stay.
  delete status.connections.t2;
  const e2 = await scrape();
  t.equal(value(e2, 'twinsec_connection_up', { connection: 't2', version: '2' }), undefined);
  t.equal(value(e2, 'twinsec_esp_bytes_total', { connection: 't2', direction: 'out' }), 64);
});

t.test('IKE families carry the connection\'s IKE version ("1"/"2"), one series per connection', async (t) => {
  const { bus, status, scrape } = await setup(t);
  status.connections.t2 = conn({ version: 1, local: '192.0.2.2' });
  // Events before the first scrape: the version comes from a snapshot taken then.
  bus.emit('ike-state', { connection: 't2', from: 'connecting', to: 'established', reason: 'quick mode' });
  bus.emit('ike-failure', { connection: 't2', reason: 'timeout', detail: 'main mode' });
  bus.emit('ike-state', { connection: 't1', from: 'connecting', to: 'established', reason: 'auth ok' });
  let e = await scrape();
  t.equal(value(e, 'twinsec_connection_up', { connection: 't1', version: '2' }), 1, 't1 IKEv2');
  t.equal(value(e, 'twinsec_connection_up', { connection: 't2', version: '1' }), 0, 't2 IKEv1, no CHILD_SA');
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't1', version: '2' }), 1);
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '1' }), 1);
  t.equal(
    value(e, 'twinsec_ike_negotiation_failures_total', { connection: 't2', version: '1', reason: 'timeout' }),
    1,
  );
  // Many SAs and scrapes later: still one series per connection in each family (bounded cardinality).
  for (let i = 0; i < 50; i++) {
    bus.emit('ike-state', { connection: 't2', from: 'connecting', to: 'established', reason: 'rekey' });
    bus.emit('ike-state', { connection: 't2', from: 'established', to: 'deleting', reason: 'rekeyed' });
    await scrape();
  }
  e = await scrape();
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '1' }), 51);
  const series = (name: string) =>
    e.samples
      .filter((x) => x.name === name)
      .map((x) => `${x.labels.connection}/${x.labels.version}`)
      .sort();
  t.same(series('twinsec_connection_up'), ['t1/2', 't2/1']);
  t.same(series('twinsec_ike_sa_established_total'), ['t1/2', 't2/1']);
  t.same(series('twinsec_ike_negotiation_failures_total'), ['t2/1']);
});

t.test('version option: the configured IKE version labels events at once, also after a reload', async (t) => {
  const bus = new EventBus();
  const status = fakeStatus();
  const configured: Record<string, 1 | 2> = { t1: 2, t2: 1 };
  const m = new Metrics({
    snapshot: () => status,
    bus,
    version: (c) => configured[c],
    defaultMetrics: false,
  });
  t.teardown(() => m.close());
  bus.emit('ike-state', { connection: 't2', from: 'connecting', to: 'established', reason: 'quick mode' });
  // Reload: t2 becomes IKEv2; the next SA counts under "2" without waiting for a scrape.
  configured.t2 = 2;
  status.connections.t2 = conn({ version: 2, local: '192.0.2.2' });
  bus.emit('ike-state', { connection: 't2', from: 'connecting', to: 'established', reason: 'auth ok' });
  bus.emit('ike-failure', { connection: 'gone', reason: 'timeout', detail: '' });
  const e = parse(await m.metrics());
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '1' }), 1, 'before');
  t.equal(value(e, 'twinsec_ike_sa_established_total', { connection: 't2', version: '2' }), 1, 'after');
  t.equal(value(e, 'twinsec_connection_up', { connection: 't2', version: '2' }), 0, 'no CHILD_SA yet');
  t.equal(value(e, 'twinsec_connection_up', { connection: 't2', version: '1' }), undefined, 'gauge follows');
  t.equal(
    value(e, 'twinsec_ike_negotiation_failures_total', {
      connection: 'gone',
      version: '',
      reason: 'timeout',
    }),
    1,
    'an unknown connection gets version=""',
  );
});

t.test('counters stay monotonic across SA replacement and source restarts', async (t) => {
  const { status, running, scrape } = await setup(t);
  const t1 = status.connections.t1!;
  let e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1000);

  t1.children[0]!.bytesIn = 1600;
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1600);

  // Make-before-break: the new SA appears next to the old one, then the old one goes.
  t1.children.push(child('d0000001', 'e0000001', { bytesIn: 100, packetsIn: 1 }));
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1700);
  t1.children.shift();
  t1.children[0]!.bytesIn = 300;
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1900, 'old SA kept');
  t.equal(value(e, 'twinsec_esp_packets_total', { connection: 't1', direction: 'in' }), 11);

  // Break-before-make (tunnel down and renegotiated): counters start again from zero per SA.
  t1.children = [];
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1900);
  t1.children = [child('f0000001', 'f0000002', { bytesIn: 5 })];
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1905);

  // The same SPIs with a smaller value: a new SA that reused them (or an engine restart).
  t1.children = [child('f0000001', 'f0000002', { bytesIn: 2 })];
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1907);

  // Final counters of a removed SA count what it carried since the last scrape.
  t1.children[0]!.bytesIn = 50;
  running.metrics.saRemoved('t1', 0xf0000001, 0xf0000002, {
    bytesIn: 60,
    bytesOut: 0,
    packetsIn: 3,
    packetsOut: 0,
  });
  t1.children = [];
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1965);

  // The router's switch count restarts when the HA layer is rebuilt (reload): no decrease.
  status.routes[0]!.switches = 4;
  e = await scrape();
  t.equal(value(e, 'twinsec_route_switches_total', { destination: '198.19.1.0/24' }), 4);
  status.routes[0]!.switches = 1;
  e = await scrape();
  t.equal(value(e, 'twinsec_route_switches_total', { destination: '198.19.1.0/24' }), 5);
  status.drops.esp.noSa = 1;
  e = await scrape();
  t.equal(value(e, 'twinsec_esp_dropped_packets_total', { connection: '', reason: 'no_sa' }), 3);
});

t.test('no secret reaches the exposition; odd reasons fold to a token', async (t) => {
  const cfg = parseConfig(`
connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "${PSK}"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
metrics: { listen: "127.0.0.1:9469" }
`);
  const { bus, scrape } = await setup(t);
  bus.emit('ike-failure', { connection: 't1', reason: `psk ${PSK}`, detail: `detail with ${PSK}` });
  bus.emit('ike-failure', {
    connection: 't1',
    reason: 'auth_failed',
    detail: cfg.connections.t1!.psk.toString(),
  });
  const e = await scrape();
  const text = JSON.stringify(e);
  t.notOk(text.includes(PSK), 'PSK absent');
  t.notOk(text.includes('detail with'), 'failure details are not labels');
  t.equal(
    value(e, 'twinsec_ike_negotiation_failures_total', { connection: 't1', version: '2', reason: 'other' }),
    1,
  );
  t.equal(
    value(e, 'twinsec_ike_negotiation_failures_total', {
      connection: 't1',
      version: '2',
      reason: 'auth_failed',
    }),
    1,
  );
  t.equal(snakeCase('noSa'), 'no_sa');
  t.equal(snakeCase('noRoute'), 'no_route');
  t.equal(snakeCase('weird reason!'), 'other');
});

t.test('HTTP: 404 elsewhere, 405 for other methods, HEAD, query strings', async (t) => {
  const { running } = await setup(t);
  const port = running.address.port;
  t.equal((await get(port, '/')).status, 404);
  t.equal((await get(port, '/metrics/x')).status, 404);
  t.equal((await get(port, '/favicon.ico')).status, 404);
  t.equal((await get(port, '/metrics', 'POST')).status, 405);
  const head = await get(port, '/metrics', 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body, '');
  const q = await get(port, '/metrics?name[]=twinsec_connection_up');
  t.equal(q.status, 200);
  t.match(q.body, /twinsec_connection_up\{connection="t1",version="2"\} 1/);
});

t.test('a failing snapshot keeps the last values; a throwing source gives 500', async (t) => {
  let fail = false;
  const status = fakeStatus();
  const m = new Metrics({
    snapshot: () => {
      if (fail) throw new Error('stopping');
      return status;
    },
    defaultMetrics: false,
  });
  let e = parse(await m.metrics());
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1000);
  fail = true;
  e = parse(await m.metrics());
  t.equal(value(e, 'twinsec_esp_bytes_total', { connection: 't1', direction: 'in' }), 1000);
  t.notOk(e.types.has('process_cpu_user_seconds_total'), 'defaultMetrics: false');

  const server = new MetricsServer({
    metrics: () => Promise.reject(new Error('boom')),
    contentType: 'text/plain',
  });
  const addr = await server.start('127.0.0.1', 0);
  t.teardown(() => server.close());
  t.equal((await get(addr.port, '/metrics')).status, 500);
});

t.test('route_active without configured next hops lists those seen active', async (t) => {
  const { status, scrape } = await setup(t, false);
  let e = await scrape();
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't1' }), 1);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't2' }), undefined);
  status.routes[0]!.active = ['t2'];
  e = await scrape();
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't1' }), 0);
  t.equal(value(e, 'twinsec_route_active', { destination: '198.19.1.0/24', connection: 't2' }), 1);
});

t.test('instances are independent of each other and of the global registry', async (t) => {
  const a = new Metrics({ snapshot: fakeStatus, bus: new EventBus() });
  const busB = new EventBus();
  const b = new Metrics({ snapshot: fakeStatus, bus: busB });
  busB.emit('ike-state', { connection: 't1', from: 'connecting', to: 'established', reason: '' });
  t.equal(
    value(parse(await a.metrics()), 'twinsec_ike_sa_established_total', { connection: 't1', version: '2' }),
    0,
  );
  t.equal(
    value(parse(await b.metrics()), 'twinsec_ike_sa_established_total', { connection: 't1', version: '2' }),
    1,
  );
  t.equal(globalRegistry.getSingleMetric('twinsec_connection_up'), undefined);
  b.close();
  busB.emit('ike-state', { connection: 't1', from: 'connecting', to: 'established', reason: '' });
  t.equal(
    value(parse(await b.metrics()), 'twinsec_ike_sa_established_total', { connection: 't1', version: '2' }),
    1,
    'closed: no longer listening',
  );
  a.close();
});

t.test('startMetrics: a busy port is an error, close() frees the port', async (t) => {
  const bus = new EventBus();
  const first = await startMetrics({ listen: { host: '127.0.0.1', port: 0 }, bus, snapshot: fakeStatus });
  await t.rejects(
    startMetrics({ listen: { host: '127.0.0.1', port: first.address.port }, bus, snapshot: fakeStatus }),
    { code: 'EADDRINUSE' },
  );
  const port = first.address.port;
  await first.close();
  const again = await startMetrics({ listen: { host: '127.0.0.1', port }, bus, snapshot: fakeStatus });
  t.equal(again.address.port, port);
  await again.close();
});

t.test('the HA controller reports each answered probe on the bus (health-rtt)', async (t) => {
  const cfg = parseConfig(`
connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: x
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
    healthCheck: { source: 198.18.1.1, destination: 198.19.1.1, interval: 60 }
`);
  const bus = new EventBus();
  const sent: Buffer[] = [];
  const dp = {
    injectProbe: (_c: string, p: Buffer) => {
      sent.push(p);
      return true;
    },
    watchProbe: () => {},
    setRoutes: () => {},
  } as unknown as DataPlane;
  const ha = new HaController({ config: cfg, bus, dataplane: dp, saUp: () => true });
  const seen: { connection: string; seconds: number }[] = [];
  bus.on('health-rtt', (e) => seen.push(e));
  const m = new Metrics({ snapshot: fakeStatus, bus, defaultMetrics: false });
  ha.start();
  t.teardown(() => ha.stop());
  t.equal(sent.length, 1, 'first probe sent at start');
  // Turn the request into its reply (swap addresses, type 0).
  const r = Buffer.from(sent[0]!);
  const ihl = (r[0]! & 15) * 4;
  r.copy(r, 12, 16, 20);
  sent[0]!.copy(r, 16, 12, 16);
  r[ihl] = 0;
  ha.onProbe(r, process.hrtime.bigint());
  t.equal(seen.length, 1);
  t.equal(seen[0]!.connection, 't1');
  t.ok(seen[0]!.seconds >= 0 && seen[0]!.seconds < 5);
  const e = parse(await m.metrics());
  t.equal(value(e, 'twinsec_health_check_rtt_seconds_count', { connection: 't1' }), 1);
  m.close();
});

t.test('route-based connections: twinsec_interface_up follows the interface carrier', async (t) => {
  const status = fakeStatus();
  status.connections.r1 = conn({ interface: { name: 'tw-r1', address: '169.254.10.2/30', up: true } });
  status.connections.r2 = conn({ interface: { name: 'tw-r2', address: '169.254.20.2/30', up: false } });
  const m = new Metrics({ snapshot: () => status, defaultMetrics: false });
  let e = parse(await m.metrics());
  t.equal(e.types.get('twinsec_interface_up'), 'gauge');
  t.equal(value(e, 'twinsec_interface_up', { connection: 'r1', interface: 'tw-r1' }), 1, 'carrier');
  t.equal(value(e, 'twinsec_interface_up', { connection: 'r2', interface: 'tw-r2' }), 0, 'no carrier');
  t.notOk(
    e.samples.some((x) => x.name === 'twinsec_interface_up' && x.labels.connection === 't1'),
    'policy-based connections have no interface series',
  );
  status.connections.r2!.interface!.up = true;
  e = parse(await m.metrics());
  t.equal(
    value(e, 'twinsec_interface_up', { connection: 'r2', interface: 'tw-r2' }),
    1,
    'the next scrape follows',
  );
  m.close();
});

t.test('twinsec_control_packets_total: control packets by kind, counted across restarts', async (t) => {
  const status = fakeStatus();
  status.control = { probe: 10, echoAnswer: 4, echoReply: 1, routing: 50, unmarked: 0 };
  const m = new Metrics({ snapshot: () => status, defaultMetrics: false });
  let e = parse(await m.metrics());
  t.equal(e.types.get('twinsec_control_packets_total'), 'counter');
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'probe' }), 10);
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'echo_answer' }), 4);
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'routing' }), 50);
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'unmarked' }), 0);
  status.control = { probe: 15, echoAnswer: 4, echoReply: 1, routing: 50, unmarked: 7 };
  e = parse(await m.metrics());
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'probe' }), 15, 'increases added');
  t.equal(value(e, 'twinsec_control_packets_total', { kind: 'unmarked' }), 7);
  m.close();
});
