/**
 * Independent wire checks for the ESP data plane (test-only).
 *
 * - SA keys in Wireshark's ESP SA table format (the `esp_sa` UAT: protocol, src, dst, spi, encryption
 *   algorithm, encryption key, authentication algorithm, authentication key), written by the test-only
 *   daemon entry `keylog-daemon.ts` and handed to tshark as `-o uat:esp_sa:RECORD`.
 * - `decryptEsp`: tshark decrypts a capture (raw ESP and ESP-in-UDP on 4500) and returns the inner
 *   packets it found, with tshark's own ICV verdict.
 * - A tiny pcap reader and IPv4/UDP/ESP parsers, and `rawSend` (a raw IP socket with IP_HDRINCL, from
 *   python3 inside a namespace) to replay captured packets as-is or tampered.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import { type Lab, type LabProcess, run, WaitAbort, waitFor } from './netns.js';

/** The test-only daemon entry (compiled): twinsecd plus SA key logging. */
export const KEYLOG_DAEMON = fileURLToPath(new URL('./keylog-daemon.js', import.meta.url));

export interface EspSaKey {
  src: string;
  dst: string;
  spi: number;
  /** strongSwan names: aes128gcm16 … aes256gcm16, aes128 … aes256. */
  encr: string;
  /** null for AEAD; sha1 sha256 sha384 sha512. */
  integ: string | null;
  /** GCM: key followed by the 4-byte salt (Wireshark wants it the same way: 160/224/288 bits). */
  encrKey: Buffer;
  integKey: Buffer | null;
}

/** Wireshark's names for the encryption algorithms (value strings of the esp_sa UAT, Wireshark 4.0). */
export function tsharkEncr(encr: string): string {
  if (/^aes(128|192|256)gcm16$/.test(encr)) return 'AES-GCM with 16 octet ICV [RFC4106]';
  if (/^aes(128|192|256)gcm12$/.test(encr)) return 'AES-GCM with 12 octet ICV [RFC4106]';
  if (/^aes(128|192|256)gcm8$/.test(encr)) return 'AES-GCM with 8 octet ICV [RFC4106]';
  if (/^aes(128|192|256)$/.test(encr)) return 'AES-CBC [RFC3602]';
  throw new Error(`no Wireshark name for ESP encryption ${encr}`);
}

/** Wireshark's names for the integrity algorithms. */
export function tsharkAuth(integ: string | null): string {
  switch (integ) {
    case null:
      return 'NULL';
    case 'sha1':
      return 'HMAC-SHA-1-96 [RFC2404]';
    case 'sha256':
      return 'HMAC-SHA-256-128 [RFC4868]';
    case 'sha384':
      return 'HMAC-SHA-384-192 [RFC4868]';
    case 'sha512':
      return 'HMAC-SHA-512-256 [RFC4868]';
    default:
      throw new Error(`no Wireshark name for ESP integrity ${integ}`);
  }
}

const q = (s: string) => JSON.stringify(s);
const hex8 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** One esp_sa UAT record (the line format of the `esp_sa` file and of `-o uat:esp_sa:…`). */
export function uatRecord(k: EspSaKey): string {
  return [
    q(k.src.includes(':') ? 'IPv6' : 'IPv4'),
    q(k.src),
    q(k.dst),
    q(hex8(k.spi)),
    q(tsharkEncr(k.encr)),
    q(`0x${k.encrKey.toString('hex')}`),
    q(tsharkAuth(k.integ)),
    q(k.integKey ? `0x${k.integKey.toString('hex')}` : ''),
  ].join(',');
}

/** Both directions of an installed CHILD_SA: outbound local -> remote (spiOut), inbound the reverse. */
export function keysFromSpec(sa: ChildSaSpec): EspSaKey[] {
  return [
    {
      src: sa.local.address,
      dst: sa.remote.address,
      spi: sa.spiOut,
      encr: sa.encr,
      integ: sa.integ,
      encrKey: sa.encrKeyOut,
      integKey: sa.integKeyOut,
    },
    {
      src: sa.remote.address,
      dst: sa.local.address,
      spi: sa.spiIn,
      encr: sa.encr,
      integ: sa.integ,
      encrKey: sa.encrKeyIn,
      integKey: sa.integKeyIn,
    },
  ];
}

