/**
 * Security issue #11, load item (a): an IKE_SA_INIT flood from spoofed sources against the cloud
 * gateway of the HA lab (ike-flood-lab.ts: two health-checked tunnels, 0.1 s x 3, LAN pings at
 * 50/s; the cloud gateway also answers any peer, `remote: %any`).
 *
 * From the attacker's namespace a raw-socket sender (IP_HDRINCL) sends well-formed IKE_SA_INIT
 * requests (SA, KE x25519, Nonce; fresh SPIi and Ni each) at RATE/s for FLOOD_S seconds, each from a
 * random source in 198.18.64.0/18 (16,384 addresses), which the router routes back towards the
 * attacker: the answers cross the router too and never reach a real host. iptables in the router
 * counts both directions on the wire.
 *
 * What must hold during the flood:
 *   - at least 5,000 requests/s reach the gateway (counted in the router), and it answers them
 *     statelessly with N(COOKIE) (its `cookie_required` drop count and the answers on the wire);
 *   - no health change and no route switch on either gateway, the HA IKE SAs are the same ones
 *     after the flood, and LAN pings keep flowing (>= 98 %);
 *   - a new branch gateway (another twinsecd, which answers the cookie) started 4 s into the flood
 *     is established within 5 s of its start, rekeys its CHILD_SA (7 s) and its IKE SA (12 s)
 *     during the flood, and carries a ping after that;
 *   - t1, the primary HA tunnel, rekeys its CHILD_SA (rekeyTime 20 s) during the flood;
 *   - the cloud twinsecd's RSS grows by less than RSS_BOUND (start, peak and end are printed);
 *   - `status` on the control socket: p95 < 100 ms.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { dhGenerate } from '../../src/ike/crypto/dh.js';
import { parseProposals, toWireProposal } from '../../src/ike/proposal.js';
import { ExchangeType, HeaderFlag, PayloadType, ProtocolId } from '../../src/ike/wire/constants.js';
import { encodeMessage } from '../../src/ike/wire/message.js';
import { ADDR, IKE_PROPOSAL, quickStatus, startPing, waitHaReady } from './ha-lab.js';
import {
  branchConfig,
  FLOOD_ADDR,
  fmtMs,
  forwardCounters,
  haFlaps,
  haIkeSas,
  mib,
  percentiles,
  pollStatus,
  rssBytes,
  startFloodLab,
} from './ike-flood-lab.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { startTwinsec, type Twinsec, twinsecUnavailable } from './twinsec.js';

const FLOOD_S = 30;
/** Requests per second the sender paces itself to (the test requires >= 5,000 measured on the wire). */
const RATE = 6500;
const MIN_RATE = 5000;
const RSS_BOUND = 64 * 1024 * 1024;
/** When the branch gateway starts, seconds into the flood. */
const BRANCH_AT_S = 4;

/**
 * Spoofed IKE_SA_INIT sender: argv dst, first address of the source net, host bits, rate/s,
 * seconds, the IKE message template (hex; SPIi = its first 8 octets and Ni = its last 32 are
 * replaced per datagram). Prints {"sent": N, "seconds": S}.
 */
const FLOODER = `
import json, random, socket, struct, sys, time
dst, net, bits, rate, seconds, tmpl = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), bytes.fromhex(sys.argv[6])
base = struct.unpack('!I', socket.inet_aton(net))[0]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
dstb = socket.inet_aton(dst)
mid = tmpl[8:-32]
ulen = 8 + len(tmpl)
udp = struct.pack('!HHHH', 500, 500, ulen, 0)
rnd = random.getrandbits
n = 0
start = time.time()
end = start + seconds
while True:
    now = time.time()
    if now >= end:
        break
    due = int((now - start) * rate) - n
    if due <= 0:
        time.sleep(0.0005)
        continue
    for _ in range(min(due, 2000)):
        src = struct.pack('!I', base + rnd(bits))
        # IP_HDRINCL: the kernel fills in the total length, the ID and the checksum.
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 0, 0, 0, 64, 17, 0, src, dstb)
        s.sendto(ip + udp + rnd(64).to_bytes(8, 'big') + mid + rnd(256).to_bytes(32, 'big'), (dst, 0))
        n += 1
print(json.dumps({'sent': n, 'seconds': time.time() - start}))
`;

