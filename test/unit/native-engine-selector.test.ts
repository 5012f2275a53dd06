/**
 * Selector routes in the native ESP engine (SaConfig.selectorRoutes): a hub connection's per-site SAs
 * forward their tsRemote prefixes to their own connection, next to the configured routes. A's engine
 * runs in one network namespace; every SA sends ESP-in-UDP to a plain UDP socket of B (another
 * namespace), where the datagrams are captured and opened here (RFC 4106), so each packet's SPI and
 * inner destination say which SA the engine chose. Inner packets are UDP datagrams from A's LAN address
 * into A's TUN (routed 10.0.0.0/8 there), and the peer's first packet on a new SA is ESP crafted here.
 *
 * - 50 connections with distinct tsRemote /24s: a packet to each /24 leaves on that connection's SA
 * - longest match against a configured route, both ways, and a configured route winning a tie
 * - one prefix from two connections: the newer one's, the other's again once it is removed
 * - removing a connection's last SA removes its entries (noRoute)
 * - rekey within a selector-routed connection: activate false, then the peer's first packet switches
 *
 * Needs root; namespaces are removed even when a case fails.
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
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

type Msg = Record<string, unknown>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** B's plain UDP socket standing in for every site's gateway. */
const SITE_PORT = 5000;
const SITES = 50;

