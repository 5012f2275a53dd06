/**
 * Responder narrowing (RFC 7296 §2.9) as the data plane can enforce it: bounded, byte-compared,
 * whole protocol / all ports / CIDR blocks only (security issue #11 items 1 and 3).
 */
import t from 'tap';
import { cidrPrefix, MAX_SELECTORS, narrow, withinOffer } from '../../src/ike/v2/tasks/child-create.js';
import { TsType } from '../../src/ike/wire/constants.js';
import { cidrToTs, parseAddress, tsToString } from '../../src/ike/wire/ts.js';
import type { TrafficSelector } from '../../src/ike/wire/types.js';

const range = (startAddr: string, endAddr: string, v6 = false): TrafficSelector => ({
  tsType: v6 ? TsType.IPV6 : TsType.IPV4,
  ipProtocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr,
  endAddr,
});

t.test('cidrPrefix tells a CIDR block from another range', async (t) => {
  const p = (a: string, b: string) => cidrPrefix(parseAddress(a), parseAddress(b));
  t.equal(p('198.18.1.0', '198.18.1.255'), 24);
  t.equal(p('198.18.1.128', '198.18.1.191'), 26);
  t.equal(p('198.18.1.5', '198.18.1.5'), 32);
  t.equal(p('0.0.0.0', '255.255.255.255'), 0);
  t.equal(p('198.18.1.5', '198.18.1.9'), -1);
  t.equal(p('198.18.1.0', '198.18.2.255'), -1, 'two /24s are not one block');
  t.equal(p('198.18.0.0', '198.18.1.255'), 23);
  t.equal(p('2001:db8::', '2001:db8::ffff:ffff:ffff:ffff'), 64);
  t.equal(p('2001:db8::1', '2001:db8::ffff:ffff:ffff:ffff'), -1);
});

t.test('narrowing keeps CIDR blocks inside the configuration', async (t) => {
  const s = (ts: TrafficSelector[]) => ts.map(tsToString);
  t.same(s(narrow([cidrToTs('198.18.0.0/16')], ['198.18.1.0/24', '198.18.2.0/24'])), [
    '198.18.1.0/24',
    '198.18.2.0/24',
  ]);
  t.same(s(narrow([cidrToTs('198.18.1.0/28')], ['198.18.1.0/24'])), ['198.18.1.0/28']);
  t.same(s(narrow([range('198.18.1.5', '198.18.1.9')], ['198.18.0.0/16'])), [
    '198.18.1.5/32',
    '198.18.1.6/31',
    '198.18.1.8/31',
  ]);
  t.same(s(narrow([cidrToTs('2001:db8::/32')], ['2001:db8:1::/48', '198.18.1.0/24'])), ['2001:db8:1::/48']);
  t.same(narrow([cidrToTs('198.19.0.0/16')], ['198.18.1.0/24']), [], 'disjoint');
});

t.test('protocol- or port-limited selectors are never narrowed to "any"', async (t) => {
  t.same(narrow([cidrToTs('198.18.1.0/24', 6)], ['198.18.1.0/24']), []);
  t.same(narrow([cidrToTs('198.18.1.0/24', 0, 443, 443)], ['198.18.1.0/24']), []);
  t.same(
    narrow([cidrToTs('198.18.1.0/24', 17, 53, 53), cidrToTs('198.18.1.0/24')], ['198.18.1.0/24']).map(
      tsToString,
    ),
    ['198.18.1.0/24'],
    'the enforceable one of several survives',
  );
});

t.test('more than MAX_SELECTORS offered: nothing; results are bounded too', async (t) => {
  const offered = Array.from({ length: MAX_SELECTORS + 1 }, (_, i) => cidrToTs(`198.18.${i}.0/24`));
  t.same(narrow(offered, ['198.18.0.0/16']), []);
  t.equal(narrow(offered.slice(0, MAX_SELECTORS), ['198.18.0.0/16']).length, MAX_SELECTORS);
  // A wide non-CIDR IPv6 range splits into many blocks: the answer stays at the cap.
  const wide = range('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', true);
  t.ok(narrow([wide], ['::/0']).length <= MAX_SELECTORS);
});

t.test('withinOffer: inside, CIDR, whole protocol, all ports', async (t) => {
  t.ok(withinOffer([cidrToTs('198.18.1.0/25')], ['198.18.1.0/24']));
  t.notOk(withinOffer([cidrToTs('198.18.0.0/16')], ['198.18.1.0/24']), 'wider');
  t.notOk(withinOffer([cidrToTs('198.18.1.0/24', 6, 443, 443)], ['198.18.1.0/24']), 'tcp/443');
  t.notOk(withinOffer([range('198.18.1.5', '198.18.1.9')], ['198.18.1.0/24']), 'not a CIDR block');
});
