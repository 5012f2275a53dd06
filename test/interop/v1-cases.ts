/**
 * The IKEv1 interop harness shared by ikev1.test.ts (main mode) and ikev1-aggressive.test.ts: one
 * case is twinsec <-> strongSwan 5.9.8 (charon, kernel-libipsec) in two network namespaces, with
 * twinsec as initiator or responder. It passes when strongSwan lists the ISAKMP SA ESTABLISHED
 * (IKEv1) with the expected algorithms and twinsec's cookies, the IPsec SA INSTALLED with twinsec's
 * SPIs mirrored, and pings cross the tunnel both ways. A wrong-PSK case passes when neither side
 * has an SA, twinsecd still runs and the side that can tell reports auth_failed.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 */
import type t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecChildStatus, twinsecUnavailable } from '../lab/twinsec.js';

export type Test = Parameters<Parameters<typeof t.test>[0]>[0];
export type Role = 'twinsec initiates' | 'charon initiates';
export const ROLES: Role[] = ['twinsec initiates', 'charon initiates'];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const ESTABLISH_MS = 15_000;

export interface Case {
  name: string;
  /** Phase 1 exchange (default main). */
  mode?: 'main' | 'aggressive';
  /** Identities (default: the addresses), as twinsec writes them; strongSwan gets the same. */
  ids?: { twinsec: string; strongswan: string };
  /** The strongSwan side's PSK when it differs (a case that must fail on both sides). */
  swPsk?: string;
  ike: string[];
  esp: string[];
  expect: {
    ike: { encr: string; keysize: number; integ: string; dh: string };
    child: { encr: string; keysize: number; integ?: string };
  };
}

/** The Alibaba default suite, as strongSwan lists it. */
export const ALIBABA_DEFAULT: Pick<Case, 'ike' | 'esp' | 'expect'> = {
  ike: ['aes128-sha1-modp1024'],
  esp: ['aes128-sha1-modp1024'],
  expect: {
    ike: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96', dh: 'MODP_1024' },
    child: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96' },
  },
};

export const normSpi = (s: string | undefined, digits = 8): string =>
  (s ?? '').toLowerCase().replace(/^0x/, '').padStart(digits, '0');

/** Why the cases cannot run here (no root/netns, no charon), or undefined. */
export const interopSkip = (): string | undefined => labUnavailable() ?? charonUnavailable();

/** Registers every case in both roles on `tap`. */
export function registerCases(tap: typeof t, cases: Case[]): void {
  const skip = interopSkip();
  if (skip) {
    tap.plan(0, skip);
    return;
  }
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) {
    tap.fail(`${missing}: build the daemon first (npx tsc -p .)`);
    return;
  }
  for (const c of cases)
    for (const role of ROLES) tap.test(`${c.name} [${role}]`, (t) => runCase(t, c, role));
}

