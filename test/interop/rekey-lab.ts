/**
 * The shared set-up of the rekey interop tests: twinsec (initiator) and strongSwan in two namespaces,
 * one PFS tunnel between LANs on loopback, then 1500 pings at 50/s across it while SAs are rekeyed.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 */
import type { Test } from 'tap';
import { Lab, waitFor } from '../lab/netns.js';
import { type Charon, type CharonConn, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec } from '../lab/twinsec.js';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const TW_HOST = '198.18.1.1';
const SW_HOST = '198.19.1.1';
export const PINGS = 1500;

export interface RekeyRun {
  charon: Charon;
  twinsec: Twinsec;
  sent: number;
  got: number;
  /** ping's closing rtt line. */
  summary: string;
}

export async function pingThroughRekeys(
  t: Test,
  opts: {
    psk: string;
    /** strongSwan's lifetimes (rekey_time, life_time, rand_time ...). */
    charon: Partial<CharonConn>;
    /** twinsec's lifetimes in seconds. */
    ikeLifetime: number;
    espLifetime: number;
    timeoutMs: number;
    /** IKE version and proposals of both sides (default IKEv2 with AES-GCM and X25519). */
    version?: 1 | 2;
    ike?: string;
    esp?: string;
  },
): Promise<RekeyRun> {
  const lab = new Lab(t);
  const version = opts.version ?? 2;
  const ike = opts.ike ?? 'aes256gcm16-prfsha256-x25519';
  const esp = opts.esp ?? 'aes256gcm16-x25519';
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);
  const charon = await startCharon(lab, sw, {
    dir: lab.tempDir('charon'),
    conns: [
      {
        name: 'gw',
        version,
        local: SW_WAN,
        remote: TW_WAN,
        psk: opts.psk,
        ikeProposals: [ike],
        espProposals: [esp],
        localTs: [SW_LAN],
        remoteTs: [TW_LAN],
        startAction: 'none',
        ...opts.charon,
      },
    ],
  });
  const twinsec = await startTwinsec(lab, tw, {
    log: { level: 'debug' },
    connections: {
      t1: {
        version,
        local: TW_WAN,
        remote: SW_WAN,
        psk: opts.psk,
        ike: { proposals: [ike], lifetime: opts.ikeLifetime },
        esp: { proposals: [esp], lifetime: opts.espLifetime },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: 'initiate',
        encapsulation: 'auto',
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- charon log (tail) ---\n${charon.log().split('\n').slice(-80).join('\n')}`);
    t.comment(`--- twinsecd log (tail) ---\n${twinsec.log().split('\n').slice(-80).join('\n')}`);
  });
  await charon.waitFor(() => charon.established('gw'), 12_000, 'strongSwan IKE SA ESTABLISHED');
  await twinsec.waitForState('t1', 'established', 12_000);
  await waitFor(
    async () =>
      (await lab.exec(tw, 'ping', ['-n', '-I', TW_HOST, '-c', '1', '-W', '1', SW_HOST], { check: false }))
        .code === 0,
    8000,
    { what: 'first ping', intervalMs: 100 },
  );
  const r = await lab.exec(
    tw,
    'ping',
    ['-n', '-I', TW_HOST, '-c', String(PINGS), '-i', '0.02', '-W', '2', SW_HOST],
    { check: false, timeoutMs: opts.timeoutMs },
  );
  return {
    charon,
    twinsec,
    sent: Number(/(\d+) packets transmitted/.exec(r.stdout)?.[1] ?? 0),
    got: Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0),
    summary: r.stdout.trim().split('\n').pop() ?? '',
  };
}
