/**
 * Traffic selectors (RFC 7296 §3.13.1) as address ranges, and the textual address codec the TS
 * payload uses. Addresses are compared as bigints so one code path serves IPv4 and IPv6.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from '../../errors.js';
import { TsType } from './constants.js';
import type { TrafficSelector } from './types.js';

// ---- Addresses ----

/** 4 bytes for dotted IPv4, 16 for IPv6 (any RFC 4291 text form, no zone). */
export function parseAddress(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('%')) throw new WireError(`not an IP address: '${text}'`);
  const [head = '', tail] = text.split('::');
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (!g.includes('.')) return [Number.parseInt(g, 16)];
      const v4 = parseAddress(g);
      return [v4.readUInt16BE(0), v4.readUInt16BE(2)];
    });
  };
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of all.entries()) out.writeUInt16BE(g, i * 2);
  return out;
}

/** Dotted IPv4, or IPv6 in the RFC 5952 canonical form so text -> bytes -> text is stable. */
export function formatAddress(bytes: Buffer): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16)
    throw new WireError(`an address of ${bytes.length} bytes is neither IPv4 nor IPv6`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  // Longest run of two or more zero groups; the first one wins a tie (RFC 5952 §4.2.3).
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

function toBigint(bytes: Buffer): bigint {
  return BigInt(`0x${bytes.toString('hex')}`);
}

function fromBigint(v: bigint, size: number): Buffer {
  return Buffer.from(v.toString(16).padStart(size * 2, '0'), 'hex');
}

function addrBits(tsType: number): number {
  if (tsType === TsType.IPV4) return 32;
  if (tsType === TsType.IPV6) return 128;
  throw new WireError(`traffic selector type ${tsType} is not an address range`);
}

function rangeOf(ts: TrafficSelector): { lo: bigint; hi: bigint; bits: number } {
  const bits = addrBits(ts.tsType);
  const start = parseAddress(ts.startAddr);
  const end = parseAddress(ts.endAddr);
  if (start.length * 8 !== bits || end.length * 8 !== bits) {
    throw new WireError(`traffic selector ${ts.startAddr}-${ts.endAddr} does not match type ${ts.tsType}`);
  }
  return { lo: toBigint(start), hi: toBigint(end), bits };
}

// ---- One selector on the wire (RFC 7296 §3.13.1); the TS payload around it is in payloads.ts ----

/** Selector length by TS type: 8 octets of header, then start and end address. */
export const SELECTOR_LENGTH: Readonly<Record<number, number>> = { [TsType.IPV4]: 16, [TsType.IPV6]: 40 };

function throwAt(where: string, what: string): never {
  throw new WireError(`${where}: ${what}`);
}

export function encodeSelector(where: string, s: TrafficSelector): Buffer {
  const length = SELECTOR_LENGTH[s.tsType];
  if (length === undefined) throwAt(where, `unsupported TS type ${s.tsType}`);
  for (const [field, v, max] of [
    ['IP protocol', s.ipProtocol, 0xff],
    ['start port', s.startPort, 0xffff],
    ['end port', s.endPort, 0xffff],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) throwAt(where, `${field} ${v} out of range 0..${max}`);
  }
  const start = parseAddress(s.startAddr);
  const end = parseAddress(s.endAddr);
  const size = (length - 8) / 2;
  if (start.length !== size || end.length !== size)
    throwAt(where, `addresses do not match TS type ${s.tsType}`);
  const head = Buffer.alloc(8);
  head.writeUInt8(s.tsType, 0);
  head.writeUInt8(s.ipProtocol, 1);
  head.writeUInt16BE(length, 2);
  head.writeUInt16BE(s.startPort, 4);
  head.writeUInt16BE(s.endPort, 6);
  return Buffer.concat([head, start, end]);
}

/** `buf` is exactly one selector whose type and length were checked by the caller. */
export function decodeSelector(buf: Buffer): TrafficSelector {
  const size = (buf.length - 8) / 2;
  return {
    tsType: buf.readUInt8(0),
    ipProtocol: buf.readUInt8(1),
    startPort: buf.readUInt16BE(4),
    endPort: buf.readUInt16BE(6),
    startAddr: formatAddress(buf.subarray(8, 8 + size)),
    endAddr: formatAddress(buf.subarray(8 + size)),
  };
}

// ---- Selectors as ranges ----

const ANY_PORT = { start: 0, end: 65535 };
/** RFC 4301 §4.4.1.1: start 65535, end 0 means "OPAQUE" (ports not available, e.g. fragments). */
const OPAQUE = { start: 65535, end: 0 };

export function cidrToTs(cidr: string, proto = 0, startPort = 0, endPort = 65535): TrafficSelector {
  const slash = cidr.indexOf('/');
  const addr = parseAddress(slash < 0 ? cidr : cidr.slice(0, slash));
  const bits = addr.length * 8;
  const prefixText = slash < 0 ? String(bits) : cidr.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > bits) throw new WireError(`invalid prefix length in '${cidr}'`);
  if (!Number.isInteger(proto) || proto < 0 || proto > 255)
    throw new WireError(`invalid IP protocol ${proto}`);
  for (const p of [startPort, endPort]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new WireError(`invalid port ${p}`);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const lo = toBigint(addr) & ~hostMask;
  return {
    tsType: bits === 32 ? TsType.IPV4 : TsType.IPV6,
    ipProtocol: proto,
    startPort,
    endPort,
    startAddr: formatAddress(fromBigint(lo, bits / 8)),
    endAddr: formatAddress(fromBigint(lo | hostMask, bits / 8)),
  };
}

/** The fewest CIDR blocks covering exactly the selector's address range, lowest first. */
export function tsRangeToCidrs(ts: TrafficSelector): string[] {
  const { lo, hi, bits } = rangeOf(ts);
  const out: string[] = [];
  for (let at = lo; at <= hi; ) {
    // Largest block aligned at `at` that does not run past `hi`.
    let size = 1n;
    let prefix = bits;
    while (prefix > 0 && (at & ((size << 1n) - 1n)) === 0n && at + (size << 1n) - 1n <= hi) {
      size <<= 1n;
      prefix--;
    }
    out.push(`${formatAddress(fromBigint(at, bits / 8))}/${prefix}`);
    at += size;
  }
  return out;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp', 132: 'sctp' };

/** `198.18.1.0/24`, `198.18.1.5-198.18.1.9`, with `[tcp/443]`-style suffix when not any. */
export function tsToString(ts: TrafficSelector): string {
  const cidrs = safeCidrs(ts);
  const addr = cidrs.length === 1 ? cidrs[0]! : `${ts.startAddr}-${ts.endAddr}`;
  const anyPort = ts.startPort === ANY_PORT.start && ts.endPort === ANY_PORT.end;
  if (ts.ipProtocol === 0 && anyPort) return addr;
  const proto = ts.ipProtocol === 0 ? 'any' : (PROTO_NAMES[ts.ipProtocol] ?? String(ts.ipProtocol));
  let port = '';
  if (ts.startPort === OPAQUE.start && ts.endPort === OPAQUE.end) port = '/opaque';
  else if (ts.startPort === ts.endPort) port = `/${ts.startPort}`;
  else if (!anyPort) port = `/${ts.startPort}-${ts.endPort}`;
  return `${addr}[${proto}${port}]`;
}

function safeCidrs(ts: TrafficSelector): string[] {
  try {
    return tsRangeToCidrs(ts);
  } catch {
    return [];
  }
}

/**
 * The selector both sides accept (RFC 7296 §2.9 narrowing), or null if they are disjoint.
 * Protocol 0 matches any protocol; OPAQUE ports only survive against OPAQUE or the full range.
 */
export function tsIntersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | null {
  if (a.tsType !== b.tsType) return null;
  const ra = rangeOf(a);
  const rb = rangeOf(b);
  // biome-ignore lint/complexity/useMathMinMax: Math.max does not take bigints
  const lo = ra.lo > rb.lo ? ra.lo : rb.lo;
  // biome-ignore lint/complexity/useMathMinMax: Math.min does not take bigints
  const hi = ra.hi < rb.hi ? ra.hi : rb.hi;
  if (lo > hi) return null;
  if (a.ipProtocol !== 0 && b.ipProtocol !== 0 && a.ipProtocol !== b.ipProtocol) return null;
  const ports = intersectPorts(a, b);
  if (!ports) return null;
  return {
    tsType: a.tsType,
    ipProtocol: a.ipProtocol || b.ipProtocol,
    startPort: ports.start,
    endPort: ports.end,
    startAddr: formatAddress(fromBigint(lo, ra.bits / 8)),
    endAddr: formatAddress(fromBigint(hi, ra.bits / 8)),
  };
}

function intersectPorts(a: TrafficSelector, b: TrafficSelector): { start: number; end: number } | null {
  const isOpaque = (t: TrafficSelector) => t.startPort === OPAQUE.start && t.endPort === OPAQUE.end;
  const isAny = (t: TrafficSelector) => t.startPort === ANY_PORT.start && t.endPort === ANY_PORT.end;
  if (isOpaque(a) || isOpaque(b))
    return (isOpaque(a) || isAny(a)) && (isOpaque(b) || isAny(b)) ? OPAQUE : null;
  const start = Math.max(a.startPort, b.startPort);
  const end = Math.min(a.endPort, b.endPort);
  return start <= end ? { start, end } : null;
}
