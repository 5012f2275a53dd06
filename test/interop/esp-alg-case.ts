/**
 * One ESP algorithm interop case against strongSwan 5.9.8 (charon, kernel-libipsec: userspace ESP,
 * always UDP-encapsulated) in two network namespaces, in either role, shared by the legacy
 * algorithm tests (`ikev1-3des.test.ts`, `ikev1-legacy.test.ts`).
 *
 * A case passes when strongSwan lists the IKE SA ESTABLISHED and the CHILD/IPsec SA INSTALLED with
 * the expected algorithms (IKE and ESP, the quick-mode/CHILD_SA PFS group when one is expected)
 * and twinsec's SPIs mirrored, twinsec's status names the same ESP algorithms, and pings (small, and
 * large enough to span many cipher blocks with padding, RFC 4303 §2.4) cross the tunnel both ways,
 * counted as decrypted by strongSwan in both directions.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 */
import t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecChildStatus, twinsecUnavailable } from '../lab/twinsec.js';

export type Test = Parameters<Parameters<typeof t.test>[0]>[0];
export type Role = 'twinsec initiates' | 'charon initiates';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const ESTABLISH_MS = 15_000;

/** strongSwan's vici names for a negotiated suite; keysize undefined for fixed-key ciphers (3DES). */
export interface SwanAlgs {
  encr: string;
  keysize?: number;
  integ: string;
  dh?: string;
}

export interface EspAlgCase {
  name: string;
  version: 1 | 2;
  ike: string[];
  esp: string[];
  psk: string;
  expectIke: SwanAlgs & { dh: string };
  /** ESP as strongSwan lists it (`dh`: the PFS group it lists for the SA, if checked). */
  expectEsp: SwanAlgs;
  /** ESP as twinsec's status names it. */
  expectTw: { encr: string; integ: string };
}

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

export async function runEspAlgCase(t: Test, c: EspAlgCase, role: Role): Promise<void> {
  const lab = new Lab(t);
  const twInit = role === 'twinsec initiates';
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
            psk: c.psk,
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
            psk: c.psk,
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
    const ike = c.expectIke;
    t.equal(sa.version, c.version, `strongSwan: IKEv${c.version}`);
    t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
    t.equal(sa.encrAlg, ike.encr, `IKE encr ${ike.encr}`);
    // A fixed-length cipher has no key size in vici's list-sas (3DES: no Key Length attribute).
    t.equal(sa.encrKeysize, ike.keysize, `IKE keysize ${ike.keysize ?? '(fixed)'}`);
    t.equal(sa.integAlg, ike.integ, `IKE integ ${ike.integ}`);
    t.equal(sa.dhGroup, ike.dh, `IKE dh ${ike.dh}`);
    const child = await sw0.waitFor(
      async () => (await sw0.established('gw'))?.children.find((ch) => ch.state === 'INSTALLED'),
      ESTABLISH_MS,
      'strongSwan IPsec SA INSTALLED',
    );
    const esp = c.expectEsp;
    t.equal(child.encrAlg, esp.encr, `ESP encr ${esp.encr}`);
    t.equal(child.encrKeysize, esp.keysize, `ESP keysize ${esp.keysize ?? '(fixed)'}`);
    t.equal(child.integAlg, esp.integ, `ESP integ ${esp.integ}`);
    if (esp.dh) t.equal(child.dhGroup, esp.dh, `PFS group ${esp.dh}`);
    t.equal(child.encap, true, 'ESP in UDP');
    t.same(child.localTs, [SW_LAN]);
    t.same(child.remoteTs, [TW_LAN]);
    const st = await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
    const match = (st.children ?? []).find(
      (ch: TwinsecChildStatus) => normSpi(ch.spiIn) === child.spiOut && normSpi(ch.spiOut) === child.spiIn,
    );
    t.ok(match, `twinsec SPIs mirror strongSwan's (sw in=${child.spiIn} out=${child.spiOut})`);
    t.equal(match?.encr, c.expectTw.encr, `twinsec status: encr ${c.expectTw.encr}`);
    t.equal(match?.integ, c.expectTw.integ, `twinsec status: integ ${c.expectTw.integ}`);
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
    t.ok((ch?.packetsIn ?? 0) >= 12, `strongSwan decrypted twinsec's packets (${ch?.packetsIn ?? 0} in)`);
    t.ok((ch?.packetsOut ?? 0) >= 12, `twinsec decrypted strongSwan's packets (${ch?.packetsOut ?? 0} out)`);
  } catch (e) {
    dumpLogs();
    throw e;
  }
  if (!t.passing()) dumpLogs();
}

/** Each case in both roles, or the file skipped (no root/namespaces, no charon) with the reason. */
export function espAlgTests(cases: EspAlgCase[]): void {
  const skip = labUnavailable() ?? charonUnavailable();
  if (skip) {
    t.plan(0, skip);
    return;
  }
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) {
    t.fail(`${missing}: build the daemon first (npx tsc -p .)`);
    return;
  }
  for (const c of cases)
    for (const role of ['twinsec initiates', 'charon initiates'] as Role[])
      t.test(`${c.name}, ${role}`, async (t) => runEspAlgCase(t, c, role));
}
