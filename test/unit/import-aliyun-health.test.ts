/**
 * `twinsec import-aliyun`: Alibaba's health check (HealthCheckConfig / VcoHealthCheck, Policy),
 * EnableDpd and EnableNatTraversal, for single-tunnel and dual-tunnel BGP downloads. Every case
 * loads the generated YAML with twinsec's own loader and checks what it makes of it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { type AliyunImport, ImportError, importAliyun } from '../../src/import/aliyun.js';

// Compiled to dist/test/unit; the CLIs are in dist/src/cli, fixtures in the source tree.
const TWINSECD = fileURLToPath(new URL('../../src/cli/twinsecd.js', import.meta.url));
const TWINSEC = fileURLToPath(new URL('../../src/cli/twinsec.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/aliyun/', import.meta.url));
const PSK = 'Health-PSK-Never-Shown';

type Json = Record<string, unknown>;

/** A valid single-tunnel IKEv2 download (as ikev2-default.json); `patch` edits a fresh copy. */
function single(patch: (d: Json) => void = () => {}): Json {
  const d = JSON.parse(readFileSync(join(FIXTURES, 'ikev2-default.json'), 'utf8')) as Json;
  (d.IkeConfig as Json).Psk = PSK;
  d.RemoteSubnet = '192.168.0.0/16, 172.16.0.0/12';
  patch(d);
  return d;
}

/** The form's example (CreateVpnConnection HealthCheckConfig), with `over` merged in. */
const form = (over: Json = {}): Json => ({
  enable: 'true',
  dip: '192.168.10.1',
  sip: '10.10.1.1',
  interval: '3',
  retry: '3',
  Policy: 'revoke_route',
  ...over,
});

const run1 = (d: unknown): AliyunImport => importAliyun(JSON.stringify(d));
/** The generated YAML as twinsecd --check loads it. */
const load = (r: AliyunImport) => parseConfig(r.yaml, { baseDir: '/' });

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ImportError) return err.issues;
    throw err;
  }
  throw new Error('expected an ImportError');
}

t.test('Policy revoke_route: the check from sip to dip, every route revoked when down', async (t) => {
  const r = run1(single((d) => (d.HealthCheckConfig = form())));
  t.same(r.warnings, []);
  t.same(r.config.connections.t1!.healthCheck, {
    source: '10.10.1.1',
    destination: '192.168.10.1',
    interval: 3,
    retries: 3,
  });
  const c = load(r);
  t.same(c.connections.t1!.healthCheck, {
    source: '10.10.1.1',
    destination: '192.168.10.1',
    interval: 3,
    retries: 3,
    resetAfter: 60,
  });
  t.same(
    c.routes.map((x) => [x.destination, x.onAllDown]),
    [
      ['192.168.0.0/16', 'revoke'],
      ['172.16.0.0/12', 'revoke'],
    ],
  );
});

t.test('Policy reserve_route is written out as reserve; absent Policy means revoke_route', async (t) => {
  const reserve = run1(single((d) => (d.HealthCheckConfig = form({ Policy: 'reserve_route' }))));
  t.same(reserve.warnings, []);
  t.same(
    reserve.config.routes!.map((x) => x.onAllDown),
    ['reserve', 'reserve'],
  );
  t.match(reserve.yaml, /^ {4}onAllDown: reserve$/m);
  t.same(
    load(reserve).routes.map((x) => x.onAllDown),
    ['reserve', 'reserve'],
  );

  const absent = run1(
    single((d) => {
      const hc = form({ interval: 5, retry: 10 });
      delete hc.Policy;
      d.HealthCheckConfig = hc;
    }),
  );
  const c = load(absent);
  t.same(
    c.routes.map((x) => x.onAllDown),
    ['revoke', 'revoke'],
    "Alibaba's default",
  );
  t.equal(c.connections.t1!.healthCheck!.interval, 5);
  t.equal(c.connections.t1!.healthCheck!.retries, 10);
  // Values in any case, padded.
  const upper = run1(single((d) => (d.HealthCheckConfig = form({ Policy: ' Reserve_Route ' }))));
  t.same(
    load(upper).routes.map((x) => x.onAllDown),
    ['reserve', 'reserve'],
  );
});

