/** Address helpers shared by identities, NAT detection and traffic selectors. */
import { isIPv4, isIPv6 } from 'node:net';
import { TwinsecError } from '../errors.js';

export function addrToBytes(addr: string): Buffer {
  if (isIPv4(addr)) return Buffer.from(addr.split('.').map((o) => Number(o)));
  if (isIPv6(addr)) {
    const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
    const parse = (s: string | undefined): number[] => {
      if (!s) return [];
      const groups: number[] = [];
      for (const part of s.split(':')) {
        if (part.includes('.')) {
          const b = addrToBytes(part);
          groups.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
        } else groups.push(Number.parseInt(part, 16));
      }
      return groups;
    };
    const h = parse(head);
    const t = parse(tail);
    const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    const out = Buffer.alloc(16);
    for (const [i, g] of groups.entries()) out.writeUInt16BE(g, i * 2);
    return out;
  }
  throw new TwinsecError('ERR_ADDRESS', `not an IP address: '${addr}'`);
}

export function bytesToAddr(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) {
    const groups: number[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
    // RFC 5952: compress the longest run (>= 2) of zero groups.
    let bestStart = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === 0) j++;
      if (j - i > bestLen && j - i >= 2) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    }
    const hex = groups.map((g) => g.toString(16));
    if (bestStart < 0) return hex.join(':');
    return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
  }
  throw new TwinsecError('ERR_ADDRESS', `address of ${b.length} bytes`);
}
