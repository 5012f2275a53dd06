/**
 * IKEv1 interop, case (e): a real NAT between the gateways. twinsec sits behind an iptables MASQUERADE
 * router; strongSwan 5.9.8 (charon, kernel-libipsec) is on the public side. Main mode with PSK,
 * aes128-sha1-modp1024, quick mode ESP aes128-sha1-modp1024 (PFS). Two roles:
 *
 *   - twinsec initiates from behind the NAT (the usual branch-office case);
 *   - charon initiates towards the NAT's public address, which forwards UDP 500 and 4500 to twinsec
 *     (DNAT port forward).
 *
 *   [tw] in0 192.0.2.2/24 <-> in0 192.0.2.1/24 [nat] wan0 203.0.113.1/24 <-> wan0 203.0.113.2/24 [sw]
 *   tw lo 198.18.8.1 (LAN 198.18.8.0/24)                        sw lo 198.19.8.1 (LAN 198.19.8.0/24)
 *   nat: POSTROUTING -o wan0 -j MASQUERADE; (charon initiates) PREROUTING -i wan0 udp 500,4500 DNAT
 *
 * Asserted per role: both sides detected the NAT with the NAT-D payloads (RFC 3947 §3.2: strongSwan's
 * `nat-remote`, twinsec's NAT-D debug line), phase 1 moved to UDP 4500 (RFC 3947 §4: seen on the NAT's
 * two links), ESP is carried in UDP 4500 (RFC 3948 §2: non-ESP marker absent, SPIs = the negotiated
 * ones, no raw ESP on the wire), strongSwan lists twinsec's SPIs and the expected algorithms, pings
 * cross both ways, and twinsec (the side behind the NAT) sends RFC 3948 §2.3 NAT keep-alives (a UDP
 * 4500 datagram holding the single byte 0xff) that the NAT translates like the rest of the flow.
 */
import t from 'tap';
import { Lab, labUnavailable, run, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Role = 'twinsec initiates' | 'charon initiates';

const TW_IN = '192.0.2.2';
const NAT_IN = '192.0.2.1';
const NAT_WAN = '203.0.113.1';
const SW_WAN = '203.0.113.2';
const TW_LAN = '198.18.8.0/24';
const SW_LAN = '198.19.8.0/24';
const TW_HOST = '198.18.8.1';
const SW_HOST = '198.19.8.1';
const PSK = 'ikev1-nat-interop-test-psk-0123456789';
const IKE = 'aes128-sha1-modp1024';
const ESP = 'aes128-sha1-modp1024';
const ESTABLISH_MS = 20_000;
/** twinsec's keep-alive interval is 20 s (strongSwan's default too); the wait allows for a slow machine. */
const KEEPALIVE_WAIT_MS = 35_000;

const tail = (s: string | undefined, n: number) => (s ?? '').split('\n').slice(-n).join('\n');
const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

interface Packet {
  at: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** 'ike' (UDP 500, or 4500 with the non-ESP marker), 'esp' (ESP in UDP), 'keepalive', 'raw-esp', 'udp'. */
  kind: string;
  spi?: string;
  udpLength: number;
}

/** The UDP and ESP packets of a capture, classified the way RFC 3948 §2 tells them apart. */
async function readCapture(file: string): Promise<Packet[]> {
  const fields = [
    'frame.time_epoch',
    'ip.src',
    'ip.dst',
    'ip.proto',
    'udp.srcport',
    'udp.dstport',
    'udp.length',
    'isakmp.ispi',
    'esp.spi',
    'udpencap.nat_keepalive',
    'data.data',
  ];
  const r = await run(
    'tshark',
    ['-r', file, '-n', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])],
    { check: false, timeoutMs: 30_000 },
  );
  if (r.code !== 0) throw new Error(`tshark -r ${file}: exit ${r.code}\n${r.stderr}`);
  const out: Packet[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const [time, src, dst, proto, sport, dport, ulen, ispi, spi, keepalive, data] = line
      .split('|')
      .map((f) => f.split(',')[0] ?? '');
    let kind = 'udp';
    if (proto === '50') kind = 'raw-esp';
    else if (ispi) kind = 'ike';
    else if (spi) kind = 'esp';
    // RFC 3948 §2.3: a keep-alive is a UDP datagram holding the one byte 0xff (length 8 + 1).
    else if (keepalive || (ulen === '9' && data === 'ff')) kind = 'keepalive';
    out.push({
      at: Math.round(Number(time) * 1000),
      src: src ?? '',
      sport: Number(sport || 0),
      dst: dst ?? '',
      dport: Number(dport || 0),
      kind,
      spi: spi ? normSpi(spi) : undefined,
      udpLength: Number(ulen || 0),
    });
  }
  return out;
}