/** Records of an esp_sa file (comments and blank lines skipped); [] when the file does not exist. */
export function readUat(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** tshark options that decrypt ESP with these SA records and check ICVs. */
export function tsharkEspOptions(records: string[]): string[] {
  const opts = ['-o', 'esp.enable_encryption_decode:TRUE', '-o', 'esp.enable_authentication_check:TRUE'];
  for (const r of records) opts.push('-o', `uat:esp_sa:${r}`);
  return opts;
}

/** One ESP frame as tshark decoded it. */
export interface DecryptedFrame {
  frame: number;
  outerSrc: string;
  outerDst: string;
  /** 'esp' (IP protocol 50) or 'udp' (ESP-in-UDP, RFC 3948). */
  encapsulation: 'esp' | 'udp';
  spi: number;
  seq: number;
  /** Inner IPv4 addresses, undefined when tshark could not decrypt. */
  innerSrc?: string;
  innerDst?: string;
  icmpType?: number;
  icmpId?: number;
  icmpSeq?: number;
  /** ICMP data after the timestamp, hex (what `ping -p` fills). */
  dataHex?: string;
  /** tshark's ICV verdict: true good, false bad, undefined not checked. */
  icvGood?: boolean;
  /** ESP next header of the decrypted trailer (4 = IPv4 in tunnel mode). */
  nextHeader?: number;
  /** The IV as sent, hex. */
  ivHex?: string;
}

const FIELDS = [
  'frame.number',
  'ip.src',
  'ip.dst',
  'udp.dstport',
  'esp.spi',
  'esp.sequence',
  'icmp.type',
  'icmp.ident',
  'icmp.seq',
  'data.data',
  'esp.icv_good',
  'esp.icv_bad',
  'esp.protocol',
  'esp.iv',
];

/**
 * Runs tshark over `pcap` with the ESP SA `records` and returns every ESP frame (decrypted or not).
 * ESP-in-UDP on port 4500 is dissected by tshark's udpencap dissector without extra options.
 */
export async function decryptEsp(pcap: string, records: string[]): Promise<DecryptedFrame[]> {
  const args = [
    '-n',
    '-r',
    pcap,
    ...tsharkEspOptions(records),
    '-Y',
    'esp',
    '-T',
    'fields',
    '-E',
    'separator=/t',
    '-E',
    'occurrence=a',
    '-E',
    'aggregator=,',
    ...FIELDS.flatMap((f) => ['-e', f]),
  ];
  const r = await run('tshark', args, { timeoutMs: 60_000 });
  const frames: DecryptedFrame[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const [frame, src, dst, udpDst, spi, seq, icmpType, icmpId, icmpSeq, data, good, bad, next, iv] =
      line.split('\t');
    const srcs = (src ?? '').split(',');
    const dsts = (dst ?? '').split(',');
    const num = (s: string | undefined) => (s ? Number(s.split(',')[0]) : undefined);
    frames.push({
      frame: Number(frame),
      outerSrc: srcs[0]!,
      outerDst: dsts[0]!,
      encapsulation: udpDst ? 'udp' : 'esp',
      spi: Number(spi!.split(',')[0]),
      seq: Number(seq!.split(',')[0]),
      innerSrc: srcs[1],
      innerDst: dsts[1],
      icmpType: num(icmpType),
      icmpId: num(icmpId),
      icmpSeq: num(icmpSeq),
      dataHex: data ? data.split(',')[0] : undefined,
      icvGood: good === '1' ? true : bad === '1' ? false : undefined,
      nextHeader: num(next),
      ivHex: iv ? iv.split(',')[0]!.replace(/:/g, '') : undefined,
    });
  }
  return frames;
}

// ---------------------------------------------------------------------------------------------------------
// pcap

/** One captured packet, starting at the IP header (link layer stripped). */
export interface CapturedPacket {
  timeSec: number;
  ip: Buffer;
}

/** Reads a classic pcap file (as tcpdump -w writes it): Ethernet, Linux cooked (v1/v2) or raw IP. */
export function readPcap(file: string): CapturedPacket[] {
  const buf = readFileSync(file);
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  let nano = false;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) {
    le = true;
    nano = magic === 0xa1b23c4d;
  } else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) {
    le = false;
    nano = magic === 0x4d3cb2a1;
  } else {
    throw new Error(`${file}: not a pcap file (magic ${magic.toString(16)})`);
  }
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20) & 0x0fffffff;
  const out: CapturedPacket[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const data = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (data.length < incl) break;
    let ip: Buffer | undefined;
    if (linktype === 1) {
      // Ethernet: skip VLAN tags, keep IPv4/IPv6.
      let p = 12;
      let type = data.readUInt16BE(p);
      while (type === 0x8100 && data.length >= p + 6) {
        p += 4;
        type = data.readUInt16BE(p);
      }
      if (type === 0x0800 || type === 0x86dd) ip = data.subarray(p + 2);
    } else if (linktype === 113) {
      ip = data.subarray(16);
    } else if (linktype === 276) {
      ip = data.subarray(20);
    } else if (linktype === 101 || linktype === 12 || linktype === 228) {
      ip = data;
    } else {
      throw new Error(`${file}: unsupported link type ${linktype}`);
    }
    if (ip) out.push({ timeSec: sec + frac / (nano ? 1e9 : 1e6), ip: Buffer.from(ip) });
  }
  return out;
}

export interface Ipv4 {
  src: string;
  dst: string;
  protocol: number;
  headerLen: number;
  /** Bytes after the IP header. */
  payload: Buffer;
}

