import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configJsonSchema, parseListen } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

const CONN = `
connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
`;

function issuesOf(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

t.test('metrics is optional: absent means no metrics server', async (t) => {
  const c = parseConfig(CONN);
  t.equal(c.metrics, undefined);
  t.notOk('metrics' in c);
});

t.test('metrics.listen: IPv4 and bracketed IPv6', async (t) => {
  t.same(parseConfig(`${CONN}metrics: { listen: "127.0.0.1:9469" }\n`).metrics, {
    listen: { host: '127.0.0.1', port: 9469 },
  });
  t.same(parseConfig(`${CONN}metrics: { listen: "[::1]:9469" }\n`).metrics, {
    listen: { host: '::1', port: 9469 },
  });
  t.same(parseConfig(`${CONN}metrics:\n  listen: "0.0.0.0:1"\n`).metrics, {
    listen: { host: '0.0.0.0', port: 1 },
  });
  t.same(parseConfig(`${CONN}metrics: { listen: "[2001:db8::5]:65535" }\n`).metrics, {
    listen: { host: '2001:db8::5', port: 65535 },
  });
});

t.test('metrics errors are reported by path, together with others', async (t) => {
  const bad: [string, string][] = [
    ['"127.0.0.1"', "metrics.listen: expected 'address:port' (IPv6 as '[address]:port')"],
    ['"localhost:9469"', 'metrics.listen: invalid IP address'],
    ['"999.0.0.1:9469"', 'metrics.listen: invalid IP address'],
    ['"::1:9469"', "metrics.listen: IPv6 addresses need brackets: '[address]:port'"],
    ['"::1"', "metrics.listen: expected 'address:port' (IPv6 as '[address]:port')"],
    ['"[127.0.0.1]:9469"', 'metrics.listen: brackets are for IPv6 addresses only'],
    ['"[fe80::1%eth0]:9469"', 'metrics.listen: invalid IP address'],
    ['"127.0.0.1:0"', 'metrics.listen: port must be 1..65535'],
    ['"127.0.0.1:65536"', 'metrics.listen: port must be 1..65535'],
    ['"127.0.0.1:123456"', "metrics.listen: expected 'address:port' (IPv6 as '[address]:port')"],
    ['"127.0.0.1:-1"', "metrics.listen: expected 'address:port' (IPv6 as '[address]:port')"],
    ['9469', 'metrics.listen: expected string, got number'],
  ];
  for (const [value, issue] of bad) {
    t.same(issuesOf(`${CONN}metrics: { listen: ${value} }\n`), [issue], value);
  }
  t.same(issuesOf(`${CONN}metrics: {}\n`), ['metrics.listen: required']);
  t.same(issuesOf(`${CONN}metrics: { listen: "127.0.0.1:9469", path: /m }\n`), [
    'metrics.path: unknown field',
  ]);
  t.same(issuesOf(`${CONN}metrics: "127.0.0.1:9469"\n`), ['metrics: expected a mapping, got string']);
  // Reported together with an unrelated problem elsewhere.
  const both = issuesOf(`${CONN}tun: { mtu: 100 }\nmetrics: { listen: "nope" }\n`);
  t.ok(both.includes('tun.mtu: must be >= 576'));
  t.ok(both.some((i) => i.startsWith('metrics.listen: ')));
});

t.test('parseListen and the JSON schema', async (t) => {
  t.same(parseListen('10.0.0.1:80'), { host: '10.0.0.1', port: 80 });
  t.same(parseListen('[::]:9469'), { host: '::', port: 9469 });
  t.equal(typeof parseListen('::1'), 'string');
  const props = (configJsonSchema().properties ?? {}) as Record<string, unknown>;
  t.ok(props.metrics, 'metrics in the JSON schema');
});