async function runCase(t: Test, role: Role): Promise<void> {
  const twInit = role === 'twinsec initiates';
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  // Registered after the lab's teardown, so it runs first (LIFO): the logs still exist.
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- charon log (tail) ---\n${tail(charon?.log(), 80)}`);
    t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec?.log(), 60)}`);
  });
  const tw = await lab.addNamespace('tw');
  const nat = await lab.addNamespace('nat');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'in0', address: `${TW_IN}/24` },
    { ns: nat, ifname: 'in0', address: `${NAT_IN}/24` },
  );
  await lab.link(
    { ns: nat, ifname: 'wan0', address: `${NAT_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);
  // twinsec reaches the public side through the router; strongSwan knows only its own link.
  await lab.exec(tw, 'ip', ['route', 'add', '203.0.113.0/24', 'via', NAT_IN]);
  await lab.sysctl(nat, 'net.ipv4.ip_forward', 1);
  await lab.exec(nat, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE']);
  if (!twInit) {
    // A port forward, so strongSwan can reach twinsec behind the NAT (IKE on 500, then NAT-T on 4500).
    for (const port of ['500', '4500'])
      await lab.exec(nat, 'iptables', [
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-i',
        'wan0',
        '-p',
        'udp',
        '--dport',
        port,
        '-j',
        'DNAT',
        '--to-destination',
        TW_IN,
      ]);
  }
  // The router's two sides: what twinsec sends, and what the NAT made of it.
  const capIn = await lab.capture(nat, 'in0', 'udp or esp');
  const capWan = await lab.capture(nat, 'wan0', 'udp or esp');

  charon = await startCharon(lab, sw, {
    dir: lab.tempDir('charon'),
    conns: [
      {
        name: 'gw',
        version: 1,
        local: SW_WAN,
        // strongSwan sees twinsec as the NAT's public address; twinsec's ID stays its own address.
        remote: twInit ? '%any' : NAT_WAN,
        localId: SW_WAN,
        remoteId: TW_IN,
        psk: PSK,
        ikeProposals: [IKE],
        espProposals: [ESP],
        localTs: [SW_LAN],
        remoteTs: [TW_LAN],
        startAction: 'none',
      },
    ],
  });
  twinsec = await startTwinsec(lab, tw, {
    log: { level: 'debug' },
    connections: {
      t1: {
        version: 1,
        local: TW_IN,
        remote: SW_WAN,
        localId: TW_IN,
        remoteId: SW_WAN,
        psk: PSK,
        ike: { proposals: [IKE], lifetime: 3600 },
        esp: { proposals: [ESP], lifetime: 1200 },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: twInit ? 'initiate' : 'listen',
        encapsulation: 'auto',
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  const c = charon;
  const d = twinsec;
  if (!twInit) await c.initiate('gw', { check: false, timeoutSec: 15 });
  const sa = await c.waitFor(() => c.established('gw'), ESTABLISH_MS, 'strongSwan ISAKMP SA ESTABLISHED');
  const st = await d.waitForState('t1', 'established', ESTABLISH_MS);
  const establishedAt = Date.now();

  // strongSwan's view: IKEv1, its role, the suite, and twinsec behind the NAT's public address.
  t.equal(sa.version, 1, 'strongSwan: IKEv1');
  t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
  t.equal(sa.encrAlg, 'AES_CBC', 'IKE encr AES_CBC');
  t.equal(sa.encrKeysize, 128, 'IKE keysize 128');
  t.equal(sa.integAlg, 'HMAC_SHA1_96', 'IKE integ HMAC_SHA1_96');
  t.equal(sa.dhGroup, 'MODP_1024', 'IKE dh MODP_1024');
  t.equal(sa.remoteHost, NAT_WAN, `strongSwan's peer is the NAT's public address ${NAT_WAN}`);
  t.equal(sa.localPort, 4500, 'strongSwan floated to UDP 4500 (RFC 3947 §4)');
  t.ok(
    sa.natRemote,
    "strongSwan detected the NAT in front of twinsec (nat-remote, twinsec's NAT-D payloads)",
  );
  const child = sa.children.find((ch) => ch.state === 'INSTALLED');
  t.ok(child, 'strongSwan IPsec SA INSTALLED');
  t.equal(child?.encrAlg, 'AES_CBC', 'ESP encr AES_CBC');
  t.equal(child?.encrKeysize, 128, 'ESP keysize 128');
  t.equal(child?.integAlg, 'HMAC_SHA1_96', 'ESP integ HMAC_SHA1_96');
  t.equal(child?.dhGroup, 'MODP_1024', 'quick mode PFS with MODP_1024');
  t.equal(child?.encap, true, 'strongSwan: ESP in UDP (RFC 3948)');
  t.same(child?.localTs, [SW_LAN]);
  t.same(child?.remoteTs, [TW_LAN]);

  // twinsec's view: the NAT seen in main mode, the pair mirrored and carried in UDP.
  const nat1 = d.logEvents().find((e) => e.msg.includes('NAT-D (RFC 3947)'));
  t.match(nat1?.msg, /NAT local yes/, `twinsec detected that it is behind a NAT (${nat1?.msg})`);
  const pair = st.children.find(
    (ch) => normSpi(ch.spiIn) === child?.spiOut && normSpi(ch.spiOut) === child?.spiIn,
  );
  t.ok(pair, `twinsec's SPIs are strongSwan's, mirrored (sw in=${child?.spiIn} out=${child?.spiOut})`);
  t.equal(pair?.encapsulation, 'udp', 'twinsec: ESP in UDP');

  const ping = async (ns: string, from: string, to: string) =>
    (
      await lab.exec(ns, 'ping', ['-n', '-c', '5', '-i', '0.2', '-W', '2', '-I', from, to], {
        check: false,
        timeoutMs: 15_000,
      })
    ).code;
  // The first echo may race the last quick mode message on either side; a few tries.
  await waitFor(async () => (await ping(tw, TW_HOST, SW_HOST)) === 0, 10_000, {
    what: 'ping twinsec LAN -> strongSwan LAN',
    intervalMs: 200,
  });
  t.equal(await ping(tw, TW_HOST, SW_HOST), 0, 'ping twinsec LAN -> strongSwan LAN');
  t.equal(await ping(sw, SW_HOST, TW_HOST), 0, 'ping strongSwan LAN -> twinsec LAN');

  // Keep-alives (RFC 3948 §2.3) come from the side behind the NAT once nothing else went out for the
  // interval: no IKE traffic is due now, so one must show on the NAT's public side soon.
  let keepalive: Packet | undefined;
  await waitFor(
    async () => {
      // Stopping and restarting would lose packets: tshark reads the growing file (tcpdump -U).
      const ps = await readCapture(capWan.file);
      keepalive = ps.find((p) => p.kind === 'keepalive' && p.src === NAT_WAN && p.dst === SW_WAN);
      return keepalive !== undefined;
    },
    KEEPALIVE_WAIT_MS,
    { what: 'a NAT-T keep-alive from behind the NAT', intervalMs: 2000 },
  ).catch((e: Error) => t.fail(e.message));
  await capIn.proc.stop('SIGINT', 2000);
  await capWan.proc.stop('SIGINT', 2000);
  const inside = await readCapture(capIn.file);
  const outside = await readCapture(capWan.file);
  t.comment(
    `keep-alive seen ${keepalive ? ((keepalive.at - establishedAt) / 1000).toFixed(1) : '-'} s after established`,
  );

  // Inside the NAT: twinsec's own addresses and ports. Phase 1 floated: IKE on 4500 both ways.
  const ikeIn = inside.filter((p) => p.kind === 'ike');
  t.ok(
    ikeIn.some((p) => p.src === TW_IN && p.sport === 4500 && p.dport === 4500),
    `twinsec sent IKE from port 4500 to 4500 (${ikeIn.length} IKE datagrams inside)`,
  );
  t.ok(
    ikeIn.some((p) => p.dst === TW_IN && p.sport === 4500 && p.dport === 4500),
    'and received IKE on 4500',
  );
  const twOut = normSpi(pair?.spiOut);
  const twIn = normSpi(pair?.spiIn);
  const espIn = inside.filter((p) => p.kind === 'esp');
  t.ok(
    espIn.some((p) => p.src === TW_IN && p.sport === 4500 && p.dport === 4500 && p.spi === twOut),
    `twinsec sent ESP spi ${twOut} in UDP 4500 -> 4500`,
  );
  t.ok(
    espIn.some((p) => p.dst === TW_IN && p.dport === 4500 && p.spi === twIn),
    `twinsec received ESP spi ${twIn} in UDP to 4500`,
  );
  t.equal(inside.filter((p) => p.kind === 'raw-esp').length, 0, 'no raw ESP (IP protocol 50) inside');
  const kaIn = inside.filter((p) => p.kind === 'keepalive' && p.src === TW_IN);
  t.ok(
    kaIn.every((p) => p.sport === 4500 && p.dport === 4500 && p.udpLength === 9),
    `twinsec's keep-alives: 1 byte 0xff, 4500 -> 4500 (${kaIn.length} inside)`,
  );
  t.ok(kaIn.length >= 1, 'twinsec sent a keep-alive (seen inside)');

  // Outside: everything of twinsec's comes from the NAT's address (translated), to strongSwan's 4500.
  const fromTw = outside.filter((p) => p.src === NAT_WAN);
  t.ok(
    fromTw.length > 0 && outside.every((p) => p.src !== TW_IN && p.dst !== TW_IN),
    'only the translated address outside',
  );
  t.ok(
    fromTw.some((p) => p.kind === 'ike' && p.dport === 4500),
    'IKE to strongSwan on 4500 after the float, from the NAT',
  );
  t.ok(
    fromTw.some((p) => p.kind === 'esp' && p.dport === 4500 && p.spi === twOut),
    `ESP spi ${twOut} leaves the NAT in UDP to 4500`,
  );
  t.ok(
    outside.some((p) => p.kind === 'esp' && p.dst === NAT_WAN && p.spi === twIn),
    `ESP spi ${twIn} from strongSwan to the NAT in UDP`,
  );
  t.equal(outside.filter((p) => p.kind === 'raw-esp').length, 0, 'no raw ESP outside');
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  for (const role of ['twinsec initiates', 'charon initiates'] as Role[])
    t.test(`IKEv1 (e) NAT between the gateways, aes128-sha1-modp1024 [${role}]`, (t) => runCase(t, role));
}