t.test('health check disabled or absent: no healthCheck, routes keep the default', async (t) => {
  const off = run1(single((d) => (d.HealthCheckConfig = form({ enable: 'false', Policy: 'revoke_route' }))));
  t.same(off.warnings, ['HealthCheckConfig: health check disabled; failover follows the SA state only']);
  t.equal(off.config.connections.t1!.healthCheck, undefined);
  t.notOk(
    off.config.routes!.some((x) => 'onAllDown' in x),
    'Policy applies only with the check on',
  );
  const c = load(off);
  t.equal(c.connections.t1!.healthCheck, undefined);
  t.same(
    c.routes.map((x) => x.onAllDown),
    ['reserve', 'reserve'],
  );

  const none = run1(single());
  t.same(none.warnings, [], 'absent: nothing to say');
  t.equal(load(none).connections.t1!.healthCheck, undefined);
  t.notMatch(none.yaml, /healthCheck|onAllDown/);
  // An empty string (the API's "not set") is absent too.
  t.same(run1(single((d) => (d.HealthCheckConfig = ''))).config, none.config);
  // Without enable: on when the object names addresses, off when it does not.
  const implicit = run1(
    single((d) => {
      const hc = form();
      delete hc.enable;
      d.HealthCheckConfig = hc;
    }),
  );
  t.equal(load(implicit).connections.t1!.healthCheck!.destination, '192.168.10.1');
  t.equal(
    run1(single((d) => (d.HealthCheckConfig = { Policy: 'revoke_route' }))).config.connections.t1!
      .healthCheck,
    undefined,
  );
});

t.test('HealthCheckConfig as a JSON string, and VcoHealthCheck with capitalised keys', async (t) => {
  const expected = { source: '10.10.1.1', destination: '192.168.10.1', interval: 2, retries: 4 };
  const text = run1(
    single((d) => (d.HealthCheckConfig = JSON.stringify(form({ interval: '2', retry: '4' })))),
  );
  t.same(text.config.connections.t1!.healthCheck, expected);
  t.same(load(text).connections.t1!.healthCheck, { ...expected, resetAfter: 60 });

  // DescribeVpnConnection: numbers and booleans, Status ignored.
  const vco = run1(
    single(
      (d) =>
        (d.VcoHealthCheck = {
          Enable: true,
          Dip: '192.168.10.1',
          Sip: '10.10.1.1',
          Interval: 2,
          Retry: 4,
          Policy: 'reserve_route',
          Status: 'failed',
        }),
    ),
  );
  t.same(vco.warnings, []);
  t.same(load(vco).connections.t1!.healthCheck, { ...expected, resetAfter: 60 });
  t.same(
    load(vco).routes.map((x) => x.onAllDown),
    ['reserve', 'reserve'],
  );
  const off = run1(single((d) => (d.VcoHealthCheck = { Enable: false, Status: 'unknown' })));
  t.same(off.warnings, ['VcoHealthCheck: health check disabled; failover follows the SA state only']);
  t.equal(load(off).connections.t1!.healthCheck, undefined);
});

t.test('bad health check values: every problem with its path, no PSK', async (t) => {
  const issues = issuesOf(() =>
    run1(
      single(
        (d) =>
          (d.HealthCheckConfig = form({
            dip: '192.168.10.300',
            sip: 42,
            interval: '0',
            retry: '2.5',
            Policy: 'drop_route',
            enable: 'yes',
          })),
      ),
    ),
  );
  t.same(issues, [
    'HealthCheckConfig.sip: expected a string, got number',
    "HealthCheckConfig.dip: '192.168.10.300' is not an IP address",
    "HealthCheckConfig.enable: unknown value 'yes' (use true or false)",
    'HealthCheckConfig.interval: 0 is out of range (twinsec accepts 0.01..3600 seconds; Alibaba 1..60)',
    'HealthCheckConfig.retry: 2.5 is not an integer in 1..100',
    "HealthCheckConfig.Policy: unknown value 'drop_route' (use revoke_route or reserve_route)",
  ]);
  t.same(
    issuesOf(() =>
      run1(single((d) => (d.VcoHealthCheck = { Enable: 'true', Dip: '192.168.10.1', Retry: 101 }))),
    ),
    [
      'VcoHealthCheck.Retry: 101 is not an integer in 1..100',
      'VcoHealthCheck.Sip: required when the health check is enabled',
    ],
  );
  t.same(
    issuesOf(() =>
      run1(single((d) => (d.HealthCheckConfig = form({ interval: 'often', dip: '2001:db8::1' })))),
    ),
    [
      "HealthCheckConfig.interval: 'often' is not a number",
      'HealthCheckConfig.dip: IPv6 address but sip is IPv4',
    ],
  );
  t.same(
    issuesOf(() => run1(single((d) => (d.HealthCheckConfig = '{"enable": "true", dip}')))),
    ['HealthCheckConfig: not valid JSON (expected an object, or an object as a JSON string)'],
  );
  t.same(
    issuesOf(() => run1(single((d) => (d.HealthCheckConfig = ['x'])))),
    ['HealthCheckConfig: expected an object, got a list'],
  );
  t.same(
    issuesOf(() =>
      run1({
        RequestId: 'x',
        VpnConnectionConfig: single((d) => (d.HealthCheckConfig = form({ dip: 'gw' }))),
      }),
    ),
    ["VpnConnectionConfig.HealthCheckConfig.dip: 'gw' is not an IP address"],
    'paths follow the API envelope',
  );
  for (const i of issues) t.notMatch(i, /Never-Shown/);
});

