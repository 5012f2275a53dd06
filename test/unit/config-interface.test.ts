/** Route-based connections' `interface` (issue #12): accepted shape, defaults, and refusals by field. */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const conn = (name: string, local: string, iface: string) => `
  ${name}:
    local: ${local}
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [0.0.0.0/0]
    remoteSubnets: [0.0.0.0/0]
    interface: ${iface}`;

function issuesOf(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

t.test('an interface is accepted, its MTU defaults to the shared TUN', async (t) => {
  const cfg = parseConfig(
    `tun: { mtu: 1380 }\nconnections:${conn('t1', '192.0.2.1', '{ name: tw-t1, address: 169.254.10.2/30 }')}${conn('t2', '198.51.100.1', '{ name: tw-t2, address: 169.254.20.2/30, mtu: 1300 }')}`,
  );
  t.same(cfg.connections.t1!.interface, { name: 'tw-t1', address: '169.254.10.2/30', mtu: 1380 });
  t.same(cfg.connections.t2!.interface, { name: 'tw-t2', address: '169.254.20.2/30', mtu: 1300 });
  const ipv6 = parseConfig(
    `connections:${conn('t1', '192.0.2.1', '{ name: tw6, address: "fd00:10::2/126" }')}`,
  );
  t.equal(ipv6.connections.t1!.interface?.address, 'fd00:10::2/126');
});

t.test('bad interfaces are refused naming the field', async (t) => {
  const cases: [string, string, string][] = [
    [
      'no prefix',
      `connections:${conn('t1', '192.0.2.1', '{ name: tw-t1, address: 169.254.10.2 }')}`,
      "connections.t1.interface.address: expected 'address/prefix-length', e.g. 169.254.10.2/30",
    ],
    [
      'prefix too long',
      `connections:${conn('t1', '192.0.2.1', '{ name: tw-t1, address: 169.254.10.2/33 }')}`,
      "connections.t1.interface.address: expected 'address/prefix-length', e.g. 169.254.10.2/30",
    ],
    [
      'name too long',
      `connections:${conn('t1', '192.0.2.1', '{ name: tw-0123456789abcdef, address: 169.254.10.2/30 }')}`,
      'connections.t1.interface.name: must be 1-15 of A-Z a-z 0-9 _ . -',
    ],
    [
      'the shared TUN',
      `tun: { name: tw0 }\nconnections:${conn('t1', '192.0.2.1', '{ name: tw0, address: 169.254.10.2/30 }')}`,
      "connections.t1.interface.name: 'tw0' is the shared TUN device (tun.name)",
    ],
    [
      'two connections, one device',
      `connections:${conn('t1', '192.0.2.1', '{ name: tw-x, address: 169.254.10.2/30 }')}${conn('t2', '198.51.100.1', '{ name: tw-x, address: 169.254.20.2/30 }')}`,
      "connections.t2.interface.name: 'tw-x' is also connection 't1's interface",
    ],
    [
      'unknown field',
      `connections:${conn('t1', '192.0.2.1', '{ name: tw-t1, address: 169.254.10.2/30, up: true }')}`,
      'connections.t1.interface.up: unknown field',
    ],
  ];
  for (const [what, text, want] of cases)
    t.ok(issuesOf(text).includes(want), `${what}: ${issuesOf(text).join('; ')}`);
});