export async function runCase(t: Test, c: Case, role: Role): Promise<void> {
  const lab = new Lab(t);
  const twInit = role === 'twinsec initiates';
  const aggressive = c.mode === 'aggressive';
  const psk = 'interop-test-psk-0123456789';
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
            version: 1,
            local: SW_WAN,
            remote: TW_WAN,
            ...(c.ids ? { localId: c.ids.strongswan, remoteId: c.ids.twinsec } : {}),
            psk: c.swPsk ?? psk,
            ikeProposals: c.ike,
            espProposals: c.esp,
            localTs: [SW_LAN],
            remoteTs: [TW_LAN],
            startAction: 'none',
            aggressive,
          },
        ],
      });
    const startTw = async () =>
      startTwinsec(lab, tw, {
        log: { level: 'debug' },
        connections: {
          t1: {
            version: 1,
            ...(c.mode ? { mode: c.mode } : {}),
            local: TW_WAN,
            remote: SW_WAN,
            ...(c.ids ? { localId: c.ids.twinsec, remoteId: c.ids.strongswan } : {}),
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
    if (c.swPsk) await wrongPsk(t, charon, twinsec, aggressive ? twInit : !twInit);
    else await established(t, lab, c, charon, twinsec, twInit, { tw, sw });
  } catch (e) {
    dumpLogs();
    throw e;
  }
  if (!t.passing()) dumpLogs();
}

/**
 * Who can tell a wrong PSK: in main mode the responder (the initiator's encrypted fifth message
 * does not decrypt); in aggressive mode the initiator (HASH_R, the third message is never sent).
 */
async function wrongPsk(t: Test, charon: Charon, twinsec: Twinsec, twinsecTells: boolean): Promise<void> {
  await new Promise((r) => setTimeout(r, 6000));
  t.same(
    (await charon.listSas()).filter((s) => s.state === 'ESTABLISHED'),
    [],
    'no ESTABLISHED SA on strongSwan',
  );
  t.ok(twinsec.proc.running, 'twinsecd is still running');
  t.not((await twinsec.status()).connections.t1?.state, 'established', 'twinsec t1 not established');
  if (twinsecTells) t.match(twinsec.log(), /auth_failed/, 'twinsec reports auth_failed (PSK mismatch)');
}

async function established(
  t: Test,
  lab: Lab,
  c: Case,
  sw0: Charon,
  twinsec: Twinsec,
  twInit: boolean,
  ns: { tw: string; sw: string },
): Promise<void> {
  const sa = await sw0.waitFor(() => sw0.established('gw'), ESTABLISH_MS, 'strongSwan ISAKMP SA ESTABLISHED');
  const conn = await twinsec.waitForState('t1', 'established', ESTABLISH_MS);
  t.equal(sa.version, 1, 'strongSwan: IKEv1');
  t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
  t.equal(sa.encrAlg, c.expect.ike.encr, `IKE encr ${c.expect.ike.encr}`);
  t.equal(sa.encrKeysize, c.expect.ike.keysize, `IKE keysize ${c.expect.ike.keysize}`);
  t.equal(sa.integAlg, c.expect.ike.integ, `IKE integ ${c.expect.ike.integ}`);
  t.equal(sa.dhGroup, c.expect.ike.dh, `IKE dh ${c.expect.ike.dh}`);
  t.equal(sa.remotePort, 4500, 'floated to UDP 4500 (kernel-libipsec fakes NAT, RFC 3947)');
  const mode = c.mode === 'aggressive' ? 'Aggressive' : 'Main';
  t.match(sw0.log(), new RegExp(`${mode} Mode IKE_SA`), `strongSwan ran ${mode} Mode`);
  if (c.ids) {
    t.equal(sa.localId, c.ids.strongswan.replace(/^@/, ''), 'strongSwan: its own ID');
    t.equal(sa.remoteId, c.ids.twinsec.replace(/^@/, ''), "strongSwan: twinsec's ID");
  }
  // The ISAKMP cookies strongSwan lists are the ones twinsec logged when its SA came up.
  const up = twinsec.logEvents().filter((e) => e.event === 'ike-state' && e.to === 'established');
  const pair = (i: unknown, r: unknown) => `${normSpi(String(i), 16)}/${normSpi(String(r), 16)}`;
  const cookies = pair(sa.raw['initiator-spi'], sa.raw['responder-spi']);
  t.ok(
    up.some((e) => pair(e.spiI, e.spiR) === cookies),
    `strongSwan lists twinsec's ISAKMP SA (${cookies})`,
  );
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
  const ping = async (n: string, from: string, to: string) =>
    (
      await lab.exec(n, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '1', '-I', from, to], {
        check: false,
        timeoutMs: 10_000,
      })
    ).code;
  t.equal(await ping(ns.tw, '198.18.1.1', '198.19.1.1'), 0, 'ping twinsec LAN -> strongSwan LAN');
  t.equal(await ping(ns.sw, '198.19.1.1', '198.18.1.1'), 0, 'ping strongSwan LAN -> twinsec LAN');
}