t.test('sip outside LocalSubnet, dip outside RemoteSubnet: warnings', async (t) => {
  const r = run1(single((d) => (d.HealthCheckConfig = form({ sip: '10.99.0.1', dip: '10.10.2.2' }))));
  t.same(r.warnings, [
    "HealthCheckConfig.sip: 10.99.0.1 is not in LocalSubnet: probes from an address outside the tunnel's " +
      'selectors are not carried by the tunnel, so the check would fail',
    "HealthCheckConfig.dip: 10.10.2.2 is not in RemoteSubnet: probes to an address outside the tunnel's " +
      'selectors are not carried by the tunnel, so the check would fail',
  ]);
  t.equal(load(r).connections.t1!.healthCheck!.source, '10.99.0.1', 'imported as written');
  for (const w of r.warnings) t.notMatch(w, /Never-Shown/);
});

t.test('EnableDpd: true or absent -> dpd with twinsec timers, false -> none', async (t) => {
  for (const v of [true, 'true', 'TRUE', undefined]) {
    const r = run1(single((d) => (d.EnableDpd = v)));
    t.same(r.config.connections.t1!.dpd, { delay: 10, timeout: 20 }, `EnableDpd ${String(v)}`);
    t.same(load(r).connections.t1!.dpd, { delay: 10, timeout: 20 });
  }
  for (const v of [false, 'false']) {
    const r = run1(single((d) => (d.EnableDpd = v)));
    t.same(r.warnings, []);
    t.notOk('dpd' in r.config.connections.t1!, `EnableDpd ${String(v)}`);
    t.equal(load(r).connections.t1!.dpd, undefined);
  }
  t.same(
    issuesOf(() => run1(single((d) => (d.EnableDpd = 'on')))),
    ["EnableDpd: unknown value 'on' (use true or false)"],
  );
});

t.test('EnableNatTraversal: false -> encapsulation esp with a warning; true -> auto', async (t) => {
  const off = run1(single((d) => (d.EnableNatTraversal = false)));
  t.equal(off.config.connections.t1!.encapsulation, 'esp');
  t.same(off.warnings, [
    'EnableNatTraversal: NAT traversal is off: twinsec sends raw ESP (IP protocol 50, encapsulation: esp), ' +
      'which every firewall and NAT on the path must pass',
  ]);
  t.equal(load(off).connections.t1!.encapsulation, 'esp');
  for (const v of [true, 'true', undefined]) {
    const on = run1(single((d) => (d.EnableNatTraversal = v)));
    t.same(on.warnings, []);
    t.notOk('encapsulation' in on.config.connections.t1!);
    t.equal(load(on).connections.t1!.encapsulation, 'auto');
  }
});

// ---- dual tunnel with BGP ----

type Bgp = { VpnConnectionConfig: Json & { TunnelsConfig: { TunnelConfig: Json[] } } };
function dual(patch: (d: Bgp['VpnConnectionConfig']) => void): Bgp {
  const d = JSON.parse(readFileSync(join(FIXTURES, 'bgp-dual-tunnel.json'), 'utf8')) as Bgp;
  patch(d.VpnConnectionConfig);
  return d;
}
const tun = (d: Bgp['VpnConnectionConfig'], i: number): Json => d.TunnelsConfig.TunnelConfig[i]!;
const runBgp = (d: unknown): AliyunImport => importAliyun(JSON.stringify(d), { networks: ['10.10.0.0/16'] });
const P = 'VpnConnectionConfig.';

