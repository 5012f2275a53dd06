/**
 * IKEv1 interop: twinsec <-> strongSwan 5.9.8 (charon, kernel-libipsec), main mode with PSK and
 * quick mode, in network namespaces, each case with twinsec as initiator and as responder. A case
 * passes when strongSwan lists the ISAKMP SA ESTABLISHED (IKEv1) and the IPsec SA INSTALLED with
 * the expected algorithms and twinsec's SPIs mirrored, and pings cross the tunnel both ways.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 */
import t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecChildStatus, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Role = 'twinsec initiates' | 'charon initiates';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const ESTABLISH_MS = 15_000;

interface Case {
  name: string;
  /** The strongSwan side's PSK when it differs (a case that must fail on both sides). */
  swPsk?: string;
  ike: string[];
  esp: string[];
  expect: {
    ike: { encr: string; keysize: number; integ: string; dh: string };
    child: { encr: string; keysize: number; integ?: string };
  };
}

const CASES: Case[] = [
  {
    name: '(a) the Alibaba default: aes128-sha1-modp1024 / esp aes128-sha1-modp1024 (PFS)',
    ike: ['aes128-sha1-modp1024'],
    esp: ['aes128-sha1-modp1024'],
    expect: {
      ike: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96', dh: 'MODP_1024' },
      child: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96' },
    },
  },
  {
    name: '(b) aes256-sha256-modp2048 / esp aes256gcm16',
    ike: ['aes256-sha256-modp2048'],
    esp: ['aes256gcm16'],
    expect: {
      ike: { encr: 'AES_CBC', keysize: 256, integ: 'HMAC_SHA2_256_128', dh: 'MODP_2048' },
      child: { encr: 'AES_GCM_16', keysize: 256 },
    },
  },
  {
    name: '(d) wrong PSK: no SA on either side, twinsecd keeps running',
    ike: ['aes128-sha1-modp1024'],
    esp: ['aes128-sha1-modp1024'],
    swPsk: 'charon-side-secret-B',
    expect: {
      ike: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96', dh: 'MODP_1024' },
      child: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96' },
    },
  },
];

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

async function runCase(t: Test, c: Case, role: Role): Promise<void> {
  const lab = new Lab(t);
  const twInit = role === 'twinsec initiates';
  const psk = 'interop-test-psk-0123456789';
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  try {
    const tw = await lab.addNamespace('tw');
    const sw = await lab.addNamespace('sw');
    await lab.link(
      { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
      { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
    );
    await lab.loopbackAddresses(tw, '198.18.1.1/32');
    await lab.loopbackAddresses(sw, '198.19.1.1/32');
    const startSwan = async () =>
      startCharon(lab, sw, {
        dir: lab.tempDir('charon'),
        conns: [
          {
            name: 'gw',
            version: 1,
            local: SW_WAN,
            remote: TW_WAN,
            psk: c.swPsk ?? psk,
            ikeProposals: c.ike,
            espProposals: c.esp,
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
            version: 1,
            local: TW_WAN,
            remote: SW_WAN,
            psk,
            ike: { proposals: c.ike, lifetime: 3600 },
            esp: { proposals: c.esp, lifetime: 1200 },
            localSubnets: [TW_LAN],
            remoteSubnets: [SW_LAN],
            start: twInit ? 'initiate' : 'listen',
          },
        },
        routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
      });
    if (twInit) {
      charon = await startSwan();
      twinsec = await startTw();
    } else {
      twinsec = await startTw();
      charon = await startSwan();
      await charon.initiate('gw', { check: false, timeoutSec: Math.ceil(ESTABLISH_MS / 1000) - 2 });
    }
    const sw0 = charon;
    if (c.swPsk) {
      // The first encrypted main mode message cannot be read by whoever receives it.
      await new Promise((r) => setTimeout(r, 6000));
      t.same(
        (await sw0.listSas()).filter((s) => s.state === 'ESTABLISHED'),
        [],
        'no ESTABLISHED SA on strongSwan',
      );
      t.ok(twinsec.proc.running, 'twinsecd is still running');
      t.not((await twinsec.status()).connections.t1?.state, 'established', 'twinsec t1 not established');
      if (!twInit) t.match(twinsec.log(), /auth_failed/, 'twinsec reports auth_failed (PSK mismatch)');
      return;
    }
    const sa = await sw0.waitFor(
      () => sw0.established('gw'),
      ESTABLISH_MS,
      'strongSwan ISAKMP SA ESTABLISHED',
    );
    const conn = await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
    t.equal(sa.version, 1, 'strongSwan: IKEv1');
    t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
    t.equal(sa.encrAlg, c.expect.ike.encr, `IKE encr ${c.expect.ike.encr}`);
    t.equal(sa.encrKeysize, c.expect.ike.keysize, `IKE keysize ${c.expect.ike.keysize}`);
    t.equal(sa.integAlg, c.expect.ike.integ, `IKE integ ${c.expect.ike.integ}`);
    t.equal(sa.dhGroup, c.expect.ike.dh, `IKE dh ${c.expect.ike.dh}`);
    t.equal(sa.remotePort, 4500, 'floated to UDP 4500 (kernel-libipsec fakes NAT, RFC 3947)');
    const child = await sw0.waitFor(
      async () => (await sw0.established('gw'))?.children.find((ch) => ch.state === 'INSTALLED'),
      ESTABLISH_MS,
      'strongSwan IPsec SA INSTALLED',
    );
    t.equal(child.encrAlg, c.expect.child.encr, `ESP encr ${c.expect.child.encr}`);
    t.equal(child.encrKeysize, c.expect.child.keysize, `ESP keysize ${c.expect.child.keysize}`);
    t.equal(child.integAlg, c.expect.child.integ, `ESP integ ${c.expect.child.integ ?? '(AEAD)'}`);
    t.equal(child.encap, true, 'ESP in UDP');
    t.same(child.localTs, [SW_LAN]);
    t.same(child.remoteTs, [TW_LAN]);
    const st = await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
    const match = (st.children ?? conn.children ?? []).find(
      (ch: TwinsecChildStatus) => normSpi(ch.spiIn) === child.spiOut && normSpi(ch.spiOut) === child.spiIn,
    );
    t.ok(match, `twinsec SPIs mirror strongSwan's (sw in=${child.spiIn} out=${child.spiOut})`);
    const ping = async (ns: string, from: string, to: string) =>
      (
        await lab.exec(ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '1', '-I', from, to], {
          check: false,
          timeoutMs: 10_000,
        })
      ).code;
    t.equal(await ping(tw, '198.18.1.1', '198.19.1.1'), 0, 'ping twinsec LAN -> strongSwan LAN');
    t.equal(await ping(sw, '198.19.1.1', '198.18.1.1'), 0, 'ping strongSwan LAN -> twinsec LAN');
  } catch (e) {
    t.comment(`--- charon log ---\n${charon?.log().split('\n').slice(-80).join('\n')}`);
    t.comment(`--- twinsecd log ---\n${twinsec?.log().split('\n').slice(-60).join('\n')}`);
    throw e;
  }
  if (!t.passing()) {
    t.comment(`--- charon log ---\n${charon?.log().split('\n').slice(-80).join('\n')}`);
    t.comment(`--- twinsecd log ---\n${twinsec?.log().split('\n').slice(-60).join('\n')}`);
  }
}

const skip = labUnavailable() ?? charonUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) t.fail(`${missing}: build the daemon first (npx tsc -p .)`);
  else
    for (const c of CASES)
      for (const role of ['twinsec initiates', 'charon initiates'] as Role[])
        t.test(`${c.name} [${role}]`, (t) => runCase(t, c, role));
}