/** An IKE_SA_INIT request as an initiator sends its first one (Nonce last, for the sender). */
function initTemplate(): Buffer {
  return encodeMessage({
    header: {
      spiI: Buffer.alloc(8, 0xaa),
      spiR: Buffer.alloc(8),
      version: 0x20,
      exchange: ExchangeType.IKE_SA_INIT,
      flags: HeaderFlag.INITIATOR,
      messageId: 0,
    },
    payloads: [
      {
        type: PayloadType.SA,
        proposals: parseProposals(IKE_PROPOSAL, 'ike').map((p, i) =>
          toWireProposal(p, i + 1, ProtocolId.IKE, Buffer.alloc(0)),
        ),
      },
      { type: PayloadType.KE, group: 31, data: dhGenerate(31).publicKey },
      { type: PayloadType.NONCE, data: Buffer.alloc(32, 0xbb) },
    ],
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = labUnavailable() ?? twinsecUnavailable();

t.test(
  'IKE_SA_INIT flood from spoofed sources: cookies, no failover, a new peer gets in, rekeys complete, RSS bounded',
  { skip },
  async (t) => {
    const lab = new Lab(t);
    const h = await startFloodLab(lab, { t1EspRekey: 20 });
    await waitHaReady(h);
    const cloudPid = h.cloud.proc.pid!;

    // Counters on the wire, in the router: requests from the spoofed net, answers to it.
    const ipt = (args: string[]) => lab.exec(h.ns.router, 'iptables', args);
    await ipt([
      '-I',
      'FORWARD',
      '1',
      '-s',
      FLOOD_ADDR.spoofNet,
      '-d',
      ADDR.cloudWan,
      '-p',
      'udp',
      '--dport',
      '500',
    ]);
    await ipt([
      '-I',
      'FORWARD',
      '2',
      '-s',
      ADDR.cloudWan,
      '-d',
      FLOOD_ADDR.spoofNet,
      '-p',
      'udp',
      '--sport',
      '500',
    ]);
    const script = `${lab.tempDir('flood')}/ike-flood.py`;
    writeFileSync(script, FLOODER);
    const tmpl = initTemplate();
    t.equal(tmpl.subarray(-32).toString('hex'), 'bb'.repeat(32), 'the template ends with its Nonce');

    const ikeDrops0 = (await quickStatus(h.cloud)).drops?.ike ?? {};
    const sas0 = haIkeSas(h);
    const rssStart = rssBytes(cloudPid);
    let rssPeak = rssStart;
    const rssTimer = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(cloudPid));
    }, 250);
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 20);
    const poll = pollStatus(h.cloud, 100);

    const floodStart = Date.now();
    const [net, bits] = FLOOD_ADDR.spoofNet.split('/') as [string, string];
    const sender = lab.exec(
      h.attackerNs,
      'python3',
      [
        script,
        ADDR.cloudWan,
        net,
        String(32 - Number(bits)),
        String(RATE),
        String(FLOOD_S),
        tmpl.toString('hex'),
      ],
      { timeoutMs: (FLOOD_S + 30) * 1000 },
    );

    // A new branch gateway dials in during the flood (it must answer the cookie challenge).
    await sleep(BRANCH_AT_S * 1000);
    const branchStart = Date.now();
    let branch: Twinsec | undefined;
    let establishedMs = Number.POSITIVE_INFINITY;
    try {
      branch = await startTwinsec(lab, h.peerNs, branchConfig({ espRekey: 7, ikeRekey: 12 }));
      const b = branch;
      await waitFor(async () => (await quickStatus(b)).connections.b1?.state === 'established', 15_000, {
        what: 'branch b1 established',
        intervalMs: 50,
      });
      const ev = b.logEvents().find((e) => e.event === 'ike-state' && e.to === 'established');
      establishedMs = (ev?.at ?? Date.now()) - branchStart;
    } catch (e) {
      t.fail(`branch gateway: ${(e as Error).message}`);
    }

    // Near the end of the flood: traffic through the branch tunnel (rekeyed by then).
    await sleep(Math.max(0, floodStart + (FLOOD_S - 4) * 1000 - Date.now()));
    const branchPing = await lab.exec(
      h.peerNs,
      'ping',
      ['-n', '-c', '5', '-i', '0.2', '-W', '1', '-I', FLOOD_ADDR.branchLanHost, ADDR.cloudLanGw],
      { check: false },
    );
    const flood = JSON.parse((await sender).stdout.trim()) as { sent: number; seconds: number };
    const floodEnd = Date.now();
    // Let the gateway drain its socket before reading its counters and the wire's.
    await sleep(2000);
    const wire = await forwardCounters(lab, h.ns.router);
    clearInterval(rssTimer);
    const rssEnd = rssBytes(cloudPid);
    rssPeak = Math.max(rssPeak, rssEnd);
    const lat = percentiles(await poll.stop());
    const pings = await ping.stop();
    const ikeDrops = (await quickStatus(h.cloud)).drops?.ike ?? {};
    const grew = (k: string) => (ikeDrops[k] ?? 0) - (ikeDrops0[k] ?? 0);

    // The flood itself.
    const [requests = 0, answers = 0] = wire;
    const rate = requests / flood.seconds;
    t.comment(
      `flood: sender ${flood.sent} IKE_SA_INIT in ${flood.seconds.toFixed(2)} s (${(flood.sent / flood.seconds).toFixed(0)}/s); ` +
        `router saw ${requests} requests (${rate.toFixed(0)}/s) and ${answers} answers to spoofed sources`,
    );
    t.comment(
      `cloud IKE drops during the flood: ${JSON.stringify(Object.fromEntries(Object.keys(ikeDrops).map((k) => [k, grew(k)])))}`,
    );
    t.ok(rate >= MIN_RATE, `>= ${MIN_RATE} requests/s on the wire (${rate.toFixed(0)}/s)`);
    t.ok(
      grew('cookie_required') >= requests * 0.9,
      `answered with N(COOKIE): ${grew('cookie_required')} of ${requests} requests`,
    );
    t.ok(answers >= grew('cookie_required'), `the cookie answers went out (${answers} on the wire)`);

    // The HA tunnels.
    t.same(haFlaps(h, floodStart), [], 'no health change and no route switch on either gateway');
    t.same(haIkeSas(h), sas0, 'the HA IKE SAs are the same ones');
    t.ok(
      pings.received >= pings.transmitted * 0.98,
      `LAN pings kept flowing (${pings.received}/${pings.transmitted})`,
    );
    const t1Rekeys = h.onprem
      .logEvents()
      .filter(
        (e) =>
          e.event === 'child-down' &&
          e.connection === 't1' &&
          e.reason === 'rekeyed' &&
          e.at >= floodStart &&
          e.at <= floodEnd,
      ).length;
    t.ok(t1Rekeys >= 1, `t1 rekeyed its CHILD_SA during the flood (${t1Rekeys})`);

    // The new peer.
    t.ok(establishedMs <= 5000, `the branch gateway was established ${establishedMs} ms after its start`);
    if (branch) {
      const ev = branch.logEvents().filter((e) => e.at >= branchStart && e.at <= floodEnd);
      const cookies = ev.filter((e) => /asked for a cookie/.test(e.msg)).length;
      const childRekeys = ev.filter((e) => e.event === 'child-down' && e.reason === 'rekeyed').length;
      const ikeRekeys = ev.filter(
        (e) => e.event === 'ike-state' && e.to === 'established' && /rekeyed IKE SA/.test(String(e.reason)),
      ).length;
      const failures = ev.filter((e) => e.event === 'ike-failure').map((e) => e.msg);
      t.comment(
        `branch: established in ${establishedMs} ms (cookie challenges answered: ${cookies}), ` +
          `${childRekeys} CHILD_SA and ${ikeRekeys} IKE SA rekeys during the flood, failures ${JSON.stringify(failures)}`,
      );
      t.ok(cookies >= 1, 'the branch was asked for a cookie and answered it');
      t.ok(childRekeys >= 1, 'the branch CHILD_SA rekeyed during the flood');
      t.ok(ikeRekeys >= 1, 'the branch IKE SA rekeyed during the flood');
      t.equal(
        branchPing.code,
        0,
        `ping through the rekeyed branch tunnel:\n${branchPing.stdout.trim().split('\n').at(-2)}`,
      );
    }

    // The responder's cost.
    t.comment(
      `cloud twinsecd RSS: start ${mib(rssStart)}, peak ${mib(rssPeak)}, end ${mib(rssEnd)} ` +
        `(growth ${mib(rssPeak - rssStart)} peak, ${mib(rssEnd - rssStart)} end)`,
    );
    t.ok(rssPeak - rssStart < RSS_BOUND, `RSS growth below ${mib(RSS_BOUND)}`);
    t.comment(`status during the flood: ${fmtMs(lat)}`);
    t.ok(lat.p95 < 100, `status answers: ${fmtMs(lat)}`);
  },
);
