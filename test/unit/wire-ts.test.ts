import t from 'tap';
import { WireError } from '../../src/errors.js';
import { TsType } from '../../src/ike/wire/constants.js';
import {
  cidrToTs,
  decodeSelector,
  encodeSelector,
  formatAddress,
  parseAddress,
  tsIntersect,
  tsRangeToCidrs,
  tsToString,
} from '../../src/ike/wire/ts.js';
import type { TrafficSelector } from '../../src/ike/wire/types.js';

const v4 = (startAddr: string, endAddr: string, extra: Partial<TrafficSelector> = {}): TrafficSelector => ({
  tsType: TsType.IPV4,
  ipProtocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr,
  endAddr,
  ...extra,
});
const v6 = (startAddr: string, endAddr: string, extra: Partial<TrafficSelector> = {}): TrafficSelector => ({
  ...v4(startAddr, endAddr, extra),
  tsType: TsType.IPV6,
});

t.test('addresses: RFC 5952 canonical text for IPv6', async (t) => {
  const cases: [string, string][] = [
    ['192.0.2.1', '192.0.2.1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // longest run wins
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001:DB8::A', '2001:db8::a'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [input, canonical] of cases) {
    const bytes = parseAddress(input);
    t.equal(formatAddress(bytes), canonical, input);
    t.same(parseAddress(canonical), bytes, `${canonical} parses to the same bytes`);
  }
  for (const bad of ['192.0.2', '192.0.2.256', '01.2.3.4', 'fe80::1%eth0', '1::2::3', 'host.example', '']) {
    t.throws(() => parseAddress(bad), WireError, bad);
  }
  t.throws(() => formatAddress(Buffer.alloc(5)), WireError);
});

t.test('cidrToTs', async (t) => {
  t.strictSame(cidrToTs('198.18.1.0/24'), v4('198.18.1.0', '198.18.1.255'));
  t.strictSame(
    cidrToTs('198.18.1.77/24', 6, 443, 443),
    v4('198.18.1.0', '198.18.1.255', { ipProtocol: 6, startPort: 443, endPort: 443 }),
  );
  t.strictSame(cidrToTs('192.0.2.9'), v4('192.0.2.9', '192.0.2.9'));
  t.strictSame(cidrToTs('0.0.0.0/0'), v4('0.0.0.0', '255.255.255.255'));
  t.strictSame(cidrToTs('2001:db8:1::/48'), v6('2001:db8:1::', '2001:db8:1:ffff:ffff:ffff:ffff:ffff'));
  t.strictSame(cidrToTs('::/0'), v6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
  t.strictSame(cidrToTs('2001:db8::1'), v6('2001:db8::1', '2001:db8::1'));
  for (const bad of [
    '198.18.1.0/33',
    '2001:db8::/129',
    '198.18.1.0/',
    '198.18.1.0/-1',
    '198.18.1.0/2x',
    'x/8',
  ]) {
    t.throws(() => cidrToTs(bad), WireError, bad);
  }
  t.throws(() => cidrToTs('10.0.0.0/8', 256), WireError);
  t.throws(() => cidrToTs('10.0.0.0/8', 6, 0, 65536), WireError);
});

t.test('tsToString', async (t) => {
  t.equal(tsToString(cidrToTs('198.18.1.0/24')), '198.18.1.0/24');
  t.equal(tsToString(cidrToTs('192.0.2.9')), '192.0.2.9/32');
  t.equal(tsToString(v4('198.18.1.5', '198.18.1.9')), '198.18.1.5-198.18.1.9');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 6, 443, 443)), '198.18.1.0/24[tcp/443]');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 17)), '198.18.1.0/24[udp]');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 17, 1024, 65535)), '198.18.1.0/24[udp/1024-65535]');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 0, 53, 53)), '198.18.1.0/24[any/53]');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 99)), '198.18.1.0/24[99]');
  t.equal(tsToString(cidrToTs('198.18.1.0/24', 17, 65535, 0)), '198.18.1.0/24[udp/opaque]');
  t.equal(tsToString(cidrToTs('2001:db8::/32', 58)), '2001:db8::/32[ipv6-icmp]');
  t.equal(tsToString(v6('2001:db8::1', '2001:db8::3')), '2001:db8::1-2001:db8::3');
});