const skip = labUnavailable();
t.test('selector routes: hub connections', { skip }, async (t) => {
  const lab = new Lab(t);
  const { nsA, nsB } = await twoNamespaces(lab, 's');
  await lab.loopbackAddresses(nsA, `${A.lan}/32`);
  const opts = (wan: string) => ({ tunName: TUN, mtu: 1400, nattPort: NATT, localAddresses: [wan] });
  const a = new Peer(nsA, opts(A.wan));
  const b = new Peer(nsB, opts(B.wan));
  t.teardown(() => {
    a.stop();
    b.stop();
  });
  for (const p of [a, b]) {
    const m = await p.event((m) => m.event === 'ready' || m.event === 'error');
    t.equal(m.event, 'ready', `engine up ${JSON.stringify(m)}`);
  }
  await lab.exec(nsA, 'ip', ['route', 'add', '10.0.0.0/8', 'dev', TUN, 'src', A.lan]);
  await b.call('udpListen', { address: B.wan, port: SITE_PORT });

  const k = keys('aes256gcm16', 36, null, 0);
  /** A's side of a pair (A sends on spiOut with k.aToB, receives on spiIn with k.bToA) to B's socket. */
  const sa = (connection: string, spiIn: number, spiOut: number, tsRemote: string[], extra: Msg = {}) => ({
    ...saPair(k, spiOut, spiIn, 'udp').a,
    connection,
    remotePort: SITE_PORT,
    tsRemote,
    selectorRoutes: true,
    ...extra,
  });
  const site = (i: number) => `10.0.${i}.0/24`;

  /** The ESP datagrams B's socket received since the last call: SPI and inner destination. */
  let seen = 0;
  const captured = () => b.events.filter((m) => m.event === 'udp');
  const take = async (n: number, timeoutMs = 5000) => {
    await waitFor(() => captured().length >= seen + n, timeoutMs, { what: `${n} ESP datagram(s) at B` });
    const got = captured().slice(seen, seen + n);
    seen += n;
    return got.map((m) => {
      const esp = espGcmOpen(k.aToB, Buffer.from(String(m.hex), 'hex'));
      return { spi: esp.spi, dst: [...esp.inner.subarray(16, 20)].join('.') };
    });
  };
  /** UDP datagrams from A's LAN address to each destination, into A's TUN. */
  const send = async (...dsts: string[]) => {
    for (const to of dsts) await a.call('udpSend', { local: A.lan, to, port: 9, packets: ['00'] });
  };
  /** The SPI the packet to `dst` left on. */
  const via = async (dst: string) => {
    await send(dst);
    const [got] = await take(1);
    return got!.spi;
  };
  const quiet = async () => {
    await sleep(300);
    return captured().length === seen;
  };

  await t.test(`${SITES} connections: each /24 leaves on its own connection's SA`, async (t) => {
    for (let i = 0; i < SITES; i++)
      await a.call('installSa', { sa: sa(`sites|${site(i)}`, 0x3000 + i, 0x5000 + i, [site(i)]) });
    const dsts = Array.from({ length: SITES }, (_, i) => `10.0.${i}.7`);
    await send(...dsts);
    const got = await take(SITES);
    const wrong = got.filter((g) => g.spi !== 0x5000 + Number(g.dst.split('.')[2]));
    t.same(wrong, [], 'every packet encrypted with the SPI of its /24');
    t.same(got.map((g) => g.dst).sort(), [...dsts].sort(), 'one packet per site');
  });

  await t.test('longest match against configured routes, both ways', async (t) => {
    await a.call('installSa', {
      sa: sa('static', 0x3f00, 0x7000, ['10.0.0.0/8'], { selectorRoutes: false }),
    });
    await a.call('setRoutes', {
      routes: [
        { destination: '10.0.0.0/16', connections: ['static'] },
        { destination: '10.0.3.128/25', connections: ['static'] },
        { destination: '10.0.4.0/24', connections: ['static'] },
      ],
    });
    t.equal(await via('10.0.3.7'), 0x5003, 'selector /24 beats the configured /16');
    t.equal(await via('10.0.3.200'), 0x7000, 'configured /25 beats the selector /24');
    t.equal(await via('10.0.4.7'), 0x7000, 'equal length: the configured route wins');
    t.equal(await via('10.0.200.1'), 0x7000, 'no selector route: the configured /16');
    t.ok(await quiet(), 'nothing else left');
  });

  await t.test('one prefix from two connections: the newest, then the other again', async (t) => {
    await a.call('setRoutes', { routes: [] });
    await a.call('installSa', { sa: sa('dup1', 0x3a01, 0x6001, ['10.9.0.0/24']) });
    t.equal(await via('10.9.0.1'), 0x6001, 'the only one');
    await a.call('installSa', { sa: sa('dup2', 0x3a02, 0x6002, ['10.9.0.0/24', '10.9.1.0/24']) });
    t.equal(await via('10.9.0.1'), 0x6002, 'the most recently installed wins');
    await a.call('removeSa', { spiIn: 0x3a02 });
    t.equal(await via('10.9.0.1'), 0x6001, 'removed: the other returns');
    const d0 = await a.drops();
    await send('10.9.1.1');
    t.ok(await quiet(), "dup2's other prefix went with it");
    await a.call('removeSa', { spiIn: 0x3a01 });
    await send('10.9.0.1');
    t.ok(await quiet(), 'both removed: nothing leaves');
    t.equal((await a.drops()).noRoute! - d0.noRoute!, 2, 'dropped as noRoute');
  });

  await t.test("removing a connection's last SA removes its entries", async (t) => {
    t.equal(await via('10.0.7.7'), 0x5007, 'routed while the SA is installed');
    // A second pair in the connection (a rekey) keeps the entry while either is installed.
    await a.call('installSa', { sa: sa(`sites|${site(7)}`, 0x3107, 0x5107, [site(7)]) });
    await a.call('removeSa', { spiIn: 0x3007 });
    t.equal(await via('10.0.7.7'), 0x5107, 'the remaining pair carries it');
    const d0 = await a.drops();
    await a.call('removeSa', { spiIn: 0x3107 });
    await send('10.0.7.7');
    t.ok(await quiet(), 'nothing leaves');
    t.equal((await a.drops()).noRoute! - d0.noRoute!, 1, 'dropped as noRoute');
    t.equal(await via('10.0.6.7'), 0x5006, 'the neighbouring site is untouched');
  });

  await t.test(
    'rekey within a selector-routed connection: activate false, then the peer switches it',
    async (t) => {
      await a.call('installSa', {
        sa: sa(`sites|${site(8)}`, 0x3108, 0x5108, [site(8)], { activate: false }),
      });
      t.equal(await via('10.0.8.7'), 0x5008, 'still the old pair while the new one waits');
      // The peer's first packet on the new inbound SA (an echo reply, which the kernel drops silently).
      const first = espGcm(k.bToA, 0x3108, 1, echo('10.0.8.9', A.lan, 0x55, 1, 0));
      const c0 = (await a.counters(0x3108))!;
      await b.call('udpSend', { local: B.wan, to: A.wan, port: NATT, packets: [first.toString('hex')] });
      await waitFor(async () => (await a.counters(0x3108))!.packetsIn > c0.packetsIn, 3000, {
        what: 'the peer packet decrypted',
      });
      t.equal(await via('10.0.8.7'), 0x5108, 'the new pair after the peer used it');
      await a.call('removeSa', { spiIn: 0x3008 });
      t.equal(await via('10.0.8.7'), 0x5108, 'and after the old one is removed');
    },
  );
});