export function parseIpv4(ip: Buffer): Ipv4 | undefined {
  if (ip.length < 20 || ip[0]! >> 4 !== 4) return undefined;
  const headerLen = (ip[0]! & 0x0f) * 4;
  const total = ip.readUInt16BE(2);
  const addr = (o: number) => [...ip.subarray(o, o + 4)].join('.');
  return {
    src: addr(12),
    dst: addr(16),
    protocol: ip[9]!,
    headerLen,
    payload: ip.subarray(headerLen, Math.min(total, ip.length)),
  };
}

/** An ESP packet inside a captured IPv4 packet (raw ESP or ESP-in-UDP on `nattPort`). */
export interface EspInPacket {
  encapsulation: 'esp' | 'udp';
  src: string;
  dst: string;
  spi: number;
  seq: number;
  /** Offset of the ESP header within the IP packet. */
  espOffset: number;
  espLen: number;
}

export function findEsp(ip: Buffer, nattPort = 4500): EspInPacket | undefined {
  const p = parseIpv4(ip);
  if (!p) return undefined;
  let espOffset: number;
  let encapsulation: 'esp' | 'udp';
  if (p.protocol === 50) {
    espOffset = p.headerLen;
    encapsulation = 'esp';
  } else if (p.protocol === 17 && p.payload.length >= 16) {
    if (p.payload.readUInt16BE(2) !== nattPort && p.payload.readUInt16BE(0) !== nattPort) return undefined;
    // RFC 3948: a zero first word is the non-ESP marker (IKE); a single 0xff byte is a keep-alive.
    if (p.payload.readUInt32BE(8) === 0) return undefined;
    espOffset = p.headerLen + 8;
    encapsulation = 'udp';
  } else {
    return undefined;
  }
  const esp = ip.subarray(espOffset, p.headerLen + p.payload.length);
  if (esp.length < 8) return undefined;
  return {
    encapsulation,
    src: p.src,
    dst: p.dst,
    spi: esp.readUInt32BE(0),
    seq: esp.readUInt32BE(4),
    espOffset,
    espLen: esp.length,
  };
}

/**
 * A copy of a captured ESP packet ready to be re-sent through a raw socket: UDP checksum cleared
 * (legal for IPv4, and the capture may hold a partial checksum from veth offload), and optionally one
 * bit flipped at `flipAt` bytes into the ESP payload after the header (i.e. in the IV/ciphertext).
 */
export function resendable(ip: Buffer, opts: { flipAt?: number; nattPort?: number } = {}): Buffer {
  const esp = findEsp(ip, opts.nattPort);
  if (!esp) throw new Error('not an ESP packet');
  const out = Buffer.from(ip);
  if (esp.encapsulation === 'udp') out.writeUInt16BE(0, esp.espOffset - 2);
  if (opts.flipAt !== undefined) {
    const at = esp.espOffset + 8 + opts.flipAt;
    if (at >= esp.espOffset + esp.espLen) throw new Error('flip offset beyond the ESP packet');
    out[at]! ^= 0x01;
  }
  return out;
}

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const RAW_SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # implies IP_HDRINCL
for h in sys.argv[1:]:
    p = bytes.fromhex(h)
    dst = socket.inet_ntoa(p[16:20])
    s.sendto(p, (dst, 0))
`;

/**
 * Sends complete IPv4 packets as they are (IP_HDRINCL raw socket) from inside `ns`; the kernel only
 * fills in the IP header checksum. Used to replay and tamper with captured ESP.
 */
export async function rawSend(lab: Lab, ns: string, packets: Buffer[]): Promise<void> {
  await lab.exec(ns, PYTHON, ['-c', RAW_SENDER, ...packets.map((p) => p.toString('hex'))]);
}

/** A running `tcpdump -w` inside a namespace. */
export interface Capture {
  file: string;
  proc: LabProcess;
  /** Packets written so far (tcpdump -U flushes each one). */
  packets(): CapturedPacket[];
  /** SIGINT (tcpdump flushes and exits), then the packets. */
  stop(): Promise<CapturedPacket[]>;
}

/** Starts `tcpdump -i IFNAME -n -U -w FILE FILTER` in `ns` and waits until it is listening. */
export async function startCapture(
  lab: Lab,
  ns: string,
  ifname: string,
  filter: string,
  file: string,
): Promise<Capture> {
  const proc = lab.spawn(
    ns,
    'tcpdump',
    ['-i', ifname, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file, filter],
    {
      logFile: `${file}.log`,
    },
  );
  await waitFor(
    () => {
      if (!proc.running) throw new WaitAbort(`tcpdump exited: ${proc.log()}`);
      return /listening on/.test(proc.log());
    },
    10_000,
    { what: `tcpdump listening on ${ifname} in ${ns}`, intervalMs: 50 },
  );
  const packets = () => {
    try {
      return readPcap(file);
    } catch {
      return [];
    }
  };
  return {
    file,
    proc,
    packets,
    stop: async () => {
      await proc.stop('SIGINT', 3000);
      return packets();
    },
  };
}
