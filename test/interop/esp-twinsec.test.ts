/**
 * ESP data plane, twinsec <-> twinsec, in network namespaces:
 *
 * (a) raw ESP (`encapsulation: esp` on both sides): ping crosses the tunnel as IP protocol 50 only.
 * (b) independent wire check: while pinging with a known pattern, the initiator runs the test-only
 *     keylog-daemon (the real Daemon + engine, SA keys written in Wireshark's esp_sa format); tshark
 *     decrypts the capture and the inner ICMP packets must be exactly what ping sent and got back, with
 *     tshark's own ICV check good, next header 4, per-SPI increasing sequence numbers and no IV reused.
 *     AES-GCM and AES-CBC+HMAC-SHA256, raw ESP and ESP-in-UDP.
 * (c) replay and tamper: a captured ESP packet the receiver never saw (dropped by iptables on the way
 *     in) is re-sent through a raw socket: one bit flipped -> an integrity drop; the original -> accepted
 *     late; the original again -> a replay drop; wrong SPI -> noSa; truncated -> malformed. Counted in
 *     `twinsec status --json` `drops.esp`.
 *
 * Topology per case (fresh namespaces each time):
 *   [a] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [b]
 *   a lo 198.18.1.1 (LAN 198.18.1.0/24)          b lo 198.19.1.1 (LAN 198.19.1.0/24)
 *   routes published by each daemon: the peer's LAN via its TUN.
 */
import { join } from 'node:path';
import t from 'tap';
import {
  type CapturedPacket,
  decryptEsp,
  findEsp,
  KEYLOG_DAEMON,
  rawSend,
  readUat,
  resendable,
  startCapture,
} from '../lab/keylog.js';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import {
  startTwinsec,
  type Twinsec,
  type TwinsecChildStatus,
  type TwinsecStatus,
  twinsecUnavailable,
} from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Encap = 'esp' | 'udp';

const A_WAN = '192.0.2.1';
const B_WAN = '192.0.2.2';
const A_LAN = '198.18.1.0/24';
const B_LAN = '198.19.1.0/24';
const A_HOST = '198.18.1.1';
const B_HOST = '198.19.1.1';
const PSK = 'esp-twinsec-test-psk-0123456789';
const ESTABLISH_MS = 12_000;

interface Pair {
  lab: Lab;
  nsA: string;
  nsB: string;
  a: Twinsec;
  b: Twinsec;
  /** esp_sa file of a (when a runs the keylog-daemon). */
  keylog?: string;
}

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

