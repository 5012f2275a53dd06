/**
 * IKEv2 interop: twinsec <-> strongSwan 5.9.8 (charon with kernel-libipsec), PSK, in network namespaces.
 *
 * Every case runs in both roles: twinsec initiates (charon responds, start_action none), and charon
 * initiates (`swanctl --initiate`) to a twinsec that listens. A case passes when strongSwan itself reports
 * the IKE_SA ESTABLISHED and the CHILD_SA INSTALLED with the expected algorithms, and twinsec's
 * `status --json` says established with a child whose SPIs mirror strongSwan's.
 *
 * kernel-libipsec fakes NAT detection, so every SA floats to UDP 4500 (RFC 3948 encapsulation).
 *
 * Topology per case (fresh namespaces each time):
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.1.1 (LAN 198.18.1.0/24)          sw lo 198.19.1.1 (LAN 198.19.1.0/24)
 */
import t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import { type Charon, charonUnavailable, type IkeSaInfo, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecChildStatus, twinsecUnavailable } from '../lab/twinsec.js';

// The subtest type (tap does not export its plugin-extended Test type directly).
type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Role = 'twinsec initiates' | 'charon initiates';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
/** Time for an exchange to complete (charon retransmits after 1 s, 3 tries). */
const ESTABLISH_MS = 12_000;

interface Expected {
  ike: { encr: string; keysize: number; integ?: string; prf: string; dh: string };
  child: { encr: string; keysize: number; integ?: string };
}

interface Case {
  name: string;
  /** Proposals of whichever side initiates / responds in a given role. */
  initiatorIke: string[];
  responderIke: string[];
  esp: string[];
  /** Identities of the twinsec side (tw) and the strongSwan side (sw); default: the addresses. */
  twId?: string;
  swId?: string;
  twPsk?: string;
  swPsk?: string;
  /** Expected algorithms, or 'auth-failure' for a case that must fail on both sides. */
  expect: Expected | 'auth-failure';
  /** charon log line expected per role (e.g. the INVALID_KE_PAYLOAD round). */
  charonLog?: Partial<Record<Role, RegExp>>;
}

const AEAD: Expected = {
  ike: { encr: 'AES_GCM_16', keysize: 256, prf: 'PRF_HMAC_SHA2_256', dh: 'CURVE_25519' },
  child: { encr: 'AES_GCM_16', keysize: 256 },
};

const CASES: Case[] = [
  {
    name: '(a) AEAD aes256gcm16-prfsha256-x25519 / esp aes256gcm16',
    initiatorIke: ['aes256gcm16-prfsha256-x25519'],
    responderIke: ['aes256gcm16-prfsha256-x25519'],
    esp: ['aes256gcm16'],
    expect: AEAD,
  },
  {
    name: '(b) non-AEAD aes128-sha256-modp2048 / esp aes128-sha256',
    initiatorIke: ['aes128-sha256-modp2048'],
    responderIke: ['aes128-sha256-modp2048'],
    esp: ['aes128-sha256'],
    expect: {
      ike: {
        encr: 'AES_CBC',
        keysize: 128,
        integ: 'HMAC_SHA2_256_128',
        prf: 'PRF_HMAC_SHA2_256',
        dh: 'MODP_2048',
      },
      child: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA2_256_128' },
    },
  },
  {
    name: '(c) INVALID_KE_PAYLOAD retry: x25519 first, responder only takes ecp256',
    initiatorIke: ['aes256gcm16-prfsha256-x25519-ecp256'],
    responderIke: ['aes256gcm16-prfsha256-ecp256'],
    esp: ['aes256gcm16'],
    expect: { ...AEAD, ike: { ...AEAD.ike, dh: 'ECP_256' } },
    charonLog: {
      // charon is the responder: it rejects the x25519 KE and asks for ECP_256.
      'twinsec initiates': /DH group CURVE_25519 unacceptable, requesting ECP_256/,
      // charon is the initiator: twinsec must send INVALID_KE_PAYLOAD naming ECP_256 (19).
      'charon initiates': /peer didn't accept DH group CURVE_25519, it requested ECP_256/,
    },
  },
  {
    name: '(d) FQDN identities gw1.example.net / gw2.example.net',
    initiatorIke: ['aes256gcm16-prfsha256-x25519'],
    responderIke: ['aes256gcm16-prfsha256-x25519'],
    esp: ['aes256gcm16'],
    twId: 'gw1.example.net',
    swId: 'gw2.example.net',
    expect: AEAD,
  },
  {
    name: '(e) wrong PSK fails cleanly on both sides',
    initiatorIke: ['aes256gcm16-prfsha256-x25519'],
    responderIke: ['aes256gcm16-prfsha256-x25519'],
    esp: ['aes256gcm16'],
    twPsk: 'twinsec-side-secret-A',
    swPsk: 'charon-side-secret-B',
    expect: 'auth-failure',
  },
];

