/**
 * MemoryDataPlane's NAT rebinding surface (RFC 7296 §2.23): updateSa records the new endpoints,
 * peerMoved (the test stand-in for the engine's report) tells the onPeerMoved handler only about
 * an installed SA and an endpoint other than its remote one.
 */
import t from 'tap';
import { MemoryDataPlane } from '../../src/dataplane/memory.js';
import type { ChildSaSpec, Endpoint } from '../../src/dataplane/types.js';

function spec(spiIn: number, encapsulation: 'udp' | 'esp'): ChildSaSpec {
  return {
    connection: 'c1',
    spiIn,
    spiOut: spiIn + 1,
    encr: 'aes256gcm16',
    integ: null,
    encrKeyIn: Buffer.alloc(36, 1),
    encrKeyOut: Buffer.alloc(36, 2),
    integKeyIn: null,
    integKeyOut: null,
    esn: false,
    encapsulation,
    local: { address: '192.0.2.1', port: 4500 },
    remote: { address: '198.51.100.7', port: 4500 },
    tsLocal: ['10.1.0.0/16'],
    tsRemote: ['10.2.0.0/16'],
  };
}

t.test('updateSa records the new endpoints of an installed SA only', async (t) => {
  const dp = new MemoryDataPlane();
  const original = spec(0xc0000001, 'udp');
  dp.installSa(original);
  const local = { address: '192.0.2.1', port: 4500 };
  const remote = { address: '198.51.100.7', port: 61002 };
  t.equal(dp.updateSa(0xc0000001, local, remote), true, 'known spiIn');
  const now = dp.sas.get(0xc0000001)!;
  t.same(now.remote, remote, 'remote recorded');
  t.same(now.local, local, 'local recorded');
  t.equal(now.spiOut, original.spiOut, 'the rest of the spec is kept');
  t.same(original.remote, { address: '198.51.100.7', port: 4500 }, "the caller's spec is not changed");
  remote.port = 1;
  t.equal(dp.sas.get(0xc0000001)!.remote.port, 61002, 'endpoints are copied');
  t.equal(dp.updateSa(0x1234, local, remote), false, 'unknown spiIn: false');
  t.equal(dp.sas.has(0x1234), false, 'and nothing installed');
  // SPIs above 2^31 given as negative int32 (as `x | 0` makes them) name the same SA.
  t.equal(dp.updateSa(0xc0000001 | 0, local, { address: '203.0.113.5', port: 4500 }), true);
  t.equal(dp.sas.get(0xc0000001)!.remote.address, '203.0.113.5');
});

t.test('peerMoved tells the handler about a different endpoint of an installed SA', async (t) => {
  const dp = new MemoryDataPlane();
  dp.installSa(spec(0x101, 'udp'));
  dp.installSa(spec(0x202, 'esp'));
  const seen: [number, Endpoint][] = [];
  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 61000 }), false, 'no handler yet');
  dp.onPeerMoved((spi, from) => seen.push([spi, from]));

  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 4500 }), false, 'same endpoint: silent');
  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 61000 }), true, 'new UDP port');
  t.equal(dp.peerMoved(0x101, { address: '203.0.113.5', port: 4500 }), true, 'new address');
  t.equal(dp.peerMoved(0x202, { address: '198.51.100.7', port: 0 }), false, 'raw ESP: ports do not count');
  t.equal(dp.peerMoved(0x202, { address: '203.0.113.5', port: 0 }), true, 'raw ESP: new address');
  t.equal(dp.peerMoved(0x999, { address: '203.0.113.5', port: 4500 }), false, 'unknown SA: silent');
  t.same(seen, [
    [0x101, { address: '198.51.100.7', port: 61000 }],
    [0x101, { address: '203.0.113.5', port: 4500 }],
    [0x202, { address: '203.0.113.5', port: 0 }],
  ]);

  // After the IKE side followed the move, the new endpoint is the SA's own.
  dp.updateSa(0x101, { address: '192.0.2.1', port: 4500 }, { address: '198.51.100.7', port: 61000 });
  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 61000 }), false, 'followed: silent');
  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 4500 }), true, 'the old one is elsewhere now');
  dp.removeSa(0x101);
  t.equal(dp.peerMoved(0x101, { address: '198.51.100.7', port: 1 }), false, 'removed SA: silent');
  t.equal(seen.length, 4);
});

t.test('traffic counts like the engine: limits, sequence space, one report per mark', async (t) => {
  const dp = new MemoryDataPlane();
  const told: [number, boolean][] = [];
  dp.onSaLimit((spi, hard) => told.push([spi, hard]));
  dp.installSa({ ...spec(0x303, 'udp'), limits: { softPackets: 9, hardPackets: 10, softBytes: 5000 } });
  t.equal(dp.traffic(0x303, 'out', 8, 800), 8);
  await Promise.resolve();
  t.same(told, [], 'below the marks');
  t.equal(dp.traffic(0x303, 'out', 1, 100), 1);
  await Promise.resolve();
  t.same(told, [[0x303, false]], 'the soft mark, once');
  t.equal(dp.traffic(0x303, 'out', 5, 500), 1, 'one more up to the hard limit');
  t.equal(dp.traffic(0x303, 'in', 3, 300), 3, 'the other direction counts on its own');
  await Promise.resolve();
  t.same(told, [
    [0x303, false],
    [0x303, true],
  ]);
  t.same(dp.drops(), { expired: 4 });
  t.same(dp.counters(0x303), { bytesIn: 300, bytesOut: 1000, packetsIn: 3, packetsOut: 10 });

  // Without ESN and without limits: the 32-bit sequence space.
  dp.installSa(spec(0x404, 'esp'));
  t.equal(dp.traffic(0x404, 'out', 0xffff_fff0), 0xffff_fff0);
  t.equal(dp.traffic(0x404, 'out', 0x20), 0x0f, 'up to sequence number 2^32 - 1');
  t.equal(dp.drops().seqExhausted, 0x11);
  t.equal(dp.traffic(0x404, 'in', 0x20), 0x20, 'inbound has no such cap');
  dp.removeSa(0x404);
  t.equal(dp.traffic(0x404, 'out', 1), 0, 'unknown SA: nothing');
  await Promise.resolve();
  t.same(told.slice(2), [], 'a removed SA reports nothing');
});
