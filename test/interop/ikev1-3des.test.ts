/**
 * 3DES-CBC ESP (RFC 2451) interop for legacy peers: twinsec <-> strongSwan 5.9.8 (charon,
 * kernel-libipsec, whose userspace ESP takes 3DES from the openssl plugin), in network namespaces,
 * each case with twinsec as initiator and as responder:
 *   - IKEv1 main mode with IKE 3des-sha1-modp1024 and ESP 3des-sha1-modp1024 (PFS);
 *   - IKEv2 with an AES IKE SA and ESP 3des-sha1 (ENCR_3DES, RFC 7296 §3.3.2).
 * A case passes when strongSwan lists the IKE SA ESTABLISHED and the CHILD/IPsec SA INSTALLED with
 * 3DES_CBC / HMAC_SHA1_96 and twinsec's SPIs mirrored, twinsec reports 3des, and pings (small, and
 * large enough to span many 8-byte blocks with padding, RFC 4303 §2.4) cross the tunnel both ways.
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
  version: 1 | 2;
  ike: string[];
  esp: string[];
  expectIke: { encr: string; keysize?: number; integ: string; dh: string };
}

const CASES: Case[] = [
  {
    name: 'IKEv1 main mode: 3des-sha1-modp1024 / esp 3des-sha1-modp1024 (PFS)',
    version: 1,
    ike: ['3des-sha1-modp1024'],
    esp: ['3des-sha1-modp1024'],
    expectIke: { encr: '3DES_CBC', integ: 'HMAC_SHA1_96', dh: 'MODP_1024' },
  },
  {
    name: 'IKEv2: aes128-sha1-modp2048 / esp 3des-sha1',
    version: 2,
    ike: ['aes128-sha1-modp2048'],
    esp: ['3des-sha1'],
    expectIke: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96', dh: 'MODP_2048' },
  },
];

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

async function runCase(t: Test, c: Case, role: Role): Promise<void> {
  const lab = new Lab(t);
  const twInit = role === 'twinsec initiates';
  const psk = 'interop-3des-psk-0123456789';
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  const dumpLogs = () => {
    t.comment(`--- charon log ---\n${charon?.log().split('\n').slice(-80).join('\n')}`);
    t.comment(`--- twinsecd log ---\n${twinsec?.log().split('\n').slice(-60).join('\n')}`);
  };
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
            version: c.version,
            local: SW_WAN,
            remote: TW_WAN,
            psk,
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
            version: c.version,
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
    const sa = await sw0.waitFor(() => sw0.established('gw'), ESTABLISH_MS, 'strongSwan IKE SA ESTABLISHED');
    await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
    t.equal(sa.version, c.version, `strongSwan: IKEv${c.version}`);
    t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
    t.equal(sa.encrAlg, c.expectIke.encr, `IKE encr ${c.expectIke.encr}`);
    // A fixed-length cipher has no key size in vici's list-sas (3DES: no Key Length attribute).
    t.equal(sa.encrKeysize, c.expectIke.keysize, `IKE keysize ${c.expectIke.keysize ?? '(fixed)'}`);
    t.equal(sa.integAlg, c.expectIke.integ, `IKE integ ${c.expectIke.integ}`);
    t.equal(sa.dhGroup, c.expectIke.dh, `IKE dh ${c.expectIke.dh}`);
    const child = await sw0.waitFor(
      async () => (await sw0.established('gw'))?.children.find((ch) => ch.state === 'INSTALLED'),
      ESTABLISH_MS,
      'strongSwan IPsec SA INSTALLED',
    );
    t.equal(child.encrAlg, '3DES_CBC', 'ESP encr 3DES_CBC');
    t.equal(child.encrKeysize, undefined, 'ESP 3DES: no key size (fixed 192-bit key)');
    t.equal(child.integAlg, 'HMAC_SHA1_96', 'ESP integ HMAC_SHA1_96');
    if (c.version === 1) t.equal(child.dhGroup, 'MODP_1024', 'quick mode PFS MODP_1024');
    t.equal(child.encap, true, 'ESP in UDP');
    t.same(child.localTs, [SW_LAN]);
    t.same(child.remoteTs, [TW_LAN]);
    const st = await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
    const match = (st.children ?? []).find(
      (ch: TwinsecChildStatus) => normSpi(ch.spiIn) === child.spiOut && normSpi(ch.spiOut) === child.spiIn,
    );
    t.ok(match, `twinsec SPIs mirror strongSwan's (sw in=${child.spiIn} out=${child.spiOut})`);
    t.equal(match?.encr, '3des', 'twinsec status: encr 3des');
    t.equal(match?.integ, 'sha1', 'twinsec status: integ sha1');
    const ping = async (ns: string, from: string, to: string, size: number) =>
      (
        await lab.exec(
          ns,
          'ping',
          ['-n', '-c', '3', '-i', '0.2', '-W', '1', '-s', String(size), '-I', from, to],
          { check: false, timeoutMs: 10_000 },
        )
      ).code;
    for (const size of [56, 1001]) {
      t.equal(
        await ping(tw, '198.18.1.1', '198.19.1.1', size),
        0,
        `ping -s ${size} twinsec LAN -> strongSwan LAN`,
      );
      t.equal(
        await ping(sw, '198.19.1.1', '198.18.1.1', size),
        0,
        `ping -s ${size} strongSwan LAN -> twinsec LAN`,
      );
    }
    const after = await sw0.established('gw');
    const ch = after?.children.find((x) => x.spiIn === child.spiIn);
    t.ok(
      (ch?.packetsIn ?? 0) >= 12,
      `strongSwan decrypted twinsec's 3DES packets (${ch?.packetsIn ?? 0} in)`,
    );
    t.ok(
      (ch?.packetsOut ?? 0) >= 12,
      `twinsec decrypted strongSwan's 3DES packets (${ch?.packetsOut ?? 0} out)`,
    );
  } catch (e) {
    dumpLogs();
    throw e;
  }
  if (!t.passing()) dumpLogs();
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
        t.test(`${c.name}, ${role}`, async (t) => runCase(t, c, role));
}
