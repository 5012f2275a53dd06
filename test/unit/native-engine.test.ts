/**
 * The native ESP engine end to end: two engines in two network namespaces (each run by
 * fixtures/engine-peer.js under `ip netns exec`) with mirrored SAs, the kernel's ping across the
 * tunnel for AES-GCM over UDP and raw ESP and for AES-CBC + HMAC-SHA-256 with ESN, counters,
 * ESP packets crafted here with node:crypto (accepted once, then dropped as a replay; bit-flipped:
 * integrity; unknown SPI; selector violation), IKE and keep-alives on the shared NAT-T port, probes
 * with monotonic timestamps, ICMP "fragmentation needed" and outer fragmentation, and close()
 * removing the TUN. Needs root; namespaces are removed even when a case fails.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import type { EngineOptions } from '../../src/dataplane/engine-api.js';
import { loadNative } from '../../src/dataplane/native.js';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { A, B, echo, espGcm, keys, NATT, Peer, saPair, TUN, twoNamespaces } from './fixtures/engine-lab.js';

t.test('createEngine validates its arguments before touching the system', async (t) => {
  const { createEngine } = loadNative();
  const ok = {
    tunName: 'tswx',
    mtu: 1400,
    nattPort: 4500,
    localAddresses: ['192.0.2.1'],
    onIke: () => {},
    onProbe: () => {},
  };
  const bad = (o: unknown) => () => createEngine(o as EngineOptions);
  t.throws(bad(undefined), TypeError, 'no options');
  t.throws(bad({ ...ok, tunName: 5 }), /opts\.tunName must be a string/);
  t.throws(bad({ ...ok, mtu: 20 }), /opts\.mtu must be an integer in 68\.\.65535/);
  t.throws(bad({ ...ok, nattPort: 1.5 }), /opts\.nattPort/);
  t.throws(bad({ ...ok, localAddresses: ['nope'] }), /not an IP address: nope/);
  t.throws(bad({ ...ok, onIke: 'x' }), /opts\.onIke must be a function/);
});

/** Why the bulk-traffic case cannot run (iperf3 missing), or undefined. */
function labIperf(): string | undefined {
  try {
    execFileSync('iperf3', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'iperf3 is not installed';
  }
}

const skip = labUnavailable();
t.test('two engines in two namespaces', { skip }, async (t) => {
  const lab = new Lab(t);
  const { nsA, nsB } = await twoNamespaces(lab, 'v');
  await lab.loopbackAddresses(nsA, `${A.lan}/32`, '2001:db8:a::1/128');
  await lab.loopbackAddresses(nsB, `${B.lan}/32`, '2001:db8:b::1/128');

  const engineOpts = (wan: string) => ({ tunName: TUN, mtu: 1400, nattPort: NATT, localAddresses: [wan] });
  const a = new Peer(nsA, engineOpts(A.wan));
  const b = new Peer(nsB, engineOpts(B.wan));
  t.teardown(() => {
    a.stop();
    b.stop();
  });
  await a
    .event((m) => m.event === 'ready' || m.event === 'error')
    .then((m) => t.equal(m.event, 'ready', 'A up'));
  await b
    .event((m) => m.event === 'ready' || m.event === 'error')
    .then((m) => t.equal(m.event, 'ready', 'B up'));

  for (const [ns, me, peer] of [
    [nsA, A, B],
    [nsB, B, A],
  ] as const) {
    const v6src = me === A ? '2001:db8:a::1' : '2001:db8:b::1';
    await lab.exec(ns, 'ip', ['route', 'add', peer.net, 'dev', TUN, 'src', me.lan]);
    await lab.exec(ns, 'ip', ['-6', 'route', 'add', peer.net6, 'dev', TUN, 'src', v6src]);
  }
  await a.call('setRoutes', {
    routes: [
      { destination: B.net, connections: ['c1'] },
      { destination: B.net6, connections: ['c1'] },
    ],
  });
  await b.call('setRoutes', {
    routes: [
      { destination: A.net, connections: ['c1'] },
      { destination: A.net6, connections: ['c1'] },
    ],
  });

  /** A counter from the namespace's /proc/net/snmp, e.g. ('Ip', 'FragCreates'). */
  const snmp = async (ns: string, proto: string, field: string) => {
    const lines = (await lab.exec(ns, 'cat', ['/proc/net/snmp'])).stdout.split('\n');
    const [names, values] = lines.filter((l) => l.startsWith(`${proto}: `)).map((l) => l.split(/\s+/));
    return Number(values![names!.indexOf(field)]);
  };
  const ping = (args: string[], check = true) =>
    lab.exec(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', ...args], { check });
  const gcm = keys('aes256gcm16', 36, null, 0);

  await t.test('AES-256-GCM over UDP: ping both ways, IPv4 and IPv6 inside, counters move', async (t) => {
    const { a: sa, b: sb } = saPair(gcm, 0x1001, 0x2001, 'udp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    const r = await ping(['-I', A.lan, B.lan]);
    t.match(r.stdout, /3 received/, 'IPv4 ping across the tunnel');
    const r6 = await ping(['-6', '-I', '2001:db8:a::1', '2001:db8:b::1']);
    t.match(r6.stdout, /3 received/, 'IPv6 ping across the tunnel');
    const ca = await a.counters(0x2001);
    const cb = await b.counters(0x1001);
    t.ok(
      ca && ca.packetsOut >= 6 && ca.packetsIn >= 6 && ca.bytesOut >= 6 * 84,
      `A counters ${JSON.stringify(ca)}`,
    );
    t.ok(cb && cb.packetsOut >= 6 && cb.packetsIn >= 6, `B counters ${JSON.stringify(cb)}`);
    t.equal(await a.counters(0x9999), null, 'unknown SPI has no counters');
  });

  await t.test('crafted ESP: accepted once, then replay, integrity, unknown SPI, policy', async (t) => {
    const before = await b.drops();
    const c0 = (await b.counters(0x1001))!;
    const send = (...packets: Buffer[]) =>
      a.call('udpSend', {
        local: A.wan,
        to: B.wan,
        port: NATT,
        packets: packets.map((p) => p.toString('hex')),
      });
    const good = espGcm(gcm.aToB, 0x1001, 1000, echo(A.lan, B.lan, 0x77, 1));
    await send(good);
    await send(good); // the same packet again: a replay
    const flipped = espGcm(gcm.aToB, 0x1001, 1001, echo(A.lan, B.lan, 0x77, 2));
    flipped[flipped.length - 20]! ^= 0x01;
    await send(flipped);
    await send(espGcm(gcm.aToB, 0x5555, 1, echo(A.lan, B.lan, 0x77, 3)));
    await send(espGcm(gcm.aToB, 0x1001, 1002, echo('203.0.113.9', B.lan, 0x77, 4)));
    await new Promise((r) => setTimeout(r, 300));
    const after = await b.drops();
    const c1 = (await b.counters(0x1001))!;
    t.equal(c1.packetsIn - c0.packetsIn, 1, 'the crafted packet was decrypted once');
    t.equal(after.replay! - before.replay!, 1, 'replayed packet dropped as replay');
    t.equal(after.integrity! - before.integrity!, 1, 'bit-flipped packet dropped by the ICV');
    t.equal(after.noSa! - before.noSa!, 1, 'unknown SPI dropped');
    t.equal(after.policy! - before.policy!, 1, 'inner source outside tsRemote dropped');
  });

  await t.test('IKE and keep-alives share the NAT-T socket', async (t) => {
    const before = await b.drops();
    await a.call('sendKeepalive', { local: A.wan, remote: B.wan, remotePort: NATT });
    await a.call('sendIke', {
      local: A.wan,
      remote: B.wan,
      remotePort: NATT,
      hex: Buffer.from('ike-hello').toString('hex'),
    });
    const ev = await b.event((m) => m.event === 'ike');
    t.equal(Buffer.from(String(ev.hex), 'hex').toString(), 'ike-hello', 'marker stripped, payload intact');
    t.match(ev, { local: B.wan, localPort: NATT, remote: A.wan, remotePort: NATT }, 'addresses and ports');
    const marked = Buffer.concat([Buffer.alloc(4), Buffer.from('from-ephemeral')]);
    await a.call('udpSend', { local: A.wan, to: B.wan, port: NATT, packets: [marked.toString('hex')] });
    const ev2 = await b.event((m) => m.event === 'ike' && m.remotePort !== NATT);
    t.equal(Buffer.from(String(ev2.hex), 'hex').toString(), 'from-ephemeral', 'IKE from any source port');
    t.same(await b.drops(), before, 'keep-alive neither delivered nor counted as a drop');
    await t.rejects(
      a.call('sendIke', { local: '192.0.2.99', remote: B.wan, remotePort: NATT, hex: '00' }),
      /localAddresses/,
    );
  });

  await t.test('injectProbe / watchProbe: the echo reply comes back timestamped', async (t) => {
    await a.call('watchProbe', { icmpId: 0x4242, on: true });
    const t0 = BigInt(await a.call<string>('hrtime'));
    const sent = await a.call('injectProbe', {
      connection: 'c1',
      hex: echo(A.lan, B.lan, 0x4242, 7).toString('hex'),
    });
    t.equal(sent, true, 'probe accepted');
    const ev = await a.event((m) => m.event === 'probe');
    const t1 = BigInt(await a.call<string>('hrtime'));
    const pkt = Buffer.from(String(ev.hex), 'hex');
    t.equal(ev.connection, 'c1');
    t.equal(pkt[20], 0, 'ICMP echo reply');
    t.equal(pkt.readUInt16BE(24), 0x4242, 'our identifier');
    const ns = BigInt(String(ev.ns));
    t.ok(ns >= t0 && ns <= t1, `timestamp ${ns} within [${t0}, ${t1}] (CLOCK_MONOTONIC)`);
    t.equal(
      await a.call('injectProbe', { connection: 'nope', hex: echo(A.lan, B.lan, 1, 1).toString('hex') }),
      false,
      'no SA: false',
    );
    await a.call('watchProbe', { icmpId: 0x4242, on: false });
  });

  await t.test('raw ESP (IP protocol 50), AES-256-GCM', async (t) => {
    const k = keys('aes256gcm16', 36, null, 0);
    const { a: sa, b: sb } = saPair(k, 0x1002, 0x2002, 'esp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    const old = await a.counters(0x2001);
    const udpIn = await snmp(nsB, 'Udp', 'InDatagrams');
    const r = await ping(['-I', A.lan, B.lan]);
    t.match(r.stdout, /3 received/, 'ping over raw ESP');
    t.equal(await snmp(nsB, 'Udp', 'InDatagrams'), udpIn, 'no UDP datagram reached B');
    const c = await a.counters(0x2002);
    t.ok(c && c.packetsOut >= 3 && c.packetsIn >= 3, `new SA carries the traffic ${JSON.stringify(c)}`);
    t.same(await a.counters(0x2001), old, 'the previous (UDP) SA is idle');
    await a.call('removeSa', { spiIn: 0x2001 });
    await b.call('removeSa', { spiIn: 0x1001 });
    t.equal(await a.counters(0x2001), null, 'removed');
  });

  await t.test('AES-128-CBC + HMAC-SHA-256 with ESN over UDP', async (t) => {
    const k = keys('aes128', 16, 'sha256', 32);
    const { a: sa, b: sb } = saPair(k, 0x1003, 0x2003, 'udp', true);
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    const r = await ping(['-I', A.lan, B.lan]);
    t.match(r.stdout, /3 received/, 'ping with CBC/HMAC');
    const c = await b.counters(0x1003);
    t.ok(c && c.packetsIn >= 3 && c.packetsOut >= 3, `counters ${JSON.stringify(c)}`);
    await t.rejects(
      a.call('installSa', { sa: { ...sa, spiIn: 0x3000, encr: 'des' } }),
      { name: 'TypeError' },
      'unknown algorithm',
    );
    await t.rejects(
      a.call('installSa', { sa: { ...sa, spiIn: 0x3000, encrKeyIn: '0011' } }),
      /key/,
      'bad key length',
    );
  });

  await t.test('volume limits: marks reported once each, nothing past the hard limit', async (t) => {
    // A's pair: soft mark at 2 packets, hard limit at 4, per direction (sa_limits.h).
    const { a: sa, b: sb } = saPair(gcm, 0x1004, 0x2004, 'udp');
    await a.call('installSa', { sa: { ...sa, limits: { softPackets: 2, hardPackets: 4 } } });
    await b.call('installSa', { sa: sb });
    const d0 = await a.drops();
    const r = await ping(['-I', A.lan, B.lan]);
    t.match(r.stdout, /3 received/, 'three echoes fit');
    const soft = await a.event((m) => m.event === 'limit' && m.spiIn === 0x2004);
    t.equal(soft.hard, false, 'the soft mark is reported');
    const r2 = await ping(['-I', A.lan, B.lan], false);
    t.match(r2.stdout, /1 received/, 'the fourth echo is the last');
    await a.event((m) => m.event === 'limit' && m.spiIn === 0x2004 && m.hard === true);
    const limits = a.events.filter((m) => m.event === 'limit' && m.spiIn === 0x2004);
    t.same(
      limits.map((m) => m.hard),
      [false, true],
      'each mark once',
    );
    const d1 = await a.drops();
    t.equal(d1.expired! - d0.expired!, 2, 'two echo requests dropped as expired');
    t.equal(d1.seqExhausted, d0.seqExhausted, 'not a sequence number matter');
    const c = await a.counters(0x2004);
    t.ok(c && c.packetsOut === 4 && c.packetsIn === 4, `counters stop at the limit ${JSON.stringify(c)}`);
    await a.call('removeSa', { spiIn: 0x2004 });
    await b.call('removeSa', { spiIn: 0x1004 });
  });

  await t.test('make-before-break: activate false, then activateSa or the peer moves the SA', async (t) => {
    const old = saPair(keys('aes256gcm16', 36, null, 0), 0x1004, 0x2004, 'udp');
    await a.call('installSa', { sa: old.a });
    await b.call('installSa', { sa: old.b });
    const neu = saPair(keys('aes256gcm16', 36, null, 0), 0x1005, 0x2005, 'udp');
    await a.call('installSa', { sa: { ...neu.a, activate: false } });
    await b.call('installSa', { sa: { ...neu.b, activate: false } });
    const zero = { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 };

    const a0 = (await a.counters(0x2004))!;
    t.match((await ping(['-I', A.lan, B.lan])).stdout, /3 received/, 'ping while the new pair waits');
    const a1 = (await a.counters(0x2004))!;
    t.equal(a1.packetsOut - a0.packetsOut, 3, 'A still sends on the old SA');
    t.equal(a1.packetsIn - a0.packetsIn, 3, 'B still answers on the old SA');
    t.same(await a.counters(0x2005), zero, 'A: new pair installed but idle');
    t.same(await b.counters(0x1005), zero, 'B: new pair installed but idle');

    await a.call('activateSa', { spiIn: 0x2005 });
    await a.call('activateSa', { spiIn: 0x9999 }); // unknown: a no-op
    t.match((await ping(['-I', A.lan, B.lan])).stdout, /3 received/, 'ping after activateSa');
    const a2 = (await a.counters(0x2004))!;
    t.same(a2, a1, 'the old pair is idle on A');
    const an = (await a.counters(0x2005))!;
    t.equal(an.packetsOut, 3, 'activateSa: A sends on the new SA');
    t.equal(an.packetsIn, 3, 'B answers on the new SA without activateSa (the peer used it)');
    const bn = (await b.counters(0x1005))!;
    t.equal(bn.packetsIn, 3, 'B received on the new SA');
    t.equal(bn.packetsOut, 3, 'B auto-activated the new pair');
    t.ok(await b.counters(0x1004), 'the old pair is still installed on B');

    // Removing the current pair while a newer, not activated one exists: the newer one takes over.
    const third = saPair(keys('aes256gcm16', 36, null, 0), 0x1006, 0x2006, 'udp');
    await a.call('installSa', { sa: { ...third.a, activate: false } });
    await b.call('installSa', { sa: { ...third.b, activate: false } });
    await a.call('removeSa', { spiIn: 0x2005 });
    t.match((await ping(['-I', A.lan, B.lan])).stdout, /3 received/, 'ping after removing the current');
    const a3 = (await a.counters(0x2006))!;
    t.equal(a3.packetsOut, 3, 'A: the newer pending pair became current');
    t.equal(a3.packetsIn, 3, 'B followed it (auto-activation)');
    t.same((await a.counters(0x2004))!, a2, 'the older activated pair stays idle');

    for (const spi of [0x2004, 0x2006]) await a.call('removeSa', { spiIn: spi });
    for (const spi of [0x1004, 0x1005, 0x1006]) await b.call('removeSa', { spiIn: spi });
    await t.rejects(
      a.call('installSa', { sa: { ...neu.a, spiIn: 0x3000, activate: 'no' } }),
      { name: 'TypeError' },
      'activate must be a boolean',
    );
  });

  const iperf = labIperf();
  await t.test('bulk traffic: one TCP stream, then ping under a UDP flood', { skip: iperf }, async (t) => {
    // Exercises the batched paths: TSO super-packets read from the TUN and segmented, UDP GSO runs
    // on send, UDP GRO super-datagrams split on receive, TCP segments coalesced into GSO writes to
    // the TUN (IPv4 and IPv6).
    const k = keys('aes256gcm16', 36, null, 0);
    const { a: sa, b: sb } = saPair(k, 0x1004, 0x2004, 'udp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    const before = { a: await a.drops(), b: await b.drops() };
    const server = lab.spawn(nsB, 'iperf3', ['-s']);
    await waitFor(async () => (await lab.exec(nsB, 'ss', ['-ltn'])).stdout.includes(':5201'), 5000, {
      what: 'iperf3 server',
    });
    const tcp = await lab.exec(nsA, 'iperf3', ['-c', B.lan, '-B', A.lan, '-t', '2', '-J'], {
      timeoutMs: 15_000,
    });
    const mbps = JSON.parse(tcp.stdout).end.sum_received.bits_per_second / 1e6;
    t.ok(mbps > 50, `TCP through the tunnel: ${mbps.toFixed(0)} Mbit/s`);
    const tcp6 = await lab.exec(
      nsA,
      'iperf3',
      ['-c', '2001:db8:b::1', '-B', '2001:db8:a::1', '-t', '1', '-J'],
      {
        timeoutMs: 15_000,
      },
    );
    const mbps6 = JSON.parse(tcp6.stdout).end.sum_received.bits_per_second / 1e6;
    t.ok(mbps6 > 50, `TCP over IPv6 through the tunnel: ${mbps6.toFixed(0)} Mbit/s`);
    const flood = lab.exec(
      nsA,
      'iperf3',
      ['-c', B.lan, '-B', A.lan, '-u', '-b', '0', '-l', '1300', '-t', '3'],
      {
        timeoutMs: 15_000,
        check: false,
      },
    );
    await new Promise((r) => setTimeout(r, 500));
    const p = await lab.exec(nsA, 'ping', ['-c', '10', '-i', '0.2', '-W', '1', '-I', A.lan, B.lan], {
      check: false,
    });
    await flood;
    await server.stop();
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(p.stdout);
    t.ok(rtt, `ping under flood got replies: ${p.stdout.trim().split('\n').slice(-2).join(' ')}`);
    if (rtt)
      t.ok(Number(rtt[2]) < 50, `average RTT under a saturating flood ${rtt[2]} ms (max ${rtt[3]} ms)`);
    const after = { a: await a.drops(), b: await b.drops() };
    for (const side of ['a', 'b'] as const) {
      for (const why of ['malformed', 'integrity', 'replay', 'policy', 'noSa'])
        t.equal(after[side][why], before[side][why], `${side}: no ${why} drops from batching`);
    }
    for (const ns of [nsA, nsB]) {
      t.equal(await snmp(ns, 'Tcp', 'InCsumErrors'), 0, 'segmented and coalesced TCP checksums verify');
      t.equal(await snmp(ns, 'Udp', 'InCsumErrors'), 0, 'offloaded UDP checksums completed');
    }
    const c = await b.counters(0x1004);
    t.ok(c && c.packetsIn > 1000, `B decrypted ${c?.packetsIn} packets on the new SA`);
  });

  await t.test('too big for the tunnel: outer fragments without DF, ICMP back with DF', async (t) => {
    // Raise the device MTU above the engine's tunnel MTU so that big packets reach the engine.
    await lab.exec(nsA, 'ip', ['link', 'set', TUN, 'mtu', '1500']);
    const frags = await snmp(nsA, 'Ip', 'FragCreates');
    const big = await lab.exec(
      nsA,
      'ping',
      ['-c', '1', '-W', '2', '-M', 'dont', '-s', '1450', '-I', A.lan, B.lan],
      { check: false },
    );
    t.match(big.stdout, /1 received/, 'no DF: encrypted anyway');
    t.ok((await snmp(nsA, 'Ip', 'FragCreates')) >= frags + 2, 'the outer packet was fragmented');
    const before = await a.drops();
    const df = await lab.exec(
      nsA,
      'ping',
      ['-c', '1', '-W', '2', '-M', 'do', '-s', '1450', '-I', A.lan, B.lan],
      { check: false },
    );
    t.match(
      df.stdout + df.stderr,
      /mtu = 1400|message too long/i,
      'DF: fragmentation needed with the tunnel MTU',
    );
    t.ok((await a.drops()).mtu! > before.mtu!, 'counted as mtu drop');
  });

  await t.test('close() removes the TUN device', async (t) => {
    await b.call('close');
    const r = await lab.exec(nsB, 'ip', ['link', 'show', 'dev', TUN], { check: false });
    t.not(r.code, 0, 'tsw0 is gone');
    await b.call('close');
    t.pass('close is idempotent');
    await t.rejects(
      b.call('installSa', { sa: saPair(gcm, 1, 2, 'udp').b }),
      /closed/,
      'calls after close throw',
    );
  });
});

t.test(
  'two connections between two engines: echo replies return through the connection of the request',
  { skip },
  async (t) => {
    // Connection x over 192.0.2.0/24, connection y over 198.51.100.0/24. A routes B's LAN via x, B
    // routes A's LAN via y: by route alone, B would answer A's pings (which arrive through x)
    // through y.
    const lab = new Lab(t);
    const nsA = await lab.addNamespace('a');
    const nsB = await lab.addNamespace('b');
    const tag = lab.id.slice(-4);
    const A2 = { wan: '198.51.100.1' };
    const B2 = { wan: '198.51.100.2' };
    await lab.link(
      { ns: nsA, ifname: `tswx${tag}a`, address: `${A.wan}/24` },
      { ns: nsB, ifname: `tswx${tag}b`, address: `${B.wan}/24` },
    );
    await lab.link(
      { ns: nsA, ifname: `tswy${tag}a`, address: `${A2.wan}/24` },
      { ns: nsB, ifname: `tswy${tag}b`, address: `${B2.wan}/24` },
    );
    await lab.loopbackAddresses(nsA, `${A.lan}/32`, '2001:db8:a::1/128');
    await lab.loopbackAddresses(nsB, `${B.lan}/32`, '2001:db8:b::1/128');

    const opts = (wans: string[]) => ({ tunName: TUN, mtu: 1400, nattPort: NATT, localAddresses: wans });
    const a = new Peer(nsA, opts([A.wan, A2.wan]));
    const b = new Peer(nsB, opts([B.wan, B2.wan]));
    t.teardown(() => {
      a.stop();
      b.stop();
    });
    for (const p of [a, b]) {
      const m = await p.event((m) => m.event === 'ready' || m.event === 'error');
      t.equal(m.event, 'ready', `engine up ${JSON.stringify(m)}`);
    }
    const up = Date.now();

    const k = keys('aes256gcm16', 36, null, 0);
    const x = saPair(k, 0x1101, 0x2101, 'udp');
    const y = saPair(k, 0x1102, 0x2102, 'udp');
    const withConn = (sa: typeof x.a, connection: string, local: string, remote: string) => ({
      ...sa,
      connection,
      local,
      remote,
    });
    await a.call('installSa', { sa: withConn(x.a, 'x', A.wan, B.wan) });
    await a.call('installSa', { sa: withConn(y.a, 'y', A2.wan, B2.wan) });
    await b.call('installSa', { sa: withConn(x.b, 'x', B.wan, A.wan) });
    await b.call('installSa', { sa: withConn(y.b, 'y', B2.wan, A2.wan) });
    // Inbound SPIs: A's x = 0x2101, y = 0x2102; B's x = 0x1101, y = 0x1102.
    for (const [ns, me, peer, v6src] of [
      [nsA, A, B, '2001:db8:a::1'],
      [nsB, B, A, '2001:db8:b::1'],
    ] as const) {
      await lab.exec(ns, 'ip', ['route', 'add', peer.net, 'dev', TUN, 'src', me.lan]);
      await lab.exec(ns, 'ip', ['-6', 'route', 'add', peer.net6, 'dev', TUN, 'src', v6src]);
    }
    const routes = (peer: typeof A, conn: string) => ({
      routes: [
        { destination: peer.net, connections: [conn] },
        { destination: peer.net6, connections: [conn] },
      ],
    });
    await a.call('setRoutes', routes(B, 'x'));
    await b.call('setRoutes', routes(A, 'y'));

    await t.test('an idle engine drops nothing: no IPv6 autoconfiguration on the TUN', async (t) => {
      // The kernel would send Router Solicitations about 1 s after the device came up.
      await new Promise((r) => setTimeout(r, Math.max(0, 1500 - (Date.now() - up))));
      for (const [name, p, ns] of [
        ['A', a, nsA],
        ['B', b, nsB],
      ] as const) {
        const d = await p.drops();
        t.same(
          Object.values(d).filter((n) => n !== 0),
          [],
          `${name}: no drops at rest ${JSON.stringify(d)}`,
        );
        const addr = await lab.exec(ns, 'ip', ['-6', 'addr', 'show', 'dev', TUN]);
        t.notMatch(addr.stdout, /fe80:/, `${name}: no IPv6 link-local address on the TUN`);
      }
    });

    const out = async (p: Peer, spiIn: number) => (await p.counters(spiIn))!.packetsOut;
    const inn = async (p: Peer, spiIn: number) => (await p.counters(spiIn))!.packetsIn;
    const ping = (args: string[]) =>
      lab.exec(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', ...args], { check: false });

    for (const [fam, src, dst] of [
      ['IPv4', A.lan, B.lan],
      ['IPv6', '2001:db8:a::1', '2001:db8:b::1'],
    ] as const) {
      await t.test(`${fam}: the request came through x, so the reply leaves through x`, async (t) => {
        const before = { bx: await out(b, 0x1101), by: await out(b, 0x1102), ax: await inn(a, 0x2101) };
        const r = await ping(['-I', src, dst]);
        t.match(r.stdout, /3 received/, `A got the replies: ${r.stdout.trim().split('\n').at(-2)}`);
        t.equal((await out(b, 0x1101)) - before.bx, 3, "B's replies went out through x");
        t.equal((await out(b, 0x1102)) - before.by, 0, 'nothing through y, which the route names');
        t.equal((await inn(a, 0x2101)) - before.ax, 3, 'A received them on x');
      });
    }

    await t.test('a reply without a matching request follows the route', async (t) => {
      // The request bypasses the tunnel (plain veth), so B's engine never sees it; B's kernel still
      // answers into the TUN, and the reply must take B's route: y.
      await lab.exec(nsA, 'ip', ['route', 'add', `${B.lan}/32`, 'via', B.wan, 'src', A.lan]);
      const before = { bx: await out(b, 0x1101), by: await out(b, 0x1102), ay: await inn(a, 0x2102) };
      const r = await ping(['-I', A.lan, B.lan]);
      await lab.exec(nsA, 'ip', ['route', 'del', `${B.lan}/32`]);
      t.match(r.stdout, /3 received/, 'A got the replies through y');
      t.equal((await out(b, 0x1102)) - before.by, 3, 'B sent them through y (its route)');
      t.equal((await out(b, 0x1101)) - before.bx, 0, 'not through x');
      t.equal((await inn(a, 0x2102)) - before.ay, 3, 'A received them on y');
    });
  },
);
