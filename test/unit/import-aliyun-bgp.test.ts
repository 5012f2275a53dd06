/**
 * `twinsec import-aliyun` with an Alibaba Cloud dual-tunnel download with BGP (TunnelsConfig and
 * BgpConfigs): two route-based connections for twinsec plus an FRR snippet (project issue #12).
 * The fixtures under test/fixtures/aliyun/bgp-*.json are written for these tests in the shape of
 * DownloadVpnConnectionConfig's response (the SDK models: lists wrapped as {"TunnelConfig": [...]}).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import {
  type AliyunImport,
  type AliyunImportOptions,
  ImportError,
  importAliyun,
  parseAsn,
} from '../../src/import/aliyun.js';

// Compiled to dist/test/unit; the CLIs are in dist/src/cli, fixtures in the source tree.
const TWINSECD = fileURLToPath(new URL('../../src/cli/twinsecd.js', import.meta.url));
const TWINSEC = fileURLToPath(new URL('../../src/cli/twinsec.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/aliyun/', import.meta.url));
const SAMPLE = join(FIXTURES, 'bgp-dual-tunnel.json');
const NETWORKS = ['10.10.0.0/16', '10.20.0.0/16'];

type Json = Record<string, unknown>;
type Download = {
  VpnConnectionConfig: Json & { TunnelsConfig: { TunnelConfig: Json[] }; BgpConfigs: { BgpConfig: Json[] } };
};

/** The sample as an object; `patch` edits a deep copy. */
function sample(patch: (d: Download['VpnConnectionConfig']) => void = () => {}): Download {
  const d = JSON.parse(readFileSync(SAMPLE, 'utf8')) as Download;
  patch(d.VpnConnectionConfig);
  return d;
}
const tunnel = (d: Download['VpnConnectionConfig'], i: number): Json => d.TunnelsConfig.TunnelConfig[i]!;
/** BgpConfig of tunnel `n` (1 or 2): the sample lists tunnel 2's first, paired by TunnelId. */
const bgpOf = (d: Download['VpnConnectionConfig'], n: 1 | 2): Json =>
  d.BgpConfigs.BgpConfig.find((b) => String(b.TunnelId).endsWith(`000${n}`))!;

const run1 = (d: unknown, opts: AliyunImportOptions = { networks: NETWORKS }): AliyunImport =>
  importAliyun(JSON.stringify(d), opts);

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ImportError) return err.issues;
    throw err;
  }
  throw new Error('expected an ImportError');
}

/** The lines of the FRR block that starts with `header` (up to the next top-level `!`). */
function block(frr: string, header: string): string[] {
  const lines = frr.split('\n');
  const start = lines.indexOf(header);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l === '!');
  return lines.slice(start, end < 0 ? undefined : end);
}

const P = 'VpnConnectionConfig.';
const T = (i: number, k: string) => `${P}TunnelsConfig.TunnelConfig[${i}].${k}`;
const B = (i: number, k: string) => `${P}BgpConfigs.BgpConfig[${i}].${k}`;

