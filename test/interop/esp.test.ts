/**
 * ESP data plane interop: twinsec <-> strongSwan 5.9.8 (charon with kernel-libipsec, so ESP-in-UDP on
 * port 4500, RFC 3948), in network namespaces.
 *
 * Per suite: the tunnel comes up (twinsec initiates in some cases, charon in the others), ping crosses
 * it both ways between the LAN addresses, then one iperf3 TCP transfer; bytes moved > 0 and both
 * twinsec's `status --json` counters and strongSwan's `swanctl --list-sas` counters grew.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 *   twinsec publishes 198.19.1.0/24 via its TUN; kernel-libipsec routes 198.18.1.0/24 via ipsec0 (table 220).
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, type ChildSaInfo, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecChildStatus, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const TW_HOST = '198.18.1.1';
const SW_HOST = '198.19.1.1';
const PSK = 'esp-interop-test-psk-0123456789';
const ESTABLISH_MS = 12_000;

interface Suite {
  name: string;
  ike: string;
  esp: string;
  twinsecInitiates: boolean;
  /** swanctl's names for the negotiated ESP algorithms. */
  swEncr: string;
  swKeysize: number;
  swInteg?: string;
}

const SUITES: Suite[] = [
  {
    name: 'AES-GCM: ike aes256gcm16-prfsha256-x25519, esp aes256gcm16',
    ike: 'aes256gcm16-prfsha256-x25519',
    esp: 'aes256gcm16',
    twinsecInitiates: true,
    swEncr: 'AES_GCM_16',
    swKeysize: 256,
  },
  {
    name: 'AES-CBC/HMAC: ike aes128-sha256-modp2048, esp aes128-sha256',
    ike: 'aes128-sha256-modp2048',
    esp: 'aes128-sha256',
    twinsecInitiates: false,
    swEncr: 'AES_CBC',
    swKeysize: 128,
    swInteg: 'HMAC_SHA2_256_128',
  },
  {
    name: 'AES-CBC/HMAC: ike aes256-sha512-modp2048, esp aes256-sha512',
    ike: 'aes256-sha512-modp2048',
    esp: 'aes256-sha512',
    twinsecInitiates: true,
    swEncr: 'AES_CBC',
    swKeysize: 256,
    swInteg: 'HMAC_SHA2_512_256',
  },
];

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);

function ping(lab: Lab, ns: string, from: string, to: string, extra: string[]) {
  return lab.exec(ns, 'ping', ['-n', '-I', from, ...extra, to], { check: false, timeoutMs: 30_000 });
}

async function twChild(tw: Twinsec): Promise<TwinsecChildStatus> {
  const c = (await tw.status()).connections.t1?.children[0];
  if (!c) throw new Error('twinsec has no CHILD_SA');
  return c;
}

async function swChild(charon: Charon): Promise<ChildSaInfo> {
  const sa = await charon.established('gw');
  const c = sa?.children.find((ch) => ch.state === 'INSTALLED');
  if (!c) throw new Error('strongSwan has no INSTALLED CHILD_SA');
  return c;
}