/** Two twinsec gateways, a initiates; resolves once both say established and a ping got through. */
async function pair(
  t: Test,
  opts: { esp: string[]; encapsulation: Encap; keylogA?: boolean },
): Promise<Pair> {
  const lab = new Lab(t);
  const nsA = await lab.addNamespace('a');
  const nsB = await lab.addNamespace('b');
  await lab.link(
    { ns: nsA, ifname: 'wan0', address: `${A_WAN}/24` },
    { ns: nsB, ifname: 'wan0', address: `${B_WAN}/24` },
  );
  await lab.loopbackAddresses(nsA, `${A_HOST}/32`);
  await lab.loopbackAddresses(nsB, `${B_HOST}/32`);

  const conn = (local: string, remote: string, lans: [string, string], start: 'initiate' | 'listen') => ({
    version: 2 as const,
    local,
    remote,
    psk: PSK,
    ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 },
    esp: { proposals: opts.esp, lifetime: 1200 },
    localSubnets: [lans[0]],
    remoteSubnets: [lans[1]],
    start,
    encapsulation: opts.encapsulation,
  });
  const peers: Partial<Pair> = { lab, nsA, nsB };
  t.teardown(() => {
    if (t.passing()) return;
    if (peers.a) t.comment(`--- twinsec a log (tail) ---\n${tail(peers.a.log(), 80)}`);
    if (peers.b) t.comment(`--- twinsec b log (tail) ---\n${tail(peers.b.log(), 80)}`);
  });
  peers.b = await startTwinsec(lab, nsB, {
    log: { level: 'debug' },
    connections: { t1: conn(B_WAN, A_WAN, [B_LAN, A_LAN], 'listen') },
    routes: [{ destination: A_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  const keylog = opts.keylogA ? join(lab.tempDir('keylog'), 'esp_sa') : undefined;
  peers.a = await startTwinsec(
    lab,
    nsA,
    {
      log: { level: 'debug' },
      connections: { t1: conn(A_WAN, B_WAN, [A_LAN, B_LAN], 'initiate') },
      routes: [{ destination: B_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
    },
    keylog ? { daemon: { script: KEYLOG_DAEMON, args: ['--keylog', keylog] } } : {},
  );
  peers.keylog = keylog;
  await peers.a.waitForState('t1', 'established', ESTABLISH_MS);
  await peers.b.waitForState('t1', 'established', ESTABLISH_MS);
  // The first packets may race the route refresh on either side: wait for one echo to come back.
  await waitFor(async () => (await ping(lab, nsA, A_HOST, B_HOST, ['-c', '1', '-W', '1'])).code === 0, 8000, {
    what: `first ping ${A_HOST} -> ${B_HOST}`,
    intervalMs: 100,
  });
  return peers as Pair;
}

function ping(lab: Lab, ns: string, from: string, to: string, extra: string[]) {
  return lab.exec(ns, 'ping', ['-n', '-I', from, ...extra, to], { check: false, timeoutMs: 30_000 });
}

const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);

async function child(tw: Twinsec): Promise<TwinsecChildStatus> {
  const s = await tw.status();
  const c = s.connections.t1?.children[0];
  if (!c) throw new Error(`no CHILD_SA in status: ${JSON.stringify(s)}`);
  return c;
}

type StatusWithDrops = TwinsecStatus & { drops?: { esp?: Record<string, number> } };

async function espDrops(tw: Twinsec): Promise<Record<string, number>> {
  const s = (await tw.status()) as StatusWithDrops;
  if (!s.drops?.esp) throw new Error(`status --json has no drops.esp: ${JSON.stringify(s)}`);
  return s.drops.esp;
}

const skip = labUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();

  t.test('(a) encapsulation esp: ping crosses as IP protocol 50, no ESP-in-UDP', async (t) => {
    const { lab, nsA, a, b } = await pair(t, { esp: ['aes256gcm16'], encapsulation: 'esp' });
    const dir = lab.tempDir('cap');
    const esp = await startCapture(lab, nsA, 'wan0', 'ip proto 50', join(dir, 'esp.pcap'));
    const udp = await startCapture(lab, nsA, 'wan0', 'udp port 4500', join(dir, 'udp.pcap'));
    const p = await ping(lab, nsA, A_HOST, B_HOST, ['-c', '5', '-i', '0.2', '-W', '2']);
    t.equal(received(p.stdout), 5, `5 echo replies (${p.stdout.trim().split('\n').pop()})`);
    await waitFor(() => esp.packets().length >= 10, 3000, { what: '10 ESP packets captured' }).catch(
      () => {},
    );
    const espPkts = await esp.stop();
    const udpPkts = await udp.stop();

    const ca = await child(a);
    const cb = await child(b);
    t.equal(ca.encapsulation, 'esp', 'a: child encapsulation esp');
    t.equal(cb.encapsulation, 'esp', 'b: child encapsulation esp');
    const parsed = espPkts.map((pk) => findEsp(pk.ip)).filter((x) => x !== undefined);
    t.ok(parsed.length >= 10, `tcpdump 'ip proto 50' saw >= 10 ESP packets (${parsed.length})`);
    t.ok(
      parsed.every((e) => e.encapsulation === 'esp'),
      'all are raw ESP',
    );
    const spiOutA = Number.parseInt(ca.spiOut, 16);
    const spiInA = Number.parseInt(ca.spiIn, 16);
    t.equal(
      parsed.filter((e) => e.src === A_WAN && e.spi === spiOutA).length,
      5,
      `5 requests a -> b on a's spiOut ${ca.spiOut}`,
    );
    t.equal(
      parsed.filter((e) => e.src === B_WAN && e.spi === spiInA).length,
      5,
      `5 replies b -> a on a's spiIn ${ca.spiIn}`,
    );
    const udpEsp = udpPkts.filter((pk) => findEsp(pk.ip) !== undefined);
    t.equal(udpEsp.length, 0, 'no ESP-in-UDP on port 4500');
    t.ok((ca.packetsOut ?? 0) >= 5 && (ca.packetsIn ?? 0) >= 5, `a counted packets ${JSON.stringify(ca)}`);
    t.ok((cb.packetsOut ?? 0) >= 5 && (cb.packetsIn ?? 0) >= 5, `b counted packets ${JSON.stringify(cb)}`);
    t.ok(ca.bytesOut > 0 && ca.bytesIn > 0, 'a counted bytes both ways');
    // Nothing is lost on a veth at ping rates: what one side sent, the other received, byte for byte.
    t.same(
      [ca.packetsOut, ca.bytesOut, ca.packetsIn, ca.bytesIn],
      [cb.packetsIn, cb.bytesIn, cb.packetsOut, cb.bytesOut],
      "a's out counters equal b's in counters and vice versa",
    );
  });

  const WIRE_CASES: { name: string; esp: string; encr: string; integ: string | null }[] = [
    { name: 'aes256gcm16', esp: 'aes256gcm16', encr: 'aes256gcm16', integ: null },
    { name: 'aes128-sha256 (CBC + HMAC-SHA-256-128)', esp: 'aes128-sha256', encr: 'aes128', integ: 'sha256' },
  ];

  for (const wc of WIRE_CASES) {
    for (const encap of ['esp', 'udp'] as const) {
      t.test(`(b) wire check with tshark: ${wc.name} over ${encap === 'esp' ? 'raw ESP' : 'UDP 4500'}`, (t) =>
        wireCheck(t, wc.esp, encap),
      );
    }
  }

  async function wireCheck(t: Test, espProposal: string, encap: Encap): Promise<void> {
    const { lab, nsA, a, keylog } = await pair(t, {
      esp: [espProposal],
      encapsulation: encap,
      keylogA: true,
    });
    const records = readUat(keylog!);
    t.equal(records.length, 2, 'keylog-daemon wrote one inbound and one outbound esp_sa record');

    const pcap = join(lab.tempDir('cap'), 'wire.pcap');
    const cap = await startCapture(lab, nsA, 'wan0', 'ip proto 50 or udp port 4500', pcap);
    const pattern = 'c0ffee5a';
    const ident = 0x4242;
    const n = 4;
    const p = await ping(lab, nsA, A_HOST, B_HOST, [
      '-c',
      String(n),
      '-i',
      '0.2',
      '-W',
      '2',
      '-p',
      pattern,
      '-e',
      String(ident),
      '-s',
      '200',
    ]);
    t.equal(received(p.stdout), n, `${n} echo replies`);
    await waitFor(() => cap.packets().length >= 2 * n, 3000, { what: 'ESP captured' }).catch(() => {});
    await cap.stop();

    const frames = await decryptEsp(pcap, records);
    const ca = await child(a);
    const spiOut = Number.parseInt(ca.spiOut, 16);
    const spiIn = Number.parseInt(ca.spiIn, 16);
    t.ok(frames.length >= 2 * n, `tshark sees >= ${2 * n} ESP frames (${frames.length})`);
    t.ok(
      frames.every((f) => f.encapsulation === encap),
      `every frame is ${encap === 'esp' ? 'raw ESP' : 'ESP-in-UDP'}`,
    );
    const undecrypted = frames.filter((f) => f.innerSrc === undefined);
    t.same(undecrypted, [], 'tshark decrypted every ESP frame with the logged keys');
    t.same(
      frames.filter((f) => f.icvGood !== true),
      [],
      "tshark's own ICV check is good for every frame",
    );
    t.ok(
      frames.every((f) => f.nextHeader === 4),
      'next header 4 (IPv4, tunnel mode) in every trailer',
    );

    const mine = frames.filter((f) => f.icmpId === ident);
    const requests = mine.filter((f) => f.icmpType === 8);
    const replies = mine.filter((f) => f.icmpType === 0);
    t.same(
      requests.map((f) => f.icmpSeq).sort((x, y) => x! - y!),
      Array.from({ length: n }, (_, i) => i + 1),
      'decrypted echo requests carry ICMP seqs 1..n',
    );
    t.same(
      replies.map((f) => f.icmpSeq).sort((x, y) => x! - y!),
      Array.from({ length: n }, (_, i) => i + 1),
      'decrypted echo replies carry ICMP seqs 1..n',
    );
    for (const f of requests) {
      t.same(
        [f.outerSrc, f.outerDst, f.innerSrc, f.innerDst, f.spi],
        [A_WAN, B_WAN, A_HOST, B_HOST, spiOut],
        `request ${f.icmpSeq}: outer a->b, inner ${A_HOST}->${B_HOST}, a's spiOut`,
      );
    }
    for (const f of replies) {
      t.same(
        [f.outerSrc, f.outerDst, f.innerSrc, f.innerDst, f.spi],
        [B_WAN, A_WAN, B_HOST, A_HOST, spiIn],
        `reply ${f.icmpSeq}: outer b->a, inner ${B_HOST}->${A_HOST}, a's spiIn`,
      );
    }
    const patternRun = pattern.repeat(16);
    t.ok(
      mine.length === 2 * n && mine.every((f) => (f.dataHex ?? '').includes(patternRun)),
      `every decrypted ICMP payload carries the ping -p pattern ${pattern}`,
    );
    for (const spi of [spiOut, spiIn]) {
      const seqs = frames.filter((f) => f.spi === spi).map((f) => f.seq);
      t.ok(
        seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
        `ESP sequence numbers increase on SPI ${spi.toString(16)}: ${seqs.join(',')}`,
      );
      const ivs = frames.filter((f) => f.spi === spi).map((f) => f.ivHex);
      t.ok(
        ivs.every((iv) => iv !== undefined && iv.length > 0),
        'tshark shows an IV in every frame',
      );
      t.equal(new Set(ivs).size, ivs.length, `no IV repeats on SPI ${spi.toString(16)}`);
    }
  }

  const ATTACK_CASES: { esp: string; encap: Encap }[] = [
    { esp: 'aes256gcm16', encap: 'esp' },
    { esp: 'aes128-sha256', encap: 'udp' },
  ];
  for (const ac of ATTACK_CASES) {
    t.test(`(c) replay and tamper: ${ac.esp} over ${ac.encap === 'esp' ? 'raw ESP' : 'UDP 4500'}`, (t) =>
      replayAndTamper(t, ac.esp, ac.encap),
    );
  }

  async function replayAndTamper(t: Test, espProposal: string, encap: Encap): Promise<void> {
    const { lab, nsA, nsB, b } = await pair(t, { esp: [espProposal], encapsulation: encap });
    // Capture one ESP packet a -> b that b never receives: tcpdump sees it on the device, iptables drops it
    // before the engine's socket.
    const match = encap === 'esp' ? ['-p', 'esp'] : ['-p', 'udp', '--dport', '4500'];
    const rule = ['INPUT', '-s', A_WAN, ...match, '-j', 'DROP'];
    const pcap = join(lab.tempDir('cap'), 'held.pcap');
    const cap = await startCapture(
      lab,
      nsB,
      'wan0',
      `src host ${A_WAN} and (ip proto 50 or udp port 4500)`,
      pcap,
    );
    await lab.exec(nsB, 'iptables', ['-I', ...rule]);
    let held: CapturedPacket | undefined;
    try {
      await ping(lab, nsA, A_HOST, B_HOST, ['-c', '1', '-W', '1', '-p', 'abcd']);
      held = await waitFor(() => cap.packets().find((pk) => findEsp(pk.ip) !== undefined), 3000, {
        what: 'one ESP packet captured on b',
      });
    } finally {
      await lab.exec(nsB, 'iptables', ['-D', ...rule], { check: false });
      await cap.stop();
    }
    const esp = findEsp(held.ip)!;
    t.equal(esp.encapsulation, encap, `held packet is ${encap} (seq ${esp.seq})`);

    // One more packet through, so the held one arrives late (left of the highest sequence number seen).
    const p = await ping(lab, nsA, A_HOST, B_HOST, ['-c', '1', '-W', '2']);
    t.equal(received(p.stdout), 1, 'tunnel still works after the dropped packet');

    const waitCounters = async (
      what: string,
      pred: (d: Record<string, number>, inPkts: number) => boolean,
    ) => {
      let last = '';
      try {
        await waitFor(
          async () => {
            const d = await espDrops(b);
            const c = await child(b);
            last = `drops ${JSON.stringify(d)} packetsIn ${c.packetsIn}`;
            return pred(d, c.packetsIn ?? 0);
          },
          3000,
          { what, intervalMs: 100 },
        );
        t.pass(`${what} (${last})`);
      } catch (e) {
        t.fail(`${(e as Error).message}: ${last}`);
      }
    };

    const d0 = await espDrops(b);
    const in0 = (await child(b)).packetsIn ?? 0;
    const n = (d: Record<string, number>, k: string) => d[k] ?? 0;

    // 1. One bit flipped in the ciphertext of a never-seen sequence number: integrity, not replay.
    await rawSend(lab, nsA, [resendable(held.ip, { flipAt: 40 })]);
    await waitCounters(
      'tampered packet dropped as integrity',
      (d, pin) => n(d, 'integrity') === n(d0, 'integrity') + 1 && pin === in0,
    );
    const d1 = await espDrops(b);
    t.equal(n(d1, 'replay'), n(d0, 'replay'), 'the tampered packet did not count as a replay');

    // 2. The original, late but inside the window and never seen: accepted (a failed ICV must not have
    //    marked its sequence number as seen).
    await rawSend(lab, nsA, [resendable(held.ip)]);
    await waitCounters('held original accepted late', (_d, pin) => pin === in0 + 1);

    // 3. The original again: replay.
    await rawSend(lab, nsA, [resendable(held.ip)]);
    await waitCounters(
      'second copy dropped as replay',
      (d, pin) => n(d, 'replay') === n(d1, 'replay') + 1 && pin === in0 + 1,
    );

    // 4. Unknown SPI (first SPI byte changed): noSa. 5. Truncated after the ESP header: malformed.
    const d3 = await espDrops(b);
    const badSpi = resendable(held.ip);
    badSpi[esp.espOffset]! ^= 0xff;
    await rawSend(lab, nsA, [badSpi]);
    await waitCounters('unknown SPI dropped as noSa', (d) => n(d, 'noSa') === n(d3, 'noSa') + 1);
    // A fresh sequence number (seen ones are replays before anything else is looked at), 100 ahead: still
    // inside the window, and a window wrongly advanced by a malformed packet would not reject real ones.
    const truncated = Buffer.from(resendable(held.ip).subarray(0, esp.espOffset + 10));
    truncated.writeUInt32BE(esp.seq + 100, esp.espOffset + 4);
    truncated.writeUInt16BE(truncated.length, 2);
    if (encap === 'udp') truncated.writeUInt16BE(truncated.length - esp.espOffset + 8, esp.espOffset - 4);
    await rawSend(lab, nsA, [truncated]);
    await waitCounters(
      'truncated ESP dropped as malformed',
      (d) => n(d, 'malformed') === n(d3, 'malformed') + 1,
    );

    const d5 = await espDrops(b);
    t.equal(n(d5, 'integrity'), n(d0, 'integrity') + 1, 'exactly one integrity drop in total');
    t.equal(n(d5, 'replay'), n(d0, 'replay') + 1, 'exactly one replay drop in total');
    const p2 = await ping(lab, nsA, A_HOST, B_HOST, ['-c', '2', '-i', '0.2', '-W', '2']);
    t.equal(received(p2.stdout), 2, 'tunnel unaffected by the injected packets');
  }
}