t.test('the sample imports to two route-based connections that the config parser accepts', async (t) => {
  const r = run1(sample());
  t.same(r.warnings, []);
  const common = {
    version: 2,
    ike: { proposals: ['aes256-sha256-modp2048'], lifetime: 86400 },
    esp: { proposals: ['aes256-sha256-modp2048'], lifetime: 3600 },
    localSubnets: ['0.0.0.0/0'],
    remoteSubnets: ['0.0.0.0/0'],
    start: 'initiate',
    dpd: { delay: 10, timeout: 20 },
  };
  t.same(r.config, {
    connections: {
      t1: {
        local: '192.0.2.10',
        remote: '203.0.113.20',
        localId: '192.0.2.10',
        remoteId: '203.0.113.20',
        psk: 'fixture-psk-tunnel1-Q7v2',
        ...common,
        healthCheck: { source: '169.254.10.2', destination: '169.254.10.1', interval: 1, retries: 3 },
        interface: { name: 'tw-t1', address: '169.254.10.2/30' },
      },
      t2: {
        local: '198.51.100.10',
        remote: '203.0.113.21',
        localId: '198.51.100.10',
        remoteId: '203.0.113.21',
        psk: 'fixture-psk-tunnel2-m4Kd',
        ...common,
        healthCheck: { source: '169.254.20.2', destination: '169.254.20.1', interval: 1, retries: 3 },
        interface: { name: 'tw-t2', address: '169.254.20.2/30' },
      },
    },
  });
  // What twinsecd --check loads.
  const c = parseConfig(r.yaml);
  t.same(Object.keys(c.connections), ['t1', 't2']);
  t.same(c.routes, []);
  t.same(c.connections.t1!.interface, { name: 'tw-t1', address: '169.254.10.2/30', mtu: 1400 });
  t.same(c.connections.t2!.interface, { name: 'tw-t2', address: '169.254.20.2/30', mtu: 1400 });
  t.equal(c.connections.t1!.healthCheck?.destination, '169.254.10.1');
  t.equal(c.connections.t1!.psk.toString('utf8'), 'fixture-psk-tunnel1-Q7v2');
  t.equal(c.connections.t2!.psk.toString('utf8'), 'fixture-psk-tunnel2-m4Kd');
  t.match(r.yaml, /^# snippet written with --frr/m);
  t.same(r.bgp, {
    asn: 65010,
    networks: NETWORKS,
    tunnels: [
      {
        connection: 't1',
        interfaceName: 'tw-t1',
        tunnelId: 'tun-twinsecfixture0001',
        address: '169.254.10.2',
        prefix: 30,
        cloudAddress: '169.254.10.1',
        cloudAsn: 45104,
      },
      {
        connection: 't2',
        interfaceName: 'tw-t2',
        tunnelId: 'tun-twinsecfixture0002',
        address: '169.254.20.2',
        prefix: 30,
        cloudAddress: '169.254.20.1',
        cloudAsn: 45104,
      },
    ],
  });
});

t.test('sides: LocalBgpIp is the cloud (the BGP neighbour), PeerBgpIp the on-premises device', async (t) => {
  // Swap the two addresses of tunnel 1: the device and the neighbour must follow the fields.
  const r = run1(
    sample((d) => {
      bgpOf(d, 1).LocalBgpIp = '169.254.10.2';
      bgpOf(d, 1).PeerBgpIp = '169.254.10.1';
    }),
  );
  t.same(r.config.connections.t1!.interface, { name: 'tw-t1', address: '169.254.10.1/30' });
  t.same(r.config.connections.t1!.healthCheck, {
    source: '169.254.10.1',
    destination: '169.254.10.2',
    interval: 1,
    retries: 3,
  });
  t.ok(r.frr!.split('\n').includes(' neighbor 169.254.10.2 remote-as 45104'));
  t.notOk(r.frr!.includes('neighbor 169.254.10.1 '));
  // LocalAsn is the cloud's, PeerAsn ours.
  const a = run1(
    sample((d) => {
      bgpOf(d, 1).LocalAsn = '64600';
      bgpOf(d, 2).LocalAsn = '64600';
    }),
  );
  t.equal(a.bgp!.asn, 65010);
  t.ok(a.frr!.split('\n').includes(' neighbor 169.254.10.1 remote-as 64600'));
  t.ok(a.frr!.split('\n').includes('router bgp 65010'));
});

t.test('the FRR snippet', async (t) => {
  const frr = run1(sample()).frr!;
  const lines = frr.split('\n');
  // FRR stops reading a file at a top-level `exit`: blocks end with `!`.
  t.notOk(
    lines.some((l) => /^\s*(exit|end)\s*$/.test(l)),
    'no exit or end',
  );
  t.ok(frr.endsWith('!\n'));
  t.same(block(frr, 'bfd'), [
    'bfd',
    ' profile twinsec',
    '  detect-multiplier 3',
    '  receive-interval 300',
    '  transmit-interval 300',
    ' !',
  ]);
  t.same(
    lines.filter((l) => l.startsWith('ip prefix-list')),
    [
      'ip prefix-list TWINSEC-ONPREM seq 5 permit 10.10.0.0/16',
      'ip prefix-list TWINSEC-ONPREM seq 10 permit 10.20.0.0/16',
    ],
  );
  // Tunnel 1 preferred: local-preference in, prepend only on tunnel 2 out.
  t.same(block(frr, 'route-map TWINSEC-T1-IN permit 10'), [
    'route-map TWINSEC-T1-IN permit 10',
    ' set local-preference 200',
  ]);
  t.same(block(frr, 'route-map TWINSEC-T2-IN permit 10'), [
    'route-map TWINSEC-T2-IN permit 10',
    ' set local-preference 100',
  ]);
  t.same(block(frr, 'route-map TWINSEC-T1-OUT permit 10'), [
    'route-map TWINSEC-T1-OUT permit 10',
    ' match ip address prefix-list TWINSEC-ONPREM',
  ]);
  t.same(block(frr, 'route-map TWINSEC-T2-OUT permit 10'), [
    'route-map TWINSEC-T2-OUT permit 10',
    ' match ip address prefix-list TWINSEC-ONPREM',
    ' set as-path prepend 65010 65010',
  ]);
  t.same(block(frr, 'router bgp 65010'), [
    'router bgp 65010',
    ' neighbor 169.254.10.1 remote-as 45104',
    ' neighbor 169.254.10.1 description twinsec t1 tw-t1 tun-twinsecfixture0001',
    ' neighbor 169.254.10.1 bfd profile twinsec',
    ' neighbor 169.254.20.1 remote-as 45104',
    ' neighbor 169.254.20.1 description twinsec t2 tw-t2 tun-twinsecfixture0002',
    ' neighbor 169.254.20.1 bfd profile twinsec',
    ' !',
    ' address-family ipv4 unicast',
    '  network 10.10.0.0/16',
    '  network 10.20.0.0/16',
    '  neighbor 169.254.10.1 activate',
    '  neighbor 169.254.10.1 route-map TWINSEC-T1-IN in',
    '  neighbor 169.254.10.1 route-map TWINSEC-T1-OUT out',
    '  neighbor 169.254.20.1 activate',
    '  neighbor 169.254.20.1 route-map TWINSEC-T2-IN in',
    '  neighbor 169.254.20.1 route-map TWINSEC-T2-OUT out',
    ' exit-address-family',
  ]);
  // Comments only outside the blocks; the PSKs never appear.
  t.notMatch(frr, /fixture-psk/);
});

t.test('tolerant reading: bare lists, numbers, no envelope, derived fields', async (t) => {
  const d = sample().VpnConnectionConfig;
  const bare = {
    ...d,
    TunnelsConfig: d.TunnelsConfig.TunnelConfig,
    BgpConfigs: d.BgpConfigs.BgpConfig.map((b) => ({
      ...b,
      EnableBgp: true,
      LocalAsn: 45104,
      PeerAsn: 65010,
    })),
  };
  const r = run1(bare);
  t.same(r.config, run1(sample()).config, 'same config without the envelope and wrappers');
  t.same(r.warnings, []);
  t.equal(r.frr, run1(sample()).frr);

  const derived = run1(
    sample((d) => {
      delete bgpOf(d, 1).PeerBgpIp;
      delete bgpOf(d, 2).LocalAsn;
    }),
  );
  t.same(derived.config.connections.t1!.interface, { name: 'tw-t1', address: '169.254.10.2/30' });
  t.same(derived.bgp!.tunnels[1]!.cloudAsn, 45104);
  t.same(derived.warnings, [
    `${B(1, 'PeerBgpIp')}: absent; using 169.254.10.2, the other host address of TunnelCidr`,
    `${B(0, 'LocalAsn')}: absent; using Alibaba's default 45104`,
  ]);

  // Without TunnelIds the entries pair by position (tunnel 2's BgpConfig is listed first here).
  const byPos = run1(
    sample((d) => {
      for (const b of d.BgpConfigs.BgpConfig) delete b.TunnelId;
    }),
  );
  t.same(byPos.config.connections.t1!.interface, { name: 'tw-t1', address: '169.254.20.2/30' });
  t.same(byPos.warnings, [
    `${P}BgpConfigs: TunnelId missing; BgpConfigs entries paired with TunnelsConfig entries by position`,
  ]);

  // Both tunnels from one customer gateway address (one WAN link): still two connections.
  const oneWan = run1(sample((d) => (tunnel(d, 1).Local = '192.0.2.10')));
  t.equal(oneWan.config.connections.t2!.local, '192.0.2.10');
  t.equal(parseAsn('1.10'), 65546, "Alibaba's two-segment ASN notation");
  t.equal(parseAsn(' 4294967295 '), 4294967295);
  t.match(parseAsn('4294967296'), /out of range/);
  t.match(parseAsn(23456), /AS_TRANS/);
  t.match(parseAsn('65000x'), /is not an ASN/);
});

t.test('the on-premises ASN and prefixes', async (t) => {
  const noPeer = sample((d) => {
    delete bgpOf(d, 1).PeerAsn;
    delete bgpOf(d, 2).PeerAsn;
  });
  t.same(
    issuesOf(() => run1(noPeer)),
    [`${B(1, 'PeerAsn')}: absent: give the on-premises ASN with --asn`],
  );
  t.equal(run1(noPeer, { networks: NETWORKS, asn: '65020' }).bgp!.asn, 65020);
  t.equal(run1(sample(), { networks: NETWORKS, asn: 65010 }).bgp!.asn, 65010, '--asn may repeat PeerAsn');
  t.same(
    issuesOf(() => run1(sample(), { networks: NETWORKS, asn: '65020' })),
    [
      `${B(1, 'PeerAsn')}: 65010 differs from --asn 65020`,
      `${B(0, 'PeerAsn')}: 65010 differs from --asn 65020`,
    ],
  );
  t.same(
    issuesOf(() => run1(noPeer, { networks: NETWORKS, asn: 'as65000' })),
    ["--asn: 'as65000' is not an ASN (1..4294967295, or high.low)"],
  );
  t.same(
    issuesOf(() => run1(noPeer, { networks: NETWORKS, asn: '45104' })),
    ["--asn: 45104 is the cloud side's ASN too (LocalAsn): the snippet sets up eBGP, which needs two ASNs"],
  );
  t.same(
    issuesOf(() => run1(sample((d) => (bgpOf(d, 2).PeerAsn = '65011')))),
    [`${B(0, 'PeerAsn')}: 65011 differs from tunnel 1's PeerAsn 65010`],
  );

  // Prefixes: --network (comma-separated too), else LocalSubnet unless it is 0.0.0.0/0.
  t.same(
    run1(sample(), { networks: ['10.10.0.0/16, 10.20.0.0/16', '10.10.0.0/16'] }).bgp!.networks,
    NETWORKS,
  );
  t.same(
    issuesOf(() => run1(sample(), {})),
    [
      "--network: required: the download's LocalSubnet is 0.0.0.0/0 (give the on-premises prefixes FRR should announce with --network CIDR)",
    ],
  );
  t.same(
    run1(
      sample((d) => (d.LocalSubnet = '10.30.0.0/16,10.31.0.0/16')),
      {},
    ).bgp!.networks,
    ['10.30.0.0/16', '10.31.0.0/16'],
  );
  t.same(
    issuesOf(() => run1(sample(), { networks: ['2001:db8::/32', '10.1.0.0/8'] })),
    [
      '--network: 2001:db8::/32: IPv6 is not supported (the FRR snippet is IPv4 unicast only)',
      "--network: host bits set in '10.1.0.0/8'",
    ],
  );
});

t.test('bad downloads are refused, naming the field', async (t) => {
  const bad = (file: string) =>
    issuesOf(() => importAliyun(readFileSync(join(FIXTURES, file), 'utf8'), { networks: NETWORKS }));
  // Tunnel 1 (its BgpConfig is entry [1]) is read first.
  t.same(bad('bgp-bad-bgp.json'), [
    `${B(1, 'LocalBgpIp')}: required`,
    `${B(0, 'TunnelCidr')}: 10.0.0.0/30 is not a /30 within 169.254.0.0/16 (Alibaba's tunnel CIDR)`,
  ]);
  t.same(bad('bgp-bad-one-tunnel.json'), [`${P}TunnelsConfig: expected 2 tunnels, got 1`]);

  const cases: [string, (d: Download['VpnConnectionConfig']) => void, string[]][] = [
    [
      'BGP disabled on a tunnel',
      (d) => (bgpOf(d, 2).EnableBgp = 'false'),
      [
        `${B(0, 'EnableBgp')}: BGP is disabled for this tunnel (enable BGP on both tunnels, then download again)`,
      ],
    ],
    [
      'inside address outside the tunnel CIDR',
      (d) => (bgpOf(d, 1).PeerBgpIp = '169.254.11.2'),
      [`${B(1, 'PeerBgpIp')}: 169.254.11.2 is not in TunnelCidr 169.254.10.0/30`],
    ],
    [
      'the broadcast address',
      (d) => (bgpOf(d, 1).LocalBgpIp = '169.254.10.3'),
      [
        `${B(1, 'LocalBgpIp')}: 169.254.10.3 is the network or broadcast address of TunnelCidr 169.254.10.0/30`,
      ],
    ],
    [
      'both ends the same',
      (d) => (bgpOf(d, 1).PeerBgpIp = '169.254.10.1'),
      [`${B(1, 'PeerBgpIp')}: 169.254.10.1 is LocalBgpIp too (the two ends need different addresses)`],
    ],
    [
      'a /29',
      (d) => (bgpOf(d, 1).TunnelCidr = '169.254.10.0/29'),
      [`${B(1, 'TunnelCidr')}: 169.254.10.0/29 is not a /30 within 169.254.0.0/16 (Alibaba's tunnel CIDR)`],
    ],
    [
      'the same tunnel CIDR twice',
      (d) => {
        Object.assign(bgpOf(d, 2), {
          TunnelCidr: '169.254.10.0/30',
          LocalBgpIp: '169.254.10.1',
          PeerBgpIp: '169.254.10.2',
        });
      },
      [`${B(0, 'TunnelCidr')}: same TunnelCidr as ${P}BgpConfigs.BgpConfig[1]`],
    ],
    [
      'per-tunnel IKE/IPsec problems',
      (d) => {
        (tunnel(d, 1).IpsecConfig as Json).IpsecEncAlg = 'des';
        delete (tunnel(d, 0).IkeConfig as Json).Psk;
        tunnel(d, 0).Remote = 'cloud';
      },
      [
        `${T(0, 'Remote')}: 'cloud' is not an IP address`,
        `${T(0, 'IkeConfig.Psk')}: required`,
        `${T(1, 'IpsecConfig.IpsecEncAlg')}: 'des' is not supported by twinsec (single DES: its 56-bit key is too weak; use aes, aes192, aes256 or 3des)`,
      ],
    ],
    [
      'an unknown TunnelId',
      (d) => (bgpOf(d, 2).TunnelId = 'tun-other'),
      [`${T(1, 'TunnelId')}: no BgpConfigs entry has TunnelId 'tun-twinsecfixture0002'`],
    ],
    [
      'the same gateway pair twice',
      (d) => Object.assign(tunnel(d, 1), { Local: '192.0.2.10', Remote: '203.0.113.20' }),
      [
        `${T(1, 'Remote')}: both tunnels have the same Local and Remote (two tunnels need two gateway addresses)`,
      ],
    ],
    [
      'TunnelsConfig not a list',
      (d) => ((d as Json).TunnelsConfig = { TunnelConfig: 'x' }),
      [`${P}TunnelsConfig: expected {"TunnelConfig": [...]} or a list, got string`],
    ],
    [
      'a count mismatch',
      (d) => d.BgpConfigs.BgpConfig.pop(),
      [`${P}BgpConfigs: expected one entry per tunnel (2), got 1`],
    ],
  ];
  for (const [what, patch, issues] of cases)
    t.same(
      issuesOf(() => run1(sample(patch))),
      issues,
      what,
    );

  t.same(
    issuesOf(() => run1(sample(), { networks: NETWORKS, name: 'main' })),
    ['--name: not used with a dual-tunnel BGP download (its connections are t1 and t2)'],
  );
  // A single-tunnel download refuses the BGP-only options and keeps its behaviour otherwise.
  const single = readFileSync(join(FIXTURES, 'ikev2-default.json'), 'utf8');
  t.same(
    issuesOf(() => importAliyun(single, { asn: 65010, networks: NETWORKS })),
    [
      '--asn: only used with a dual-tunnel BGP download (TunnelsConfig and BgpConfigs)',
      '--network: only used with a dual-tunnel BGP download (TunnelsConfig and BgpConfigs)',
    ],
  );
  const plain = importAliyun(single);
  t.equal(plain.frr, undefined);
  t.equal(plain.bgp, undefined);
  t.same(importAliyun(JSON.stringify({ ...JSON.parse(single), BgpConfigs: { BgpConfig: [{}] } })).warnings, [
    'BgpConfigs: ignored; BGP is imported from dual-tunnel downloads (TunnelsConfig) only',
  ]);
  // No problem text carries a PSK.
  const all = cases.flatMap(([, patch]) => issuesOf(() => run1(sample(patch)))).join('\n');
  t.notMatch(all, /fixture-psk/);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: stderr + e.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}
const node = (script: string, args: string[], stdin?: string) =>
  run(process.execPath, [script, ...args], stdin);

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-aliyun-bgp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('CLI: --frr writes the snippet, the YAML passes twinsecd --check', async (t) => {
  const dir = tempDir(t);
  const frr = join(dir, 'frr.conf');
  const r = await node(TWINSEC, [
    'import-aliyun',
    SAMPLE,
    '--frr',
    frr,
    '--network',
    '10.10.0.0/16',
    '--network',
    '10.20.0.0/16',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const lib = importAliyun(readFileSync(SAMPLE, 'utf8'), { networks: NETWORKS });
  t.equal(r.stdout, lib.yaml);
  t.equal(readFileSync(frr, 'utf8'), lib.frr);
  const out = join(dir, 'twinsec.yaml');
  writeFileSync(out, r.stdout, { mode: 0o600 });
  const c = await node(TWINSECD, ['--check', '--config', out]);
  t.equal(c.code, 0, c.stderr);
  t.equal(
    c.stdout,
    'configuration OK: 2 connections, 0 routes, 2 health checks (2 resetting the SA when failing)\n',
  );

  const asn = await node(TWINSEC, [
    'import-aliyun',
    SAMPLE,
    '--frr',
    frr,
    '--network',
    '10.10.0.0/16',
    '--asn',
    '65020',
  ]);
  t.equal(asn.code, 1);
  t.match(asn.stderr, /PeerAsn: 65010 differs from --asn 65020/);
  const noFrr = await node(TWINSEC, ['import-aliyun', SAMPLE, '--network', '10.10.0.0/16']);
  t.equal(noFrr.code, 2);
  t.equal(noFrr.stdout, '');
  t.match(noFrr.stderr, /is a dual-tunnel BGP download: give --frr FILE/);
  const single = await node(TWINSEC, ['import-aliyun', join(FIXTURES, 'ikev2-default.json'), '--frr', frr]);
  t.equal(single.code, 2);
  t.match(single.stderr, /^twinsec: --frr: .* is not a dual-tunnel BGP download/);
  const other = await node(TWINSEC, ['status', '--frr', frr]);
  t.equal(other.code, 2);
  t.match(other.stderr, /--frr is only valid with import-aliyun/);
});

/**
 * vtysh's dry run (`vtysh -C -f FILE`) parses the snippet with the command definitions of every
 * FRR daemon, without any daemon running. Under CI, FRR is installed (.ci setup), so a missing
 * vtysh fails there instead of skipping; elsewhere it is skipped with the reason.
 */
const ci = !!process.env.CI && !/^(0|false|no)$/i.test(process.env.CI);
const vtyshMissing = (() => {
  const p = spawnSync('vtysh', ['--version'], { encoding: 'utf8' });
  return p.error
    ? `vtysh not found (${(p.error as NodeJS.ErrnoException).code}): apt-get install frr`
    : undefined;
})();

t.test(
  'vtysh accepts the FRR snippet (dry run), and refuses a broken one',
  { skip: ci ? false : vtyshMissing },
  async (t) => {
    if (vtyshMissing) {
      t.fail(`CI=true but ${vtyshMissing}`);
      return;
    }
    const dir = tempDir(t);
    const good = join(dir, 'frr.conf');
    writeFileSync(good, run1(sample()).frr!);
    const ok = await run('vtysh', ['-C', '-f', good]);
    t.equal(ok.code, 0, `vtysh -C: ${ok.stdout}${ok.stderr}`);
    // The check can fail: a misspelt command in the same file is refused.
    const broken = join(dir, 'broken.conf');
    writeFileSync(
      broken,
      run1(sample()).frr!.replace(' set local-preference 200', ' set local-preferance 200'),
    );
    const bad = await run('vtysh', ['-C', '-f', broken]);
    t.not(bad.code, 0, 'a misspelt command fails the dry run');
  },
);