t.test('tsRangeToCidrs: minimal CIDR cover', async (t) => {
  t.strictSame(tsRangeToCidrs(v4('10.0.0.1', '10.0.0.6')), [
    '10.0.0.1/32',
    '10.0.0.2/31',
    '10.0.0.4/31',
    '10.0.0.6/32',
  ]);
  t.strictSame(tsRangeToCidrs(v4('0.0.0.0', '255.255.255.255')), ['0.0.0.0/0']);
  t.strictSame(tsRangeToCidrs(v4('10.0.0.0', '10.0.1.255')), ['10.0.0.0/23']);
  t.strictSame(tsRangeToCidrs(v4('10.0.0.255', '10.0.1.0')), ['10.0.0.255/32', '10.0.1.0/32']);
  t.strictSame(tsRangeToCidrs(v4('255.255.255.255', '255.255.255.255')), ['255.255.255.255/32']);
  t.strictSame(tsRangeToCidrs(v4('10.0.0.9', '10.0.0.1')), []);
  t.strictSame(tsRangeToCidrs(v6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')), ['::/0']);
  t.strictSame(tsRangeToCidrs(v6('2001:db8::', '2001:db8::2')), ['2001:db8::/127', '2001:db8::2/128']);
  t.strictSame(tsRangeToCidrs(v6('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).length, 128);
  t.throws(() => tsRangeToCidrs(v4('2001:db8::', '2001:db8::1')), WireError, 'family must match the type');
  t.throws(() => tsRangeToCidrs({ ...v4('10.0.0.0', '10.0.0.1'), tsType: 9 }), WireError);
});

t.test('tsIntersect: addresses, protocol and ports', async (t) => {
  const net = cidrToTs('198.18.0.0/16');
  t.strictSame(tsIntersect(net, cidrToTs('198.18.1.0/24')), cidrToTs('198.18.1.0/24'));
  t.strictSame(
    tsIntersect(v4('10.0.0.0', '10.0.0.100'), v4('10.0.0.50', '10.0.1.0')),
    v4('10.0.0.50', '10.0.0.100'),
  );
  t.equal(tsIntersect(cidrToTs('10.0.0.0/24'), cidrToTs('10.0.1.0/24')), null);
  t.equal(tsIntersect(cidrToTs('10.0.0.0/8'), cidrToTs('2001:db8::/32')), null, 'families never meet');
  // protocol 0 matches any and takes the other's protocol
  t.strictSame(tsIntersect(net, cidrToTs('198.18.1.0/24', 6, 80, 80)), cidrToTs('198.18.1.0/24', 6, 80, 80));
  t.equal(tsIntersect(cidrToTs('10.0.0.0/8', 6), cidrToTs('10.0.0.0/8', 17)), null);
  t.strictSame(
    tsIntersect(cidrToTs('10.0.0.0/8', 6, 1000, 2000), cidrToTs('10.0.0.0/8', 6, 1500, 3000)),
    cidrToTs('10.0.0.0/8', 6, 1500, 2000),
  );
  t.equal(tsIntersect(cidrToTs('10.0.0.0/8', 6, 1, 10), cidrToTs('10.0.0.0/8', 6, 11, 20)), null);
  // OPAQUE survives only against OPAQUE or the full port range
  const opaque = cidrToTs('10.0.0.0/8', 17, 65535, 0);
  t.strictSame(tsIntersect(opaque, cidrToTs('10.0.0.0/8')), opaque);
  t.strictSame(tsIntersect(opaque, opaque), opaque);
  t.equal(tsIntersect(opaque, cidrToTs('10.0.0.0/8', 17, 53, 53)), null);
  // IPv6
  t.strictSame(
    tsIntersect(cidrToTs('2001:db8::/32'), cidrToTs('2001:db8:5::/48', 6)),
    cidrToTs('2001:db8:5::/48', 6),
  );
  t.strictSame(
    tsIntersect(v6('2001:db8::10', '2001:db8::ffff'), v6('2001:db8::1', '2001:db8::20')),
    v6('2001:db8::10', '2001:db8::20'),
  );
  t.equal(tsIntersect(cidrToTs('2001:db8::/32'), cidrToTs('2001:db9::/32')), null);
});

t.test('selector wire form round trips and checks its fields', async (t) => {
  const s4 = cidrToTs('198.18.1.0/24', 6, 80, 443);
  const b4 = encodeSelector('test', s4);
  // type 7, protocol 6, length 16, ports 80..443, 198.18.1.0..198.18.1.255
  t.equal(b4.toString('hex'), ['07', '06', '0010', '0050', '01bb', 'c6120100', 'c61201ff'].join(''));
  t.strictSame(decodeSelector(b4), s4);
  const s6 = cidrToTs('2001:db8::/64');
  const b6 = encodeSelector('test', s6);
  t.equal(b6.length, 40);
  t.strictSame(decodeSelector(b6), s6);
  t.throws(() => encodeSelector('x', { ...s4, tsType: 9 }), /unsupported TS type 9/);
  t.throws(() => encodeSelector('x', { ...s4, tsType: TsType.IPV6 }), /addresses do not match/);
  t.throws(() => encodeSelector('x', { ...s4, endPort: 70000 }), /end port 70000/);
  t.throws(() => encodeSelector('x', { ...s4, ipProtocol: -1 }), /IP protocol -1/);
});