t.test('dual tunnel: root HealthCheckConfig for both, tunnel-level wins, EnableDpd per tunnel', async (t) => {
  const r = runBgp(
    dual((d) => {
      // Root: both tunnels, the inside addresses as sip/dip.
      d.HealthCheckConfig = JSON.stringify({
        enable: 'true',
        interval: '2',
        retry: '5',
        Policy: 'revoke_route',
      });
      // Tunnel 2's own wins: disabled.
      tun(d, 1).HealthCheckConfig = { enable: 'false' };
      tun(d, 1).EnableDpd = 'false';
      tun(d, 0).EnableDpd = true;
    }),
  );
  t.same(r.warnings, [
    `${P}TunnelsConfig.TunnelConfig[1].HealthCheckConfig: health check disabled; a tunnel device's carrier follows its SA state only`,
  ]);
  const c = load(r);
  t.same(c.connections.t1!.healthCheck, {
    source: '169.254.10.2',
    destination: '169.254.10.1',
    interval: 2,
    retries: 5,
    resetAfter: 60,
  });
  t.equal(c.connections.t2!.healthCheck, undefined);
  t.same(c.connections.t1!.dpd, { delay: 10, timeout: 20 });
  t.equal(c.connections.t2!.dpd, undefined);
  t.same(c.routes, [], 'FRR routes: no routes to carry Policy');

  // Tunnel-level sip/dip and VcoHealthCheck keys; root EnableNatTraversal false applies to both, one warning.
  const v = runBgp(
    dual((d) => {
      d.EnableNatTraversal = 'false';
      tun(d, 0).VcoHealthCheck = {
        Enable: 'true',
        Sip: '10.10.1.1',
        Dip: '192.168.10.1',
        Interval: 1,
        Retry: 3,
      };
      tun(d, 1).EnableNatTraversal = true;
    }),
  );
  t.same(v.warnings, [
    `${P}EnableNatTraversal: NAT traversal is off: twinsec sends raw ESP (IP protocol 50, encapsulation: esp), ` +
      'which every firewall and NAT on the path must pass',
  ]);
  const cv = load(v);
  t.same(cv.connections.t1!.healthCheck, {
    source: '10.10.1.1',
    destination: '192.168.10.1',
    interval: 1,
    retries: 3,
    resetAfter: 60,
  });
  t.same(
    cv.connections.t2!.healthCheck,
    {
      source: '169.254.20.2',
      destination: '169.254.20.1',
      interval: 1,
      retries: 3,
      resetAfter: 60,
    },
    'no HealthCheckConfig: the default check of the inside address',
  );
  t.equal(cv.connections.t1!.encapsulation, 'esp');
  t.equal(cv.connections.t2!.encapsulation, 'auto', 'the tunnel-level value wins');
});

t.test('dual tunnel: reserve_route cannot apply (warning), bad values are issues', async (t) => {
  const r = runBgp(dual((d) => (d.HealthCheckConfig = { enable: 'true', Policy: 'reserve_route' })));
  t.same(r.warnings, [
    `${P}HealthCheckConfig.Policy: reserve_route cannot apply: a tunnel whose check fails loses carrier, so the ` +
      'routes through it are always withdrawn (revoke_route)',
  ]);
  const c = load(r);
  t.same(
    [c.connections.t1!.healthCheck!.interval, c.connections.t2!.healthCheck!.retries],
    [3, 3],
    "Alibaba's defaults (interval 3 s, retry 3)",
  );
  t.same(
    runBgp(dual((d) => (d.HealthCheckConfig = { enable: 'true', Policy: 'revoke_route' }))).warnings,
    [],
  );
  t.same(
    issuesOf(() =>
      runBgp(
        dual((d) => {
          tun(d, 0).HealthCheckConfig = { enable: 'true', Policy: 'keep', retry: 0 };
          tun(d, 1).EnableDpd = 'maybe';
        }),
      ),
    ),
    [
      `${P}TunnelsConfig.TunnelConfig[0].HealthCheckConfig.retry: 0 is not an integer in 1..100`,
      `${P}TunnelsConfig.TunnelConfig[0].HealthCheckConfig.Policy: unknown value 'keep' (use revoke_route or reserve_route)`,
      `${P}TunnelsConfig.TunnelConfig[1].EnableDpd: unknown value 'maybe' (use true or false)`,
    ],
  );
});

// ---- the CLI, once ----

function node(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('CLI: a download with a health check, DPD and NAT-T off passes twinsecd --check', async (t) => {
  const file = join(FIXTURES, 'ikev2-health-check.json');
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-aliyun-health-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await node(TWINSEC, ['import-aliyun', file]);
  t.equal(r.code, 0, r.stderr);
  const lib = importAliyun(readFileSync(file, 'utf8'));
  t.equal(r.stdout, lib.yaml);
  t.equal(r.stderr, lib.warnings.map((w) => `twinsec: warning: ${w}\n`).join(''));
  t.match(r.stderr, /EnableNatTraversal: NAT traversal is off/);
  t.notMatch(r.stderr, /health-fixture-psk/);
  const out = join(dir, 'twinsec.yaml');
  writeFileSync(out, r.stdout, { mode: 0o600 });
  const c = await node(TWINSECD, ['--check', '--config', out]);
  t.equal(c.code, 0, c.stderr);
  t.equal(
    c.stdout,
    'configuration OK: 1 connections, 1 routes (1 withdrawn while every next hop is down), 1 health checks (1 resetting the SA when failing)\n',
  );
  const cfg = parseConfig(r.stdout, { baseDir: '/' });
  t.same(cfg.connections.t1!.healthCheck, {
    source: '10.10.1.1',
    destination: '192.168.10.1',
    interval: 3,
    retries: 3,
    resetAfter: 60,
  });
  t.same(cfg.connections.t1!.dpd, { delay: 10, timeout: 20 });
  t.equal(cfg.connections.t1!.encapsulation, 'esp');
  t.same(
    cfg.routes.map((x) => x.onAllDown),
    ['revoke'],
  );
});
