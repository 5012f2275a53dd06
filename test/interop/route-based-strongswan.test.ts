/**
 * Route-based twinsec against strongSwan 5.9.8 (kernel-libipsec) with 0.0.0.0/0 selectors (issue #12),
 * IKEv2 and IKEv1:
 * twinsec's connection owns the device tw-sw (169.254.30.2/30) and routes strongSwan's "LAN" into it;
 * strongSwan negotiates 0.0.0.0/0 <-> 0.0.0.0/0 and routes everything but its peer through its own
 * TUN (kernel-libipsec installs the 0/0 route in table 220 and keeps the peer's address out of it).
 * Both roles: twinsec initiates, and charon initiates to a listening twinsec.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1, tw-sw 169.254.30.2/30        sw lo 198.19.1.1
 *
 * What must hold: strongSwan reports the CHILD_SA INSTALLED with 0.0.0.0/0 on both sides and SPIs
 * mirrored by twinsec; pings cross both ways (twinsec's inside address and its LAN address from
 * strongSwan, strongSwan's LAN address from twinsec's LAN address routed into tw-sw), and the
 * replies twinsec's kernel receives come out of tw-sw (an iptables counting rule on it).
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Role = 'twinsec initiates' | 'charon initiates';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const PSK = 'route-based-interop-psk-0123456789';
const ALL = '0.0.0.0/0';

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');
const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);

async function runCase(t: Test, role: Role, version: 1 | 2): Promise<void> {
  // IKEv1 (the seed's cloud default): main mode and quick mode with 0.0.0.0/0 IDs.
  const ike = version === 1 ? 'aes128-sha256-modp2048' : 'aes256gcm16-prfsha256-x25519';
  const lab = new Lab(t);
  const twInit = role === 'twinsec initiates';
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  t.teardown(() => {
    if (t.passing()) return;
    if (charon) t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 80)}`);
    if (twinsec) t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec.log(), 60)}`);
  });
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, '198.18.1.1/32');
  await lab.loopbackAddresses(sw, '198.19.1.1/32');

  const startSwan = async () => {
    charon = await startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: [ike],
          espProposals: ['aes256gcm16'],
          localTs: [ALL],
          remoteTs: [ALL],
          startAction: 'none',
        },
      ],
    });
    return charon;
  };
  const startTw = async () => {
    twinsec = await startTwinsec(lab, tw, {
      log: { level: 'debug' },
      connections: {
        sw: {
          version,
          local: TW_WAN,
          remote: SW_WAN,
          psk: PSK,
          ike: { proposals: [ike] },
          esp: { proposals: ['aes256gcm16'] },
          localSubnets: [ALL],
          remoteSubnets: [ALL],
          start: twInit ? 'initiate' : 'listen',
          interface: { name: 'tw-sw', address: '169.254.30.2/30' },
        },
      },
    });
    return twinsec;
  };
  if (twInit) {
    await startSwan();
    await startTw();
  } else {
    await startTw();
    await startSwan();
    await charon!.initiate('gw', { check: false, timeoutSec: 10 });
  }
  const sa = await charon!.waitFor(() => charon!.established('gw'), 15_000, 'strongSwan IKE_SA ESTABLISHED');
  const child = sa.children.find((c) => c.state === 'INSTALLED');
  t.ok(child, 'strongSwan: CHILD_SA INSTALLED');
  t.same([child?.localTs, child?.remoteTs], [[ALL], [ALL]], 'strongSwan: 0.0.0.0/0 <-> 0.0.0.0/0');
  const conn = await twinsec!.waitForState('sw', 'established', 10_000);
  const mirrored = conn.children.find(
    (c) => normSpi(c.spiIn) === child?.spiOut && normSpi(c.spiOut) === child?.spiIn,
  );
  t.ok(mirrored, "twinsec's CHILD_SA mirrors strongSwan's SPIs");
  // Without a health check the device has carrier as soon as the CHILD_SA is installed.
  await waitFor(
    async () => {
      const out = (await lab.exec(tw, 'ip', ['-j', 'link', 'show', 'dev', 'tw-sw'])).stdout;
      return !(JSON.parse(out) as { flags: string[] }[])[0]?.flags.includes('NO-CARRIER');
    },
    5000,
    { what: 'tw-sw with carrier', intervalMs: 100 },
  );

  await lab.exec(tw, 'ip', ['route', 'add', '198.19.1.0/24', 'dev', 'tw-sw', 'src', '198.18.1.1']);
  await lab.exec(tw, 'iptables', ['-I', 'INPUT', '-i', 'tw-sw', '-p', 'icmp']);
  const ping = (ns: string, dst: string, src?: string) =>
    lab.exec(ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', ...(src ? ['-I', src] : []), dst], {
      check: false,
    });
  // The first packet may race charon's route installation: one echo must come back first.
  await waitFor(async () => received((await ping(tw, '198.19.1.1', '198.18.1.1')).stdout) > 0, 8000, {
    what: 'first ping twinsec -> strongSwan',
  });
  t.equal(received((await ping(tw, '198.19.1.1', '198.18.1.1')).stdout), 3, 'twinsec LAN -> strongSwan LAN');
  t.equal(received((await ping(sw, '198.18.1.1', '198.19.1.1')).stdout), 3, 'strongSwan LAN -> twinsec LAN');
  t.equal(
    received((await ping(sw, '169.254.30.2', '198.19.1.1')).stdout),
    3,
    "strongSwan -> twinsec's inside address",
  );
  const rules = (await lab.exec(tw, 'iptables', ['-L', 'INPUT', '-v', '-x', '-n'])).stdout;
  const counted = Number(/^\s*(\d+)\s.*\stw-sw\s/m.exec(rules)?.[1] ?? 0);
  // The replies to twinsec's own pings (the first ping's and the three above) reach the kernel
  // through tw-sw; strongSwan's echo requests to twinsec's addresses do not: the engine answers
  // those itself (qos.answerEcho).
  t.ok(counted >= 6, `ICMP from strongSwan came out of tw-sw (${counted} packets)`, { rules });
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
for (const version of [2, 1] as const) {
  for (const role of ['twinsec initiates', 'charon initiates'] as Role[]) {
    t.test(
      `route-based twinsec <-> strongSwan 0.0.0.0/0, IKEv${version} [${role}]`,
      { skip, timeout: 60_000 },
      (t) => runCase(t, role, version),
    );
  }
}
