/** IKEv1 ID payloads: phase 1 identities and quick mode client IDs <-> traffic selectors. */
import t from 'tap';
import { WireError } from '../../src/errors.js';
import { identityToString } from '../../src/ike/identity.js';
import { IdTypeV1, idToSelector, phase1Id, phase1Identity, selectorToId } from '../../src/ike/v1/ids.js';
import { cidrToTs, tsToString } from '../../src/ike/wire/ts.js';

t.test('phase 1 IDs: strongSwan syntax both ways, protocol/port 0/0 or UDP/500 only', async (t) => {
  for (const text of ['192.0.2.1', '2001:db8::1', 'gw.example.net', 'ops@example.net', 'keyid:office-1']) {
    const id = phase1Id(text);
    t.equal(id.protocolId, 0);
    t.equal(id.port, 0);
    t.equal(identityToString(phase1Identity(id)), text, text);
  }
  t.equal(phase1Id('192.0.2.1').idType, IdTypeV1.IPV4_ADDR);
  t.equal(phase1Id('gw.example.net').idType, IdTypeV1.FQDN);
  t.doesNotThrow(() => phase1Identity({ ...phase1Id('192.0.2.1'), protocolId: 17, port: 500 }));
  t.throws(() => phase1Identity({ ...phase1Id('192.0.2.1'), protocolId: 6, port: 80 }), WireError);
});

t.test('client IDs: host, subnet and range, IPv4 and IPv6, round trip through selectors', async (t) => {
  const cases: [string, number, string][] = [
    ['198.18.1.0/24', IdTypeV1.IPV4_ADDR_SUBNET, 'c6120100ffffff00'],
    ['198.18.1.7/32', IdTypeV1.IPV4_ADDR, 'c6120107'],
    ['0.0.0.0/0', IdTypeV1.IPV4_ADDR_SUBNET, '0000000000000000'],
    ['2001:db8::/32', IdTypeV1.IPV6_ADDR_SUBNET, `20010db8${'0'.repeat(24)}ffffffff${'0'.repeat(24)}`],
  ];
  for (const [cidr, type, hex] of cases) {
    const id = selectorToId(cidrToTs(cidr))!;
    t.equal(id.idType, type, `${cidr}: type`);
    t.equal(id.data.toString('hex'), hex, `${cidr}: data`);
    t.equal(tsToString(idToSelector(id)), cidr, `${cidr}: back`);
  }
  const range = { ...cidrToTs('198.18.1.0/24'), endAddr: '198.18.1.9' };
  const r = selectorToId(range)!;
  t.equal(r.idType, IdTypeV1.IPV4_ADDR_RANGE);
  t.equal(tsToString(idToSelector(r)), '198.18.1.0-198.18.1.9');
  const tcp = selectorToId(cidrToTs('198.18.1.0/24', 6, 443, 443))!;
  t.same([tcp.protocolId, tcp.port], [6, 443], 'protocol and single port carried');
  t.equal(tsToString(idToSelector(tcp)), '198.18.1.0/24[tcp/443]');
  t.equal(selectorToId(cidrToTs('198.18.1.0/24', 6, 1000, 2000)), null, 'a port range has no IKEv1 form');
});

t.test('malformed client IDs are WireErrors', async (t) => {
  const bad = [
    { idType: IdTypeV1.IPV4_ADDR, protocolId: 0, port: 0, data: Buffer.alloc(3) },
    {
      idType: IdTypeV1.IPV4_ADDR_SUBNET,
      protocolId: 0,
      port: 0,
      data: Buffer.from('c6120100ff00ff00', 'hex'),
    },
    {
      idType: IdTypeV1.IPV4_ADDR_RANGE,
      protocolId: 0,
      port: 0,
      data: Buffer.from('c6120109c6120101', 'hex'),
    },
    { idType: IdTypeV1.FQDN, protocolId: 0, port: 0, data: Buffer.from('gw.example.net') },
  ];
  for (const b of bad) t.throws(() => idToSelector(b), WireError, `type ${b.idType}`);
});
