import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

// Compiled to dist/test/unit; fixtures stay in the source tree.
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

const CONN = `
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]`;

/** A valid single-connection config with `extra` lines appended to connection t1. */
const withConn = (extra = '', top = '') => `${top}\nconnections:\n  t1:${CONN}\n${extra}`;

function issuesOf(text: string, baseDir?: string): string[] {
  try {
    parseConfig(text, baseDir ? { baseDir } : {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

t.test('the documented example loads', async (t) => {
  const c = loadConfig(join(FIXTURES, 'good.yaml'));
  t.same(c.tun, { name: 'twinsec0', mtu: 1400 });
  t.same(c.control, { socket: '/run/twinsec/control.sock' });
  t.same(c.ports, { ike: 500, natt: 4500 });
  t.same(c.log, { level: 'info' });
  const t1 = c.connections.t1!;
  t.equal(t1.name, 't1');
  t.equal(t1.version, 2);
  t.equal(t1.localId, '192.0.2.1');
  t.ok(Buffer.isBuffer(t1.psk));
  t.equal(t1.psk.toString(), 'secret');
  t.same(t1.ike, { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 86400 });
  t.same(t1.esp, { proposals: ['aes256gcm16'], lifetime: 3600 });
  t.same(c.routes, [
    {
      destination: '198.19.1.0/24',
      via: [{ connection: 't1', weight: 100 }],
      publish: true,
      holdDown: 3,
      onAllDown: 'reserve',
    },
  ]);
});

t.test('a minimal config gets every default', async (t) => {
  const c = loadConfig(join(FIXTURES, 'minimal.yaml'));
  t.same(c.tun, { name: 'twinsec0', mtu: 1400 });
  t.same(c.control, { socket: '/run/twinsec/control.sock' });
  t.same(c.ports, { ike: 500, natt: 4500 });
  t.same(c.qos, { priority: 7, dscp: 48, answerEcho: true });
  t.same(c.log, { level: 'info' });
  t.same(c.routes, []);
  const t1 = c.connections.t1!;
  t.equal(t1.version, 2);
  t.equal(t1.localId, '192.0.2.1');
  t.equal(t1.remoteId, '203.0.113.1');
  t.same(t1.ike, { proposals: ['aes256gcm16-prfsha256-x25519', 'aes256-sha256-modp2048'], lifetime: 86400 });
  t.same(t1.esp, { proposals: ['aes256gcm16', 'aes256-sha256'], lifetime: 3600 });
  t.equal(t1.start, 'initiate');
  t.equal(t1.encapsulation, 'auto');
  // pskFile resolves against the config file's directory; the final newline is not key material.
  t.equal(t1.psk.toString(), 'file-secret-0123');
});

t.test('route weight and publish defaults; FQDN identity; IPv6', async (t) => {
  const c = parseConfig(`
connections:
  v6:
    version: 2
    local: "2001:db8::1"
    remote: "2001:db8:ffff::1"
    localId: gw.example.com
    psk: x
    localSubnets: ["2001:db8:1::/48"]
    remoteSubnets: ["2001:db8:2::/48", 198.19.0.0/16]
    start: listen
routes:
  - destination: "2001:db8:2::/48"
    via: [ { connection: v6 } ]
`);
  const v6 = c.connections.v6!;
  t.equal(v6.version, 2);
  t.equal(v6.localId, 'gw.example.com');
  t.equal(v6.remoteId, '2001:db8:ffff::1');
  t.equal(v6.start, 'listen');
  t.same(c.routes[0], {
    destination: '2001:db8:2::/48',
    via: [{ connection: 'v6', weight: 100 }],
    publish: false,
    holdDown: 3,
    onAllDown: 'reserve',
  });
});

t.test('%any as remoteId and standby weight 0 are accepted', async (t) => {
  const c = parseConfig(
    withConn(
      '    remoteId: "%any"\nroutes:\n  - destination: 198.19.1.0/24\n' +
        '    via: [ { connection: t1 }, { connection: t2, weight: 0 } ]',
    ).replace('connections:', `connections:\n  t2:${CONN.replace('203.0.113.1', '203.0.113.2')}`),
  );
  t.equal(c.connections.t1!.remoteId, '%any');
  t.same(c.routes[0]!.via, [
    { connection: 't1', weight: 100 },
    { connection: 't2', weight: 0 },
  ]);
});

t.test('each kind of error is reported at its exact path', async (t) => {
  const cases: [string, string, string][] = [
    ['unknown connection field', withConn('    foo: 1'), 'connections.t1.foo: unknown field'],
    ['unknown top-level field', withConn('', 'bogus: 1'), 'bogus: unknown field'],
    [
      'unknown nested field',
      withConn('    ike: { lifetime: 100, rekey: true }'),
      'connections.t1.ike.rekey: unknown field',
    ],
    [
      'bad address',
      withConn().replace('192.0.2.1', '192.0.2.256'),
      'connections.t1.local: invalid IP address',
    ],
    [
      'address families differ',
      withConn().replace('203.0.113.1', '"2001:db8::1"'),
      'connections.t1.remote: IPv6 address but local is IPv4',
    ],
    [
      'bad CIDR prefix',
      withConn().replace('198.18.1.0/24', '198.18.1.0/33'),
      "connections.t1.localSubnets[0]: invalid CIDR '198.18.1.0/33' (prefix must be 0..32)",
    ],
    [
      'CIDR without prefix',
      withConn().replace('198.18.1.0/24', '198.18.1.0'),
      "connections.t1.localSubnets[0]: invalid CIDR '198.18.1.0' (expected address/prefix)",
    ],
    [
      'host bits set',
      withConn().replace('198.19.1.0/24', '198.19.1.1/24'),
      "connections.t1.remoteSubnets[0]: host bits set in '198.19.1.1/24'",
    ],
    [
      'IPv6 host bits set',
      withConn().replace('198.19.1.0/24', '"2001:db8::1/64"'),
      "connections.t1.remoteSubnets[0]: host bits set in '2001:db8::1/64'",
    ],
    [
      'missing psk',
      withConn().replace('psk: "s3cret-psk"', ''),
      'connections.t1.psk: required (psk or pskFile, or top-level secrets)',
    ],
    [
      'both psk and pskFile',
      withConn('    pskFile: /x'),
      'connections.t1.psk: give either psk or pskFile, not both',
    ],
    ['empty psk', withConn().replace('"s3cret-psk"', '""'), 'connections.t1.psk: must not be empty'],
    ['bad version', withConn('    version: 3'), 'connections.t1.version: must be one of 1, 2'],
    ['mtu too small', withConn('', 'tun: { mtu: 100 }'), 'tun.mtu: must be >= 576'],
    ['mtu too big', withConn('', 'tun: { mtu: 9001 }'), 'tun.mtu: must be <= 9000'],
    ['mtu not a number', withConn('', 'tun: { mtu: big }'), 'tun.mtu: expected number, got string'],
    ['mtu fractional', withConn('', 'tun: { mtu: 1400.5 }'), 'tun.mtu: must be an integer'],
    [
      'lifetime too small',
      withConn('    esp: { lifetime: 5 }'),
      'connections.t1.esp.lifetime: must be >= 10',
    ],
    ['bad enum', withConn('    start: now'), 'connections.t1.start: must be one of initiate, listen'],
    [
      'bad log level',
      withConn('', 'log: { level: loud }'),
      'log.level: must be one of trace, debug, info, warn, error',
    ],
    [
      'empty subnets',
      withConn().replace('[198.18.1.0/24]', '[]'),
      'connections.t1.localSubnets: must have at least 1 item',
    ],
    ['missing address', withConn().replace('local: 192.0.2.1', ''), 'connections.t1.local: required'],
    ['equal ports', withConn('', 'ports: { ike: 4500 }'), 'ports.natt: must differ from ports.ike'],
    ['connections missing', 'tun: { mtu: 1400 }', 'connections: required'],
    ['empty document', '', 'connections: required'],
    ['root is a list', '- a\n- b', '(root): expected a mapping, got a list'],
    ['connections is a list', 'connections: [a]', 'connections: expected a mapping, got a list'],
    [
      'bad connection name',
      withConn().replace('  t1:', '  "bad name":'),
      'connections["bad name"]: invalid connection name (use 1-32 of A-Z a-z 0-9 _ -)',
    ],
    [
      'unknown route connection',
      withConn('routes:\n  - destination: 198.19.1.0/24\n    via: [ { connection: t9 } ]'),
      "routes[0].via[0].connection: unknown connection 't9'",
    ],
    [
      'bad route destination',
      withConn('routes:\n  - destination: 198.19.1.0/99\n    via: [ { connection: t1 } ]'),
      "routes[0].destination: invalid CIDR '198.19.1.0/99' (prefix must be 0..32)",
    ],
    [
      'duplicate route destination',
      withConn(
        'routes:\n  - { destination: 198.19.1.0/24, via: [ { connection: t1 } ] }\n' +
          '  - { destination: 198.19.1.0/24, via: [ { connection: t1 } ] }',
      ),
      'routes[1].destination: duplicate of routes[0]',
    ],
    [
      'route without via',
      withConn('routes:\n  - { destination: 198.19.1.0/24, via: [] }'),
      'routes[0].via: must have at least 1 item',
    ],
    [
      'bad weight',
      withConn('routes:\n  - { destination: 10.0.0.0/8, via: [ { connection: t1, weight: -1 } ] }'),
      'routes[0].via[0].weight: must be >= 0',
    ],
    ['bad key ID', withConn('    localId: "@#abc"'), "connections.t1.localId: invalid key ID '@#abc'"],
    [
      '%any as local ID',
      withConn('    localId: "%any"'),
      "connections.t1.localId: '%any' is only valid as remoteId",
    ],
  ];
  for (const [name, text, expected] of cases) {
    const issues = issuesOf(text);
    t.ok(issues.includes(expected), name, { found: issues, wanted: expected });
  }
});

t.test('YAML syntax errors carry line and column', async (t) => {
  const issues = issuesOf('tun:\n  mtu: [1400\nconnections: {}\n');
  t.equal(issues.length >= 1, true);
  t.match(issues[0], /^yaml: line \d+, column \d+: /);
  const dup = issuesOf('tun: {}\ntun: {}\nconnections: {}\n');
  t.same(dup, ['yaml: line 2, column 1: Map keys must be unique']);
});

t.test('every problem is reported at once', async (t) => {
  const issues = issuesOf(`
tun: { mtu: 100, color: red }
connections:
  t1:
    version: 3
    local: 192.0.2.300
    remote: 203.0.113.1
    localSubnets: [198.18.1.1/24]
    remoteSubnets: [198.19.1.0/24]
routes:
  - destination: 198.19.1.0/24
    via: [ { connection: t9 } ]
`);
  t.same(issues.sort(), [
    'connections.t1.local: invalid IP address',
    "connections.t1.localSubnets[0]: host bits set in '198.18.1.1/24'",
    'connections.t1.psk: required (psk or pskFile, or top-level secrets)',
    'connections.t1.version: must be one of 1, 2',
    "routes[0].via[0].connection: unknown connection 't9'",
    'tun.color: unknown field',
    'tun.mtu: must be >= 576',
  ]);
});

t.test('proposals are checked with the IKE proposal parser', async (t) => {
  const ike = issuesOf(withConn('    ike: { proposals: [aes999-prfsha256-x25519] }'));
  t.equal(ike.length, 1);
  t.match(ike[0], /^connections\.t1\.ike\.proposals\[0\]: .*aes999/);
  const esp = issuesOf(withConn('    esp: { proposals: [aes256gcm16, aes999] }'));
  t.equal(esp.length, 1);
  t.match(esp[0], /^connections\.t1\.esp\.proposals\[1\]: .*aes999/);
  t.same(issuesOf(withConn('    ike: { proposals: [] }')), [
    'connections.t1.ike.proposals: must have at least 1 item',
  ]);
});

t.test('loadConfig on a missing file', async (t) => {
  const err = (() => {
    try {
      loadConfig('/nonexistent/twinsec.yaml');
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.type(err, ConfigError);
  t.same((err as ConfigError).issues, ['/nonexistent/twinsec.yaml: cannot read (no such file)']);
});

t.test('configJsonSchema describes the input', async (t) => {
  const s = configJsonSchema() as { type: string; properties: Record<string, { default?: unknown }> };
  t.equal(s.type, 'object');
  t.ok(s.properties.connections);
  t.same(s.properties.tun?.default, {});
  t.doesNotThrow(() => JSON.stringify(s));
});

t.test('IKEv1 connections: main mode by default; aggressive mode with one DH group', async (t) => {
  const text = withConn().replace('  t1:\n', '  t1:\n    version: 1\n');
  t.equal(parseConfig(text).connections.t1!.mode, 'main');
  const agg = (ike: string) =>
    withConn().replace('  t1:\n', `  t1:\n    version: 1\n    mode: aggressive\n${ike}`);
  const one = '    ike: { proposals: [aes128-sha1-modp1024, aes256-sha256-modp1024] }\n';
  t.equal(parseConfig(agg(one)).connections.t1!.mode, 'aggressive');
  t.same(issuesOf(agg('    ike: { proposals: [aes128-sha1-modp1024, aes256-sha256-modp2048] }\n')), [
    'connections.t1.ike.proposals[1]: aggressive mode proposes a single DH group (KE is in its first ' +
      "message, RFC 2409 §5.4); every proposal must use only the first proposal's group",
  ]);
  t.match(
    issuesOf(agg('    ike: { proposals: [aes128-sha1-modp1024-modp2048] }\n')),
    [/^connections\.t1\.ike\.proposals\[0\]: aggressive mode proposes a single DH group/],
    'two groups in one proposal',
  );
  t.match(issuesOf(agg('')), [/^connections\.t1\.ike\.proposals: required with aggressive mode/]);
  const v2 = withConn().replace('  t1:\n', '  t1:\n    mode: aggressive\n');
  t.match(issuesOf(v2), [/^connections\.t1\.mode: IKEv2 has no main or aggressive mode/]);
});

t.test('healthCheck and holdDown: defaults and errors by path', async (t) => {
  const c = parseConfig(
    withConn(
      '    healthCheck: { source: 198.18.1.1, destination: 198.19.1.1, interval: 0.1 }\nroutes:\n  - destination: 198.19.1.0/24\n    via: [ { connection: t1, weight: 100 } ]\n',
    ),
  );
  t.same(c.connections.t1!.healthCheck, {
    source: '198.18.1.1',
    destination: '198.19.1.1',
    interval: 0.1,
    retries: 3,
    resetAfter: 60,
  });
  t.equal(c.connections.t1!.healthCheck!.resetAfter, 60, 'resetAfter defaults to 60 s');
  t.equal(c.routes[0]!.holdDown, 3);
  t.equal(c.routes[0]!.onAllDown, 'reserve', 'onAllDown defaults to reserve');
  t.same(issuesOf(withConn('    healthCheck: { source: nope, destination: 198.19.1.1, retries: 0 }\n')), [
    'connections.t1.healthCheck.source: invalid IP address',
    'connections.t1.healthCheck.retries: must be >= 1',
  ]);
  const set = parseConfig(
    withConn(
      '    healthCheck: { source: 198.18.1.1, destination: 198.19.1.1, resetAfter: 0 }\nroutes:\n  - destination: 198.19.1.0/24\n    via: [ { connection: t1 } ]\n    onAllDown: revoke\n',
    ),
  );
  t.equal(set.connections.t1!.healthCheck!.resetAfter, 0, 'resetAfter 0 (disabled) is accepted');
  t.equal(set.routes[0]!.onAllDown, 'revoke');
  t.same(
    issuesOf(
      withConn(
        '    healthCheck: { source: 198.18.1.1, destination: 198.19.1.1, resetAfter: -1 }\nroutes:\n  - destination: 198.19.1.0/24\n    via: [ { connection: t1 } ]\n    onAllDown: withdraw\n',
      ),
    ),
    [
      'connections.t1.healthCheck.resetAfter: must be >= 0',
      'routes[0].onAllDown: must be one of reserve, revoke',
    ],
  );
});

t.test('qos: control traffic marking, defaults and errors by path', async (t) => {
  t.same(parseConfig(withConn()).qos, { priority: 7, dscp: 48, answerEcho: true });
  t.same(parseConfig(withConn('', 'qos: { priority: 0, dscp: 0 }')).qos, {
    priority: 0,
    dscp: 0,
    answerEcho: true,
  });
  t.same(parseConfig(withConn('', 'qos: { priority: 0x10010 }')).qos, {
    priority: 0x10010,
    dscp: 48,
    answerEcho: true,
  });
  t.same(issuesOf(withConn('', 'qos: { priority: -1, dscp: 64 }')), [
    'qos.priority: must be >= 0',
    'qos.dscp: must be <= 63',
  ]);
  t.same(issuesOf(withConn('', 'qos: { dscp: cs6 }')), ['qos.dscp: expected number, got string']);
  t.same(issuesOf(withConn('', 'qos: { tos: 1 }')), ['qos.tos: unknown field']);
  t.equal(parseConfig(withConn('', 'qos: { answerEcho: false }')).qos.answerEcho, false);
  t.same(issuesOf(withConn('', 'qos: { answerEcho: 1 }')), ['qos.answerEcho: expected boolean, got number']);
});

t.test('rekeyTime: optional soft limit, must be below the lifetime', async (t) => {
  const c = parseConfig(withConn('    esp: { lifetime: 600, rekeyTime: 540 }\n'));
  t.equal(c.connections.t1!.esp.rekeyTime, 540);
  t.equal(c.connections.t1!.ike.rekeyTime, undefined);
  t.same(issuesOf(withConn('    ike: { lifetime: 600, rekeyTime: 600 }\n')), [
    'connections.t1.ike.rekeyTime: must be less than lifetime (600)',
  ]);
});

t.test('esp.lifePackets / lifeBytes: optional volume limits, bounded below', async (t) => {
  const c = parseConfig(withConn('    esp: { lifePackets: 1000000, lifeBytes: 50000000000 }\n'));
  t.equal(c.connections.t1!.esp.lifePackets, 1_000_000);
  t.equal(c.connections.t1!.esp.lifeBytes, 50_000_000_000);
  const d = parseConfig(withConn(''));
  t.notOk('lifePackets' in d.connections.t1!.esp, 'absent unless configured');
  t.notOk('lifeBytes' in d.connections.t1!.esp);
  t.same(issuesOf(withConn('    esp: { lifePackets: 10, lifeBytes: 1.5 }\n')), [
    'connections.t1.esp.lifePackets: must be >= 1000',
    'connections.t1.esp.lifeBytes: must be an integer',
  ]);
});

t.test("remote '%any' or a subnet: a listening connection for peers anywhere", async (t) => {
  const any = (remote: string, start = 'listen') =>
    withConn(`    start: ${start}`).replace('remote: 203.0.113.1', `remote: "${remote}"`);
  const c = parseConfig(any('%any'));
  t.equal(c.connections.t1!.remote, '%any');
  t.equal(c.connections.t1!.remoteId, '%any', 'known by its identity only: %any unless configured');
  t.equal(parseConfig(any('198.51.100.0/24')).connections.t1!.remote, '198.51.100.0/24');
  t.match(issuesOf(any('%any', 'initiate')).join('\n'), /connections\.t1\.start: .*cannot initiate/);
  t.match(issuesOf(any('somewhere')).join('\n'), /connections\.t1\.remote: invalid IP address/);
  t.match(issuesOf(any('%all')).join('\n'), /connections\.t1\.remote/);
});
