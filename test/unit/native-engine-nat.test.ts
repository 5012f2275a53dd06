/**
 * NAT rebinding in the native ESP engine (RFC 7296 §2.23, RFC 3948), with two engines in two network
 * namespaces as in native-engine.test.ts. B has a second address, B2, to move to.
 *
 * - onPeerMoved: ESP that verifies and is new, from a source other than the SA's remote endpoint, is
 *   reported (once a second per SA) and still decrypted; forged or replayed packets are not reported;
 *   raw ESP reports a new address with port 0.
 * - updateSa: A's ESP really goes to the new endpoint (a plain UDP socket on a new port of B, captured
 *   and decrypted here; then B's engine on B2), sequence numbers carry on, the API's errors.
 *
 * A's engine is built by NativeDataPlane (engine-peer.js `dataPlane: true`), so its updateSa and the
 * onPeerMoved handler registered after construction are exercised as the daemon will use them.
 *
 * Needs root; namespaces are removed even when a case fails.
 */
import t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import {
  A,
  B,
  echo,
  espGcm,
  espGcmOpen,
  keys,
  NATT,
  Peer,
  saPair,
  TUN,
  twoNamespaces,
} from './fixtures/engine-lab.js';

const B2 = '192.0.2.3';
type Msg = Record<string, unknown>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = labUnavailable();
t.test('NAT rebinding between two engines', { skip }, async (t) => {
  const lab = new Lab(t);
  const { nsA, nsB, ifB } = await twoNamespaces(lab, 'n');
  await lab.exec(nsB, 'ip', ['addr', 'add', `${B2}/24`, 'dev', ifB]);
  await lab.loopbackAddresses(nsA, `${A.lan}/32`);
  await lab.loopbackAddresses(nsB, `${B.lan}/32`);

  const opts = (wans: string[]) => ({ tunName: TUN, mtu: 1400, nattPort: NATT, localAddresses: wans });
  // A runs behind NativeDataPlane: its updateSa calls and late-registered handler are covered too.
  const a = new Peer(nsA, { ...opts([A.wan]), dataPlane: true });
  const b = new Peer(nsB, opts([B.wan, B2]));
  t.teardown(() => {
    a.stop();
    b.stop();
  });
  for (const p of [a, b]) {
    const m = await p.event((m) => m.event === 'ready' || m.event === 'error');
    t.equal(m.event, 'ready', `engine up ${JSON.stringify(m)}`);
  }
  for (const [ns, me, peer] of [
    [nsA, A, B],
    [nsB, B, A],
  ] as const) {
    await lab.exec(ns, 'ip', ['route', 'add', peer.net, 'dev', TUN, 'src', me.lan]);
  }
  await a.call('setRoutes', { routes: [{ destination: B.net, connections: ['c1'] }] });
  await b.call('setRoutes', { routes: [{ destination: A.net, connections: ['c1'] }] });

  const ping = (count = 3) =>
    lab.exec(nsA, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', '-I', A.lan, B.lan], {
      check: false,
    });
  const moved = (spiIn: number) => a.events.filter((m) => m.event === 'moved' && m.spiIn === spiIn);

  await t.test('onPeerMoved: authenticated ESP from a new port, reported once a second', async (t) => {
    const k = keys('aes256gcm16', 36, null, 0);
    const { a: sa, b: sb } = saPair(k, 0x1101, 0x2101, 'udp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    t.match((await ping()).stdout, /3 received/, 'ping from the installed endpoints');
    t.same(moved(0x2101), [], 'nothing reported while B sends from its SA endpoint');

    // B's packets from other ports of B.wan, as after a NAT rebinding.
    const send = (localPort: number, ...packets: Buffer[]) =>
      b.call<number>('udpSend', {
        local: B.wan,
        localPort,
        to: A.wan,
        port: NATT,
        packets: packets.map((p) => p.toString('hex')),
      });
    const good = (seq: number) => espGcm(k.bToA, 0x2101, seq, echo(B.lan, A.lan, 0x99, seq));
    const d0 = await a.drops();
    const c0 = (await a.counters(0x2101))!;

    const forged = good(999);
    forged[forged.length - 20]! ^= 0x01;
    await send(40001, forged);
    await sleep(300);
    t.equal((await a.drops()).integrity! - d0.integrity!, 1, 'forged packet dropped by the ICV');
    t.same(moved(0x2101), [], 'a packet that does not verify moves nothing');

    await send(40002, good(1000), good(1001), good(1002), good(1003), good(1004));
    const ev = await a.event((m) => m.event === 'moved' && m.spiIn === 0x2101);
    t.match(ev, { spiIn: 0x2101, remote: B.wan, remotePort: 40002 }, 'the new endpoint is reported');
    await sleep(300);
    t.equal(moved(0x2101).length, 1, 'five packets within a second: reported once');
    const c1 = (await a.counters(0x2101))!;
    t.equal(c1.packetsIn - c0.packetsIn, 5, 'A decrypted all five packets from the new port');

    await sleep(1100); // past the rate limit
    await send(40003, good(1000));
    await sleep(300);
    t.equal((await a.drops()).replay! - d0.replay!, 1, 'the replayed packet dropped as replay');
    t.equal(moved(0x2101).length, 1, 'a replayed packet moves nothing (RFC 7296 §2.23)');
    await send(40003, good(1005));
    await a.event((m) => m.event === 'moved' && m.spiIn === 0x2101 && m.remotePort === 40003);
    t.equal(moved(0x2101).length, 2, 'a second later, a new packet from elsewhere is reported again');
    t.equal((await a.counters(0x2101))!.packetsIn - c1.packetsIn, 1, 'and decrypted');
    t.match((await ping()).stdout, /3 received/, 'the SA still works from its own endpoint');
    t.equal(moved(0x2101).length, 2, 'which is not reported');
    t.same(
      a.events.filter((m) => m.event === 'dpMoved' && m.spiIn === 0x2101),
      [40002, 40003].map((port) => ({ event: 'dpMoved', spiIn: 0x2101, from: { address: B.wan, port } })),
      "NativeDataPlane's handler registered after construction got the same reports as Endpoints",
    );
  });

  await t.test('raw ESP: a new source address is reported with port 0', async (t) => {
    const k = keys('aes256gcm16', 36, null, 0);
    const { a: sa, b: sb } = saPair(k, 0x1102, 0x2102, 'esp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    // B now sends from B2 (its other address); A still sends to B.wan, where B receives too.
    t.equal(
      await b.call('updateSa', { spiIn: 0x1102, local: B2, localPort: 0, remote: A.wan, remotePort: 0 }),
      true,
      'B sends from B2',
    );
    const c0 = (await a.counters(0x2102))!;
    t.match((await ping()).stdout, /3 received/, 'ping while B answers from B2');
    const ev = await a.event((m) => m.event === 'moved' && m.spiIn === 0x2102);
    t.match(ev, { remote: B2, remotePort: 0 }, 'B2 reported, without a port');
    t.equal(moved(0x2102).length, 1, 'three replies within a second: once');
    t.equal((await a.counters(0x2102))!.packetsIn - c0.packetsIn, 3, 'A decrypted the replies from B2');

    // A follows: B2 is the SA's endpoint now, so nothing more is reported.
    t.equal(
      await a.call('updateSa', { spiIn: 0x2102, local: A.wan, localPort: 0, remote: B2, remotePort: 0 }),
      true,
      'A follows to B2',
    );
    await sleep(1100);
    t.match((await ping()).stdout, /3 received/, 'ping after A followed');
    t.equal(moved(0x2102).length, 1, 'no report once the SA points at B2');
  });

  await t.test('updateSa: A sends to the new endpoint, sequence numbers carry on', async (t) => {
    const k = keys('aes256gcm16', 36, null, 0);
    const { a: sa, b: sb } = saPair(k, 0x1103, 0x2103, 'udp');
    await a.call('installSa', { sa });
    await b.call('installSa', { sa: sb });
    t.match((await ping()).stdout, /3 received/, 'ping before the move');

    // B's NAT mapping moves to port 4501: a plain socket there stands in for it.
    await b.call('udpListen', { address: B.wan, port: 4501 });
    const update = (spiIn: number, local: string, remote: string, remotePort: number, p = a) =>
      p.call('updateSa', { spiIn, local, localPort: NATT, remote, remotePort });
    t.equal(await update(0x2103, A.wan, B.wan, 4501), true, 'updateSa: true');
    const out0 = (await a.counters(0x2103))!.packetsOut;
    const in0 = (await b.counters(0x1103))!.packetsIn;
    await ping(2);
    await b.event((m) => m.event === 'udp' && m.at === `${B.wan}:4501`);
    await sleep(300);
    const got = b.events.filter((m) => m.event === 'udp' && m.at === `${B.wan}:4501`);
    t.equal(got.length, 2, 'both echo requests arrived at the new port');
    got.forEach((m: Msg, i) => {
      t.match(m, { from: A.wan, fromPort: NATT }, "sent from A's NAT-T socket");
      const esp = espGcmOpen(k.aToB, Buffer.from(String(m.hex), 'hex'));
      t.equal(esp.spi, 0x1103, 'on the updated SA');
      t.equal(esp.seq, out0 + 1 + i, 'the sequence number carries on');
      t.equal(esp.nextHeader, 4, 'IPv4 inside');
      const addrs = [...A.lan.split('.'), ...B.lan.split('.')].map(Number);
      t.same([...esp.inner.subarray(12, 20)], addrs, 'from A.lan to B.lan');
      t.equal(esp.inner[20], 8, 'the echo request');
    });
    t.equal((await b.counters(0x1103))!.packetsIn, in0, "nothing reached B's engine at the old endpoint");
    await b.call('udpClose', { address: B.wan, port: 4501 });

    // B moves to its other address B2 and both sides follow: the tunnel works again end to end.
    t.equal(await update(0x2103, A.wan, B2, NATT), true, 'A sends to B2');
    t.equal(await update(0x1103, B2, A.wan, NATT, b), true, 'B sends from B2');
    const c = (await b.counters(0x1103))!;
    t.match((await ping()).stdout, /3 received/, 'ping through B2');
    const c2 = (await b.counters(0x1103))!;
    t.equal(
      c2.packetsIn - c.packetsIn,
      3,
      "B's engine received on B2, its replay window accepting the carried-on sequence",
    );
    t.same(moved(0x2103), [], 'no report: B sends from where A sends to');
    t.equal(await update(0x2103, A.wan, B2, NATT), true, 'an update that changes nothing: true');

    t.equal(await update(0x9999, A.wan, B2, NATT), false, 'unknown spiIn: false');
    await t.rejects(update(0x2103, '192.0.2.99', B2, NATT), /localAddresses/, 'local must be ours');
    await t.rejects(update(0x2103, A.wan, '2001:db8::1', NATT), { name: 'TypeError' }, 'family mismatch');
    await t.rejects(update(0x2103, A.wan, B2, 0), { name: 'TypeError' }, 'ESP-in-UDP needs a port');
    await t.rejects(update(0x2103, A.wan, 'nope', NATT), /not an address/, 'not an address');
    t.match((await ping()).stdout, /3 received/, 'failed updates changed nothing');
  });
});