const ROLES: Role[] = ['twinsec initiates', 'charon initiates'];

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

interface Peers {
  lab: Lab;
  charon?: Charon;
  twinsec?: Twinsec;
}

/** Runs `body`; on an error or a failed assertion prints the tail of both daemons' logs. */
async function withLogs(t: Test, peers: Peers, body: () => Promise<void>): Promise<void> {
  const dump = () => {
    // Task bookkeeping lines (queueing/activating) are noise here.
    const charonLog = peers.charon?.log().replace(/^.*\] <[^>]*> +(queueing|activating) .*\n/gm, '');
    if (charonLog !== undefined) t.comment(`--- charon log (tail) ---\n${tail(charonLog, 120)}`);
    if (peers.twinsec) t.comment(`--- twinsecd log (tail) ---\n${tail(peers.twinsec.log(), 120)}`);
  };
  try {
    await body();
  } catch (e) {
    dump();
    throw e;
  }
  if (!t.passing()) dump();
}

async function runCase(t: Test, c: Case, role: Role): Promise<void> {
  const lab = new Lab(t);
  const peers: Peers = { lab };
  const twInit = role === 'twinsec initiates';
  const twIke = twInit ? c.initiatorIke : c.responderIke;
  const swIke = twInit ? c.responderIke : c.initiatorIke;
  const psk = 'interop-test-psk-0123456789';

  await withLogs(t, peers, async () => {
    const tw = await lab.addNamespace('tw');
    const sw = await lab.addNamespace('sw');
    await lab.link(
      { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
      { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
    );
    await lab.loopbackAddresses(tw, '198.18.1.1/32');
    // charon (kernel-libipsec) needs an address inside its local TS to install the tunnel route.
    await lab.loopbackAddresses(sw, '198.19.1.1/32');

    const startSwan = async () => {
      peers.charon = await startCharon(lab, sw, {
        dir: lab.tempDir('charon'),
        conns: [
          {
            name: 'gw',
            version: 2,
            local: SW_WAN,
            remote: TW_WAN,
            localId: c.swId,
            remoteId: c.twId,
            psk: c.swPsk ?? psk,
            ikeProposals: swIke,
            espProposals: c.esp,
            localTs: [SW_LAN],
            remoteTs: [TW_LAN],
            startAction: 'none',
          },
        ],
      });
      return peers.charon;
    };
    const startTw = async () => {
      peers.twinsec = await startTwinsec(lab, tw, {
        log: { level: 'debug' },
        connections: {
          t1: {
            version: 2,
            local: TW_WAN,
            remote: SW_WAN,
            ...(c.twId ? { localId: c.twId } : {}),
            ...(c.swId ? { remoteId: c.swId } : {}),
            psk: c.twPsk ?? psk,
            ike: { proposals: twIke, lifetime: 3600 },
            esp: { proposals: c.esp, lifetime: 1200 },
            localSubnets: [TW_LAN],
            remoteSubnets: [SW_LAN],
            start: twInit ? 'initiate' : 'listen',
            encapsulation: 'auto',
          },
        },
        routes: [],
      });
      return peers.twinsec;
    };

    // The responder is up before the initiator starts.
    let charon: Charon;
    let twinsec: Twinsec;
    let initiateOut = '';
    if (twInit) {
      charon = await startSwan();
      twinsec = await startTw();
    } else {
      twinsec = await startTw();
      charon = await startSwan();
    }
    // One time budget for the whole negotiation, whoever initiates.
    const deadline = Date.now() + ESTABLISH_MS;
    const left = () => Math.max(1000, deadline - Date.now());
    if (!twInit) {
      const r = await charon.initiate('gw', { check: false, timeoutSec: Math.ceil(ESTABLISH_MS / 1000) - 2 });
      initiateOut = `${r.stdout}${r.stderr}`;
    }

    if (c.expect === 'auth-failure') {
      await expectAuthFailure(t, role, charon, twinsec, initiateOut, left());
      return;
    }

    const sa = await charon.waitFor(() => charon.established('gw'), left(), 'strongSwan IKE_SA ESTABLISHED');
    const conn = await twinsec.waitForState('t1', 'established', left());
    checkIkeSa(t, sa, c.expect, twInit);
    if (c.twId) t.equal(sa.remoteId, c.twId, `strongSwan sees twinsec's identity ${c.twId}`);
    if (c.swId) t.equal(sa.localId, c.swId, `strongSwan used its identity ${c.swId}`);

    const child = sa.children.find((ch) => ch.state === 'INSTALLED')!;
    // twinsec's inbound SPI is strongSwan's outbound one and vice versa.
    const match = (conn.children ?? []).find(
      (ch: TwinsecChildStatus) => normSpi(ch.spiIn) === child.spiOut && normSpi(ch.spiOut) === child.spiIn,
    );
    t.ok(
      match,
      `twinsec child SPIs mirror strongSwan's (sw in=${child.spiIn} out=${child.spiOut}; ` +
        `twinsec children ${JSON.stringify((conn.children ?? []).map((ch) => [ch.spiIn, ch.spiOut]))})`,
    );
    if (match) {
      t.match(match.spiIn, /^[0-9a-f]{8}$/, 'twinsec spiIn is 8 lowercase hex digits');
      t.match(match.spiOut, /^[0-9a-f]{8}$/, 'twinsec spiOut is 8 lowercase hex digits');
    }

    const wanted = c.charonLog?.[role];
    if (wanted) t.match(charon.log(), wanted, `charon log shows ${wanted.source}`);
  });
}

function checkIkeSa(t: Test, sa: IkeSaInfo, e: Expected, twInit: boolean): void {
  t.equal(sa.state, 'ESTABLISHED', 'strongSwan: IKE_SA ESTABLISHED');
  t.equal(sa.version, 2, 'strongSwan: IKEv2');
  t.equal(sa.initiator, !twInit, `strongSwan is the ${twInit ? 'responder' : 'initiator'}`);
  t.equal(sa.encrAlg, e.ike.encr, `IKE encr-alg ${e.ike.encr}`);
  t.equal(sa.encrKeysize, e.ike.keysize, `IKE encr-keysize ${e.ike.keysize}`);
  t.equal(sa.integAlg, e.ike.integ, `IKE integ-alg ${e.ike.integ ?? '(none: AEAD)'}`);
  t.equal(sa.prfAlg, e.ike.prf, `IKE prf-alg ${e.ike.prf}`);
  t.equal(sa.dhGroup, e.ike.dh, `IKE dh-group ${e.ike.dh}`);
  t.equal(sa.remotePort, 4500, 'IKE_SA floated to UDP 4500 (kernel-libipsec fakes NAT)');
  const child = sa.children.find((ch) => ch.state === 'INSTALLED');
  t.ok(child, 'strongSwan: CHILD_SA INSTALLED');
  if (!child) return;
  t.equal(child.protocol, 'ESP', 'CHILD_SA protocol ESP');
  t.equal(child.mode, 'TUNNEL', 'CHILD_SA mode TUNNEL');
  t.equal(child.encap, true, 'CHILD_SA uses UDP encapsulation');
  t.equal(child.encrAlg, e.child.encr, `ESP encr-alg ${e.child.encr}`);
  t.equal(child.encrKeysize, e.child.keysize, `ESP encr-keysize ${e.child.keysize}`);
  t.equal(child.integAlg, e.child.integ, `ESP integ-alg ${e.child.integ ?? '(none: AEAD)'}`);
  t.same(child.localTs, [SW_LAN], 'CHILD_SA local-ts');
  t.same(child.remoteTs, [TW_LAN], 'CHILD_SA remote-ts');
}

async function expectAuthFailure(
  t: Test,
  role: Role,
  charon: Charon,
  twinsec: Twinsec,
  initiateOut: string,
  timeoutMs: number,
): Promise<void> {
  if (role === 'twinsec initiates') {
    // charon (responder) checks twinsec's AUTH first, rejects it and answers AUTHENTICATION_FAILED.
    await charon.waitForLog(/but MAC mismatched/, timeoutMs);
    t.pass('charon rejected twinsec AUTH: MAC mismatched');
  } else {
    // twinsec (responder) must reject charon's AUTH and answer AUTHENTICATION_FAILED.
    await charon.waitForLog(/received AUTHENTICATION_FAILED notify error/, timeoutMs);
    t.pass('charon received AUTHENTICATION_FAILED from twinsec');
    t.notMatch(initiateOut, /initiate completed successfully/, 'swanctl --initiate did not succeed');
  }
  await new Promise((r) => setTimeout(r, 1000));
  const sas = await charon.listSas();
  t.same(
    sas.filter((s) => s.state === 'ESTABLISHED'),
    [],
    'no ESTABLISHED IKE_SA on strongSwan',
  );
  t.ok(twinsec.proc.running, 'twinsecd is still running');
  const st = await twinsec.status();
  const conn = st.connections.t1;
  t.ok(conn, 'twinsec status lists t1');
  t.not(conn?.state, 'established', 'twinsec t1 is not established');
  t.same(conn?.children ?? [], [], 'twinsec has no CHILD_SA for t1');
  t.match(
    twinsec.log(),
    /AUTHENTICATION_FAILED|auth(entication)?[ _-]?fail/i,
    'twinsec log names the auth failure',
  );
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
    for (const c of CASES) {
      for (const role of ROLES) {
        t.test(`${c.name} [${role}]`, (t) => runCase(t, c, role));
      }
    }
  }
}