async function runSuite(t: Test, s: Suite): Promise<void> {
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  t.teardown(() => {
    if (t.passing()) return;
    const clog = charon?.log().replace(/^.*\] <[^>]*> +(queueing|activating) .*\n/gm, '');
    if (clog !== undefined) t.comment(`--- charon log (tail) ---\n${tail(clog, 80)}`);
    if (twinsec) t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec.log(), 80)}`);
  });

  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);

  const startSwan = async () =>
    startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version: 2,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: [s.ike],
          espProposals: [s.esp],
          localTs: [SW_LAN],
          remoteTs: [TW_LAN],
          startAction: 'none',
        },
      ],
    });
  const startTw = async () =>
    startTwinsec(lab, tw, {
      log: { level: 'debug' },
      connections: {
        t1: {
          version: 2,
          local: TW_WAN,
          remote: SW_WAN,
          psk: PSK,
          ike: { proposals: [s.ike], lifetime: 3600 },
          esp: { proposals: [s.esp], lifetime: 1200 },
          localSubnets: [TW_LAN],
          remoteSubnets: [SW_LAN],
          start: s.twinsecInitiates ? 'initiate' : 'listen',
          encapsulation: 'auto',
        },
      },
      routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
    });
  if (s.twinsecInitiates) {
    charon = await startSwan();
    twinsec = await startTw();
  } else {
    twinsec = await startTw();
    charon = await startSwan();
    await charon.initiate('gw', { timeoutSec: 10 });
  }
  const c = charon;
  const d = twinsec;
  const sa = await c.waitFor(() => c.established('gw'), ESTABLISH_MS, 'strongSwan IKE_SA ESTABLISHED');
  await d.waitForState('t1', 'established', ESTABLISH_MS);
  t.equal(
    sa.initiator,
    !s.twinsecInitiates,
    `strongSwan is the ${s.twinsecInitiates ? 'responder' : 'initiator'}`,
  );
  const sc = await swChild(c);
  t.equal(sc.encap, true, 'strongSwan CHILD_SA is UDP-encapsulated');
  t.equal(sc.encrAlg, s.swEncr, `ESP encr-alg ${s.swEncr}`);
  t.equal(sc.encrKeysize, s.swKeysize, `ESP encr-keysize ${s.swKeysize}`);
  t.equal(sc.integAlg, s.swInteg, `ESP integ-alg ${s.swInteg ?? '(AEAD)'}`);
  const tc0 = await twChild(d);
  t.equal(tc0.encapsulation, 'udp', 'twinsec CHILD_SA is UDP-encapsulated');
  t.equal(tc0.spiIn, sc.spiOut, "twinsec spiIn = strongSwan's spi-out");
  t.equal(tc0.spiOut, sc.spiIn, "twinsec spiOut = strongSwan's spi-in");

  // First echo may race route installation on either side.
  await waitFor(
    async () => (await ping(lab, tw, TW_HOST, SW_HOST, ['-c', '1', '-W', '1'])).code === 0,
    8000,
    {
      what: `first ping ${TW_HOST} -> ${SW_HOST}`,
      intervalMs: 100,
    },
  ).catch(() => {});

  const sw0 = await swChild(c);
  const tw0 = await twChild(d);
  const p1 = await ping(lab, tw, TW_HOST, SW_HOST, ['-c', '5', '-i', '0.2', '-W', '2']);
  t.equal(
    received(p1.stdout),
    5,
    `twinsec LAN -> strongSwan LAN: 5/5 (${p1.stdout.trim().split('\n').pop()})`,
  );
  const p2 = await ping(lab, sw, SW_HOST, TW_HOST, ['-c', '5', '-i', '0.2', '-W', '2']);
  t.equal(
    received(p2.stdout),
    5,
    `strongSwan LAN -> twinsec LAN: 5/5 (${p2.stdout.trim().split('\n').pop()})`,
  );
  if (received(p1.stdout) + received(p2.stdout) < 10) {
    const r1 = await lab.exec(tw, 'ip', ['route', 'show', 'table', 'all'], { check: false });
    const r2 = await lab.exec(sw, 'ip', ['route', 'show', 'table', 'all'], { check: false });
    t.comment(`routes tw:\n${r1.stdout}\nroutes sw:\n${r2.stdout}`);
  }
  const tw1 = await twChild(d);
  const sw1 = await swChild(c);
  t.ok(
    tw1.packetsOut! - tw0.packetsOut! >= 10,
    `twinsec packetsOut +10 (${tw0.packetsOut} -> ${tw1.packetsOut})`,
  );
  t.ok(tw1.packetsIn! - tw0.packetsIn! >= 10, `twinsec packetsIn +10 (${tw0.packetsIn} -> ${tw1.packetsIn})`);
  t.ok(
    sw1.packetsIn - sw0.packetsIn >= 10,
    `strongSwan packets-in +10 (${sw0.packetsIn} -> ${sw1.packetsIn})`,
  );
  t.ok(
    sw1.packetsOut - sw0.packetsOut >= 10,
    `strongSwan packets-out +10 (${sw0.packetsOut} -> ${sw1.packetsOut})`,
  );

  // iperf3: server on strongSwan's LAN address, client from twinsec's LAN address.
  const server = lab.spawn(sw, 'iperf3', ['-s', '-1', '-B', SW_HOST, '-p', '5201']);
  await waitFor(
    async () => {
      const r = await lab.exec(sw, 'ss', ['-Hltn', 'sport', '= :5201'], { check: false });
      return r.stdout.includes('5201');
    },
    5000,
    { what: 'iperf3 server listening', intervalMs: 100 },
  );
  const ip = await lab.exec(tw, 'iperf3', ['-c', SW_HOST, '-B', TW_HOST, '-p', '5201', '-t', '3', '-J'], {
    check: false,
    timeoutMs: 30_000,
  });
  await server.stop('SIGTERM', 2000);
  let bytes = 0;
  let mbps = 0;
  try {
    const j = JSON.parse(ip.stdout) as {
      end?: { sum_received?: { bytes: number; bits_per_second: number } };
      error?: string;
    };
    if (j.error) t.comment(`iperf3 error: ${j.error}`);
    bytes = j.end?.sum_received?.bytes ?? 0;
    mbps = (j.end?.sum_received?.bits_per_second ?? 0) / 1e6;
  } catch {
    t.comment(`iperf3 output:\n${ip.stdout}${ip.stderr}`);
  }
  t.ok(bytes > 0, `iperf3 TCP moved ${bytes} bytes (${mbps.toFixed(1)} Mbit/s)`);
  const tw2 = await twChild(d);
  const sw2 = await swChild(c);
  t.ok(
    tw2.bytesOut - tw1.bytesOut >= bytes,
    `twinsec bytesOut grew by >= ${bytes} (${tw1.bytesOut} -> ${tw2.bytesOut})`,
  );
  t.ok(tw2.bytesIn > tw1.bytesIn, `twinsec bytesIn grew (ACKs) (${tw1.bytesIn} -> ${tw2.bytesIn})`);
  t.ok(
    sw2.bytesIn - sw1.bytesIn >= bytes,
    `strongSwan bytes-in grew by >= ${bytes} (${sw1.bytesIn} -> ${sw2.bytesIn})`,
  );
  t.ok(sw2.bytesOut > sw1.bytesOut, `strongSwan bytes-out grew (${sw1.bytesOut} -> ${sw2.bytesOut})`);
}

const skip = labUnavailable() ?? charonUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) {
    t.fail(`${missing}: build the daemon first (npx tsc -p .)`);
  } else {
    for (const s of SUITES) {
      t.test(`${s.name} [${s.twinsecInitiates ? 'twinsec' : 'charon'} initiates]`, (t) => runSuite(t, s));
    }
  }
}
